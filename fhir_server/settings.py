"""Server settings: command-line flags override ``MEDICORE_*`` environment variables."""

from __future__ import annotations

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
    mongo_database: str = "medicore"

    @property
    def is_production(self) -> bool:
        return self.env.lower() == "production"
