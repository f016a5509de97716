"""Token-service settings (`MEDICORE_*`), kept apart from the core server settings."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from auth.tokens import MAX_ACCESS_LIFETIME


class SecuritySettings(BaseSettings):
    """Where keys live, who we are as an issuer, and which hospital IdP we trust."""

    model_config = SettingsConfigDict(env_prefix="MEDICORE_", extra="ignore")

    keys_dir: Path = Path("data/keys")  # next to the default SQLite file
    signing_alg: str = "ES256"  # ES256 or RS256 for access tokens
    issuer: str | None = None  # default: the FHIR base URL
    roles_file: Path | None = None  # default: the shipped auth/roles.json
    access_token_lifetime: int = MAX_ACCESS_LIFETIME
    refresh_token_lifetime: int = 30 * 24 * 3600  # offline_access
    online_refresh_lifetime: int = 12 * 3600  # online_access
    code_lifetime: int = 120  # authorization codes are one-time and short-lived
    # A hospital identity provider whose access tokens are accepted as well.
    idp_issuer: str | None = None
    idp_jwks_url: str | None = None
    idp_audience: str | None = None
    idp_role_claim: str = "role"  # dotted path, e.g. "realm_access.roles"
    idp_role_map: dict[str, str] = {}  # IdP role name -> MediCore role ("" = as is)
    idp_scope_claim: str = "scope"
    jwks_cache_seconds: int = 300


#: `iss`/`aud` of our tokens when no public base URL is configured (development).
DEV_BASE = "http://localhost/fhir"


def fhir_base(base_url: str | None) -> str:
    """The FHIR base URL tokens are issued for (their `aud`), from settings alone.

    It must not depend on the request, host or port: `medicore token` (no request, no
    `--port`) and `medicore serve --port N` must agree. Deployments set
    `MEDICORE_BASE_URL`; without it every local server shares the placeholder `DEV_BASE`.
    """
    return base_url.rstrip("/") if base_url else DEV_BASE


__all__ = ["DEV_BASE", "SecuritySettings", "fhir_base"]
