"""Registered OAuth clients: registration rules and client authentication at /auth/*.

Two kinds, one record shape:

- system clients (SMART Backend Services) register a public JWKS or JWKS URL and the
  `system/` scopes they may get; they authenticate with `private_key_jwt` (RS384/ES384).
- app clients (SMART App Launch) register redirect URIs; without keys they are public
  clients and rely on PKCE; with keys they are confidential and sign assertions too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from auth.backend_services import (
    ASSERTION_TYPE,
    BackendClient,
    unverified_client_id,
    verify_client_assertion,
)
from auth.errors import ConfigError, InvalidScope, OAuthError
from auth.scopes import ScopeSet
from fhir_server.security.context import SecurityContext
from fhir_server.security.jwks_fetch import JwksUnavailable, https_or_loopback

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
OPERATOR_CLIENT_ID = "medicore-cli"
"""The `client_id` of tokens `medicore token` prints: a built-in public client, never a
registered one (`fhir_server.security.operator_tokens`)."""


class ClientConfigError(ConfigError):
    """A client registration is invalid; `expression` names the faulty field."""


def client_record(
    client_id: str,
    *,
    scope: str = "",
    jwks: Mapping[str, Any] | None = None,
    jwks_url: str | None = None,
    redirect_uris: Iterable[str] = (),
    role: str = "system",
    name: str | None = None,
    may_introspect: bool = False,
) -> dict[str, Any]:
    """Validate a registration and return the record to store (`ClientConfigError` if bad)."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise ClientConfigError("client_id", "use letters, digits, '.', '_', ':' or '-'")
    if client_id == OPERATOR_CLIENT_ID:
        raise ClientConfigError("client_id", "reserved for the tokens of `medicore token`")
    if jwks is not None and jwks_url is not None:
        raise ClientConfigError("jwks", "give a JWKS or a JWKS URL, not both")
    try:
        scopes = ScopeSet.parse(scope)
    except InvalidScope as exc:
        raise ClientConfigError("scope", f"{exc.scope!r}: {exc.reason}") from None
    uris = list(redirect_uris)
    for i, uri in enumerate(uris):
        if not https_or_loopback(uri) or "#" in uri:
            raise ClientConfigError(f"redirect_uris[{i}]", "must be https (or loopback http)")
    if jwks is not None:
        _check_public_jwks(jwks)
    if jwks_url is not None and not https_or_loopback(jwks_url):
        raise ClientConfigError("jwks_url", "must be an https URL")
    if may_introspect and jwks is None and jwks_url is None:
        raise ClientConfigError("may_introspect", "only confidential clients may introspect")
    if not uris and jwks is None and jwks_url is None:
        raise ClientConfigError("jwks", "a system client needs a JWKS or a JWKS URL")
    if not uris and any(s.context != "system" for s in scopes.resource_scopes):
        raise ClientConfigError("scope", "system clients register system/ scopes only")
    doc: dict[str, Any] = {
        "client_id": client_id,
        "role": role,
        "scope": str(scopes),
        "redirect_uris": uris,
        "public": jwks is None and jwks_url is None,
        "disabled": False,
        "may_introspect": may_introspect,
    }
    if jwks is not None:
        doc["jwks"] = dict(jwks)
    if jwks_url is not None:
        doc["jwks_url"] = jwks_url
    if name:
        doc["name"] = name
    return doc


def _check_public_jwks(jwks: Mapping[str, Any]) -> None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ClientConfigError("jwks.keys", "expected a non-empty keys array")
    for i, key in enumerate(keys):
        if not isinstance(key, Mapping) or not key.get("kid"):
            raise ClientConfigError(f"jwks.keys[{i}].kid", "every key needs a kid")
        if "d" in key:
            raise ClientConfigError(f"jwks.keys[{i}]", "register public keys only")
    try:
        KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise ClientConfigError("jwks", "not a usable JWKS") from None


@dataclass(frozen=True, slots=True)
class CallingClient:
    """The client of a token/revoke/introspect request and how it proved who it is."""

    doc: Mapping[str, Any]
    confidential: bool

    @property
    def client_id(self) -> str:
        return str(self.doc["client_id"])


def _invalid(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


async def backend_client(
    ctx: SecurityContext, doc: Mapping[str, Any], *, kid: str | None
) -> BackendClient:
    """The client's keys (fetched if registered by URL) and registered scopes."""
    jwks = doc.get("jwks")
    if jwks is None and doc.get("jwks_url"):
        try:
            jwks = await ctx.jwks_cache.get(str(doc["jwks_url"]), kid=kid)
        except JwksUnavailable:
            raise _invalid("the client's JWKS URL could not be read") from None
    if not isinstance(jwks, Mapping):
        raise _invalid("the client has no registered keys")
    return BackendClient(
        client_id=str(doc["client_id"]), jwks=jwks, scopes=ScopeSet.parse(str(doc.get("scope", "")))
    )


async def authenticate_client(
    ctx: SecurityContext, form: Mapping[str, str], *, token_url: str
) -> CallingClient:
    """Who is calling: a verified `private_key_jwt` assertion, or a public client's id."""
    assertion = form.get("client_assertion")
    if assertion:
        client_id = unverified_client_id(assertion)
        if form.get("client_id") not in (None, "", client_id):
            raise _invalid("client_id does not match the assertion")
        doc = await ctx.repo.get_client(client_id)
        if doc is None or doc.get("disabled") or doc.get("public"):
            raise _invalid("unknown client or no registered keys")
        try:
            kid = jws.extract_compact(assertion.encode("ascii")).protected.get("kid")
        except (JoseError, ValueError, UnicodeError):
            raise _invalid("client assertion is not a compact JWS") from None
        client = await backend_client(ctx, doc, kid=kid if isinstance(kid, str) else None)
        await verify_client_assertion(
            assertion,
            client=client,
            token_url=token_url,
            jti_store=ctx.repo,
            assertion_type=form.get("client_assertion_type", ""),
            now=ctx.now(),
        )
        return CallingClient(doc=doc, confidential=True)
    if form.get("client_assertion_type"):
        raise _invalid("client_assertion is missing")
    client_id = form.get("client_id", "")
    doc = await ctx.repo.get_client(client_id) if client_id else None
    if doc is None or doc.get("disabled"):
        raise _invalid("unknown client")
    if not doc.get("public"):
        raise _invalid("this client must authenticate with private_key_jwt")
    return CallingClient(doc=doc, confidential=False)


__all__ = [
    "ASSERTION_TYPE",
    "OPERATOR_CLIENT_ID",
    "CallingClient",
    "ClientConfigError",
    "authenticate_client",
    "backend_client",
    "client_record",
]
