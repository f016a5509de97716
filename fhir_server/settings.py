"""Server settings: command-line flags override ``MEDICORE_*`` environment variables."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fhir_server.zones import load_zone, local_zone_name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDICORE_", extra="ignore")

    store: str = "sqlite:///data/medicore.db"
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None  # public FHIR base when behind a proxy, e.g. https://h/fhir
    env: str = "development"  # "production" disables demo data and test-only switches
    max_body_bytes: int = 10 * 1024 * 1024
    max_page_size: int = 1000
    mongo_database: str = "medicore"  # only when the MongoDB URI names no database
    data_dir: str = "data"  # keys and other local state live here
    server_id: str = "medicore"  # names this server in AuditEvent.source.observer
    audit_enabled: bool = True  # benchmark-only switch; refused in production
    auth_required: bool = True  # false only for local development and tests; refused in production
    audit_key: str | None = None  # HMAC key of the audit chain; else <data_dir>/keys/audit-hmac.key
    audit_index_interval: float = 2.0  # seconds between background AuditEvent indexing runs
    # Who indexes AuditEvents for search: a task in the server ("inline"), a child
    # process on another core ("process", what ``medicore serve`` runs by default), or
    # someone else ("external": the supervisor of a server with several workers).
    audit_indexer: Literal["inline", "process", "external"] = "inline"
    # Profiles: extra StructureDefinition folders loaded at start, profiles every resource
    # of a type must meet (JSON: {"Patient": "<url>"}), and whether an unknown claimed
    # profile is an error (default: a warning).
    profiles_dirs: list[str] = []
    # Extra SearchParameter definitions (files or folders): searchable with no code.
    search_parameters_dirs: list[str] = []
    mandatory_profiles: dict[str, str] = {}
    reject_unknown_profiles: bool = False
    # Test-only (refused in production): a page limit on the SQLite file, standing in for
    # a full disk in the fault tests (tests/e2e/test_faults_disk_full.py).
    sqlite_max_pages: int | None = None

    # The hospital's IANA zone: dates and times written without an offset (FHIR searches,
    # calendar dates such as birthDate, HL7 times) are read in it. Default: the machine's.
    timezone: str = Field(default_factory=local_zone_name)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)  # a bad name stops the start with a message naming the setting
        return value

    @property
    def zone(self) -> ZoneInfo:
        return load_zone(self.timezone)

    # The work one request may cost (fhir_server/api/limits.py; the body: max_body_bytes).
    max_bundle_entries: int = Field(default=1000, gt=0)
    max_resource_elements: int = Field(default=10_000, gt=0)  # JSON values in one resource
    max_array_length: int = Field(default=1000, gt=0)
    max_depth: int = Field(default=32, gt=0)  # nesting of objects and arrays in a resource
    max_query_params: int = Field(default=100, gt=0)
    max_query_bytes: int = Field(default=8192, gt=0)
    # Resources whose JSON is larger than this are validated and indexed in worker
    # processes (cpu_workers of them; 0: in the server process, in a thread).
    offload_bytes: int = Field(default=8192, ge=0)
    cpu_workers: int = Field(default=1, ge=0)

    @property
    def served_base(self) -> str:
        """The FHIR base this server answers on: ``base_url``, else host and port."""
        return self.base_url or f"http://{self.host}:{self.port}/fhir"

    @property
    def is_production(self) -> bool:
        return self.env.lower() == "production"
