"""Tokens `medicore token` prints, made revocable like any other token.

They were not revocable before, for three reasons, each fixed here or beside:

- their client, `medicore-cli`, is registered nowhere, so `/auth/revoke` could not
  authenticate the caller (401 `invalid_client`). It is now a built-in *public* client
  for revocation only: as for any public client (RFC 7009 section 2.1, 5), naming it
  and presenting the token is enough, and only tokens issued to it can be revoked so;
- nothing remembered their `jti`, so an operator who no longer had the token text had
  nothing to revoke it by. Each one is now recorded (`auth_issued`) before it is printed;
- a server process kept a verified token for a few seconds without looking at the
  revocation records; it now looks on every use (`authenticate.principal_from_token`),
  and revocations are store records, so every process and host sees them at once.

`revoke_as_operator` is the operator's path (`medicore tokens revoke`): it needs no
client, since whoever runs it holds the store and the signing keys anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from auth.errors import InvalidToken
from auth.scopes import ScopeSet
from auth.tokens import MAX_ACCESS_LIFETIME, IssuedToken, issue_access_token, verify_access_token
from fhir_server.security.clients import OPERATOR_CLIENT_ID, CallingClient
from fhir_server.security.context import SecurityContext

_MAX_JTI = 256


class OperatorRefused(Exception):
    """The operator asked for something that cannot be done (message for stderr)."""


def operator_client() -> CallingClient:
    """The built-in public client of operator tokens, as `/auth/revoke` sees it."""
    return CallingClient(doc={"client_id": OPERATOR_CLIENT_ID, "public": True}, confidential=False)


def names_operator_client(form: Mapping[str, str]) -> bool:
    """A revocation request from the operator tokens' client (no assertion: it has no keys)."""
    return (
        form.get("client_id") == OPERATOR_CLIENT_ID
        and not form.get("client_assertion")
        and not form.get("client_assertion_type")
    )


async def issue_operator_token(
    ctx: SecurityContext,
    *,
    username: str,
    scope: str,
    patient: str | None = None,
    lifetime: int | None = None,
    now: int | None = None,
) -> IssuedToken:
    """Sign a token for a staff user within the role's ceiling, and record its jti first."""
    requested = ScopeSet.parse(scope)
    user = await ctx.repo.get_user(username)
    if user is None or not user.get("active", True):
        raise OperatorRefused(f"no active user {username!r}")
    role = str(user["role"])
    granted = ctx.roles.ceiling(role).clamp(requested)
    if requested.resource_scopes and not granted.resource_scopes:
        raise OperatorRefused(f"role {role!r} permits none of the requested scopes")
    issued = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject=username,
        client_id=OPERATOR_CLIENT_ID,
        scope=str(granted),
        role=role,
        patient=patient,
        fhir_user=user.get("fhir_user"),
        lifetime=min(lifetime or ctx.settings.access_token_lifetime, MAX_ACCESS_LIFETIME),
        now=ctx.now() if now is None else now,
    )
    claims = issued.claims
    record = {name: claims[name] for name in ("exp", "iat", "sub", "client_id", "scope")}
    await ctx.repo.record_issued(issued.jti, record)
    return issued


@dataclass(frozen=True, slots=True)
class Revoked:
    """What `revoke_as_operator` did, for the operator's confirmation line."""

    kind: str  # "access token" or "refresh token"
    jti: str | None
    subject: str | None
    expires_at: int
    recorded: bool  # a jti that `medicore token` recorded when it printed the token


async def revoke_as_operator(
    ctx: SecurityContext, value: str, *, now: int | None = None
) -> Revoked:
    """Revoke an access token (given whole, or by its jti) or a refresh token, of any client.

    A jti nobody recorded (an app's token, or a token printed before jtis were recorded)
    is revoked for `MAX_ACCESS_LIFETIME` from now: every token of ours expires sooner.
    """
    at = ctx.now() if now is None else now
    value = value.strip()
    if not value or len(value) > 64 * 1024 or any(c.isspace() for c in value):
        raise OperatorRefused("give one token or jti")
    if value.count(".") == 2:
        try:
            claims = verify_access_token(
                ctx.keys, value, issuer=ctx.issuer, audience=ctx.fhir_base, now=at
            )
        except InvalidToken as exc:
            raise OperatorRefused(
                f"not a live access token of this server: {exc.description}"
            ) from None
        jti, exp = str(claims["jti"]), int(claims["exp"])
        await ctx.repo.revoke_jti(jti, expires_at=exp)
        recorded = await ctx.repo.get_issued(jti) is not None
        return Revoked("access token", jti, str(claims.get("sub")), exp, recorded)
    grant = await ctx.repo.get_refresh(value)
    if grant is not None:
        await ctx.repo.rotate_refresh(value, grant, None, None)
        return Revoked("refresh token", None, grant.get("username"), int(grant["exp"]), False)
    if len(value) > _MAX_JTI:
        raise OperatorRefused("neither a token nor a jti")
    issued = await ctx.repo.get_issued(value)
    exp = int(issued["exp"]) if issued else at + MAX_ACCESS_LIFETIME
    await ctx.repo.revoke_jti(value, expires_at=exp)
    subject = str(issued["sub"]) if issued else None
    return Revoked("access token", value, subject, exp, issued is not None)


__all__ = [
    "OperatorRefused",
    "Revoked",
    "issue_operator_token",
    "names_operator_client",
    "operator_client",
    "revoke_as_operator",
]
