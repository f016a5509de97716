"""Who called the token service's revoke and introspect endpoints, for their AuditEvents.

Every call leaves one, answered or refused, like every other access (BALP authentication
events, ``fhir_server.api.auditing.record_authentication``). The caller is named as far
as it was established: the authenticated client or bearer, else the ``client_id`` the
form claims (unverified, as for refused token requests), else nobody; the address is
always known. Tokens themselves, and the form, never reach the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request

from auth.decision import Principal
from auth.errors import OAuthError
from fhir_server.api.auditing import record_authentication
from fhir_server.security.clients import CallingClient
from fhir_server.security.revocation import Introspector

# OAuth error codes that refuse the caller (rather than reject a malformed request).
_DENIALS = frozenset(
    {"invalid_client", "invalid_token", "insufficient_scope", "unauthorized_client"}
)
_MAX_CLAIMED = 128  # the longest client id a registration accepts


@dataclass(frozen=True, slots=True)
class Who:
    """The caller as the AuditEvent names it."""

    user_id: str | None = None
    client_id: str | None = None
    roles: tuple[str, ...] = ()


def claimed(form: Mapping[str, str]) -> Who:
    """The client the form names, not (yet) authenticated: cut short, never trusted."""
    return Who(client_id=form.get("client_id", "")[:_MAX_CLAIMED] or None)


def of_client(client: CallingClient) -> Who:
    return Who(client_id=client.client_id)


def of_principal(principal: Principal) -> Who:
    """As for FHIR requests: a system principal is its client, anyone else a user."""
    return Who(
        user_id=principal.subject if principal.role != "system" else None,
        client_id=principal.client_id or None,
        roles=(principal.role,) if principal.role else (),
    )


def of_introspector(caller: Introspector) -> Who:
    if caller.principal is not None:
        return of_principal(caller.principal)
    return of_client(caller.client) if caller.client is not None else Who()


async def record_call(
    request: Request, interaction: str, who: Who, *, description: str, status: int = 200
) -> None:
    """An answered call: durable before the answer leaves."""
    await record_authentication(
        request,
        interaction,
        status=status,
        user_id=who.user_id,
        client_id=who.client_id,
        roles=who.roles,
        description=description,
    )


async def record_refusal(request: Request, interaction: str, who: Who, exc: OAuthError) -> None:
    """A refused call, with its OAuth error code (PHI-free) as the description."""
    await record_authentication(
        request,
        interaction,
        status=exc.status,
        user_id=who.user_id,
        client_id=who.client_id,
        roles=who.roles,
        description=exc.error,
        denied=exc.error in _DENIALS,
    )


__all__ = [
    "Who",
    "claimed",
    "of_client",
    "of_introspector",
    "of_principal",
    "record_call",
    "record_refusal",
]
