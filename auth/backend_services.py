"""SMART Backend Services client authentication (`private_key_jwt` assertions).

Rules (SMART App Launch 2.x, "Backend Services", and RFC 7523): the assertion is signed
with RS384 or ES384 by a key the client registered (chosen by the header `kid`);
`iss` == `sub` == client id; `aud` == the token endpoint URL; `exp` present and no more
than five minutes ahead; `jti` never seen before for that client. Every failure is an
`OAuthError("invalid_client", ..., 401)`; scopes the client may not have are
`invalid_scope` (400).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from auth.errors import InvalidScope, InvalidToken, OAuthError
from auth.scopes import ScopeSet
from auth.tokens import unverified_parts

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS: tuple[str, ...] = ("RS384", "ES384")
MAX_ASSERTION_AHEAD = 300


class JtiStore(Protocol):
    """Remembers assertion ids until they expire; the server backs it by its database."""

    async def add_if_absent(self, client_id: str, jti: str, *, expires_at: int) -> bool:
        """Record (client_id, jti); False if it was already there (a replay)."""
        ...


class MemoryJtiStore:
    """A process-local `JtiStore` for tests and single-process development."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._clock = clock  # injected by tests whose assertions carry a fixed "now"

    async def add_if_absent(self, client_id: str, jti: str, *, expires_at: int) -> bool:
        now = int(self._clock())
        self._seen = {k: exp for k, exp in self._seen.items() if exp >= now}
        if (client_id, jti) in self._seen:
            return False
        self._seen[(client_id, jti)] = expires_at
        return True


@dataclass(frozen=True, slots=True)
class BackendClient:
    """A registered system client: id, public JWKS (dict) and the scopes it may get."""

    client_id: str
    jwks: Mapping[str, Any]
    scopes: ScopeSet


def _invalid(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def unverified_client_id(assertion: str) -> str:
    """The `iss` of an assertion, read before verification only to find the client."""
    try:
        iss = unverified_parts(assertion)[1].get("iss")
    except InvalidToken:
        raise _invalid("client assertion is not a JWT") from None
    if not isinstance(iss, str) or not iss:
        raise _invalid("client assertion has no iss")
    return iss


async def verify_client_assertion(
    assertion: str,
    *,
    client: BackendClient,
    token_url: str,
    jti_store: JtiStore,
    assertion_type: str = ASSERTION_TYPE,
    now: int | None = None,
) -> dict[str, Any]:
    """Verify a client assertion for `client`; return its claims or raise `OAuthError`."""
    if assertion_type != ASSERTION_TYPE:
        raise _invalid("client_assertion_type must be jwt-bearer")
    try:
        header = jws.extract_compact(assertion.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError):
        raise _invalid("client assertion is not a compact JWS") from None
    if header.get("alg") not in ASSERTION_ALGS:
        raise _invalid("client assertion must be signed with RS384 or ES384")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _invalid("client assertion header has no kid")
    try:
        keys = KeySet.import_key_set(dict(client.jwks))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise _invalid("registered JWKS is unusable") from None
    if not any(k.kid == kid for k in keys.keys):
        raise _invalid("no registered key matches the assertion kid")
    at = int(time.time()) if now is None else now
    registry = jwt.JWTClaimsRegistry(
        now=at,
        iss={"essential": True, "value": client.client_id},
        sub={"essential": True, "value": client.client_id},
        aud={"essential": True, "value": token_url},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        claims = jwt.decode(assertion, keys, algorithms=list(ASSERTION_ALGS)).claims
        registry.validate(claims)
    except JoseError as exc:
        raise _invalid(f"client assertion rejected ({exc.error})") from None
    except ValueError:
        raise _invalid("client assertion is malformed") from None
    exp = claims["exp"]
    if not isinstance(exp, int) or exp - at > MAX_ASSERTION_AHEAD:
        raise _invalid("client assertion exp is more than five minutes ahead")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise _invalid("client assertion jti must be a non-empty string")
    if not await jti_store.add_if_absent(client.client_id, jti, expires_at=exp):
        raise _invalid("client assertion jti was already used")
    return dict(claims)


def grant_scopes(requested: str, *, client: BackendClient) -> ScopeSet:
    """The scopes to grant a system client, or `invalid_scope` naming what is refused."""
    try:
        wanted = ScopeSet.parse(requested)
    except InvalidScope as exc:
        raise OAuthError("invalid_scope", f"{exc.reason}: {exc.scope}", 400) from None
    if not wanted.resource_scopes:
        raise OAuthError("invalid_scope", "no resource scope requested", 400)
    if any(s.context != "system" for s in wanted.resource_scopes) or wanted.other:
        raise OAuthError("invalid_scope", "backend services may request system/ scopes only")
    refused = wanted.not_covered_by(client.scopes)
    if refused:
        raise OAuthError("invalid_scope", "not registered for: " + " ".join(refused), 400)
    return wanted


__all__ = [
    "ASSERTION_ALGS",
    "ASSERTION_TYPE",
    "BackendClient",
    "JtiStore",
    "MemoryJtiStore",
    "grant_scopes",
    "unverified_client_id",
    "verify_client_assertion",
]
