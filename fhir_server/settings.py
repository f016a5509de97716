"""Server settings: command-line flags override ``MEDICORE_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # Who indexes AuditEvents for search: a task in the server ("inline") or a child
    # process on another core ("process", what ``medicore serve`` runs by default).
    audit_indexer: Literal["inline", "process"] = "inline"
    # Profiles: extra StructureDefinition folders loaded at start, profiles every resource
    # of a type must meet (JSON: {"Patient": "<url>"}), and whether an unknown claimed
    # profile is an error (default: a warning).
    profiles_dirs: list[str] = []
    # Extra SearchParameter definitions (files or folders): searchable with no code.
    search_parameters_dirs: list[str] = []
    mandatory_profiles: dict[str, str] = {}
    reject_unknown_profiles: bool = False
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
