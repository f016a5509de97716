"""Everything the token service and the authenticator share, built once per app (or CLI run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auth.clock import Clock, system_clock
from auth.keys import KeyRing
from auth.roles import RoleTable
from auth.scopes import ScopeSet
from auth.tokens import ExternalIssuer
from fhir_server.security.jwks_fetch import JwksCache
from fhir_server.security.principal_cache import PrincipalCache
from fhir_server.security.repository import AuthRepository
from fhir_server.security.settings import SecuritySettings, fhir_base
from fhir_server.settings import Settings
from fhir_server.storage.base import Store


@dataclass(slots=True)
class SecurityContext:
    """Keys, records, roles and trust settings; lives on `app.state.security`."""

    settings: SecuritySettings
    repo: AuthRepository
    keys: KeyRing
    roles: RoleTable
    fhir_base: str  # `aud` of our access tokens
    issuer: str  # `iss` of our access and id tokens
    production: bool = False
    jwks_cache: JwksCache = field(default_factory=JwksCache)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    _idp: ExternalIssuer | None = field(default=None, init=False, repr=False)
    clock: Clock = system_clock  # every exp/iat set or checked here reads this

    def now(self) -> int:
        return int(self.clock())

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: Store,
        *,
        security: SecuritySettings | None = None,
        keys: KeyRing | None = None,
        clock: Clock = system_clock,
    ) -> SecurityContext:
        """Load (or create) the signing keys and the role table; read nothing from the store."""
        sec = security or SecuritySettings()
        base = fhir_base(settings.base_url)
        return cls(
            settings=sec,
            repo=AuthRepository(store, clock=clock),
            keys=keys or KeyRing.load_or_create(sec.keys_dir, default_alg=sec.signing_alg),
            roles=RoleTable.load(sec.roles_file),
            fhir_base=base,
            issuer=(sec.issuer or base).rstrip("/"),
            production=settings.is_production,
            jwks_cache=JwksCache(ttl=sec.jwks_cache_seconds),
            principals=PrincipalCache(wall=clock),
            clock=clock,
        )

    def external_issuer(self, jwks: dict[str, Any]) -> ExternalIssuer:
        """The configured hospital IdP with its current JWKS.

        The previous instance (and the KeySet it imported) is reused while the JWKS and the
        IdP settings compare equal: the JWKS is imported again only when it changes.
        """
        sec = self.settings
        assert sec.idp_issuer is not None
        issuer = ExternalIssuer(
            issuer=sec.idp_issuer,
            jwks=jwks,
            audience=sec.idp_audience,
            role_claim=sec.idp_role_claim,
            role_map=sec.idp_role_map,
            scope_claim=sec.idp_scope_claim,
        )
        if issuer != self._idp:
            self._idp = issuer
        return self._idp

    async def registered_scopes(self, client_id: str) -> ScopeSet | None:
        """The scopes registered for an active client, or None if it is gone or disabled."""
        doc = await self.repo.get_client(client_id)
        if doc is None or doc.get("disabled"):
            return None
        return ScopeSet.parse(str(doc.get("scope", "")))


__all__ = ["SecurityContext"]
