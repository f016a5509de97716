"""SMART App Launch, standalone: checking `/auth/authorize` requests and issuing codes.

Errors before the client and redirect URI are trusted are shown to the user
(`AuthorizePageError`); later ones go back to the client (`AuthorizeRedirect`), as
RFC 6749 section 4.1.2.1 requires. The login page itself lives in `fhir_server.api`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from auth.errors import InvalidScope
from auth.pkce import is_valid_challenge
from auth.scopes import ScopeSet
from fhir_server.security.context import SecurityContext
from fhir_server.security.users import check_login

_PATIENT_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: The request parameters the login form carries through, unchanged.
FORWARDED = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


class AuthorizePageError(Exception):
    """The request cannot be trusted enough to redirect: show `description` (400)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class LoginFailed(Exception):
    """Show the login form again with `message` (no detail on which field was wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """`uri` with `params` appended to its query (existing parameters kept)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


class AuthorizeRedirect(Exception):
    """Answer with a redirect to the client carrying an OAuth error."""

    def __init__(self, redirect_uri: str, error: str, description: str, state: str | None) -> None:
        super().__init__(f"{error}: {description}")
        self.location = with_query(
            redirect_uri, {"error": error, "error_description": description, "state": state}
        )


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """A checked authorization request."""

    client_id: str
    redirect_uri: str
    scopes: ScopeSet
    state: str | None
    code_challenge: str
    nonce: str | None
    params: Mapping[str, str]

    @property
    def needs_patient(self) -> bool:
        return "launch/patient" in self.scopes.other


async def check_request(
    ctx: SecurityContext, params: Mapping[str, str], *, audiences: Collection[str]
) -> AuthorizeRequest:
    """Validate the client, redirect URI, PKCE, `aud` and scopes of an authorize request."""
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    client = await ctx.repo.get_client(client_id) if client_id else None
    if client is None or client.get("disabled"):
        raise AuthorizePageError("Unknown client application.")
    if redirect_uri not in client.get("redirect_uris", []):
        raise AuthorizePageError("The redirect URI is not registered for this application.")
    state = params.get("state")

    def fail(error: str, description: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(redirect_uri, error, description, state)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    challenge = params.get("code_challenge", "")
    if not is_valid_challenge(challenge, params.get("code_challenge_method")):
        raise fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
    if params.get("aud", "").rstrip("/") not in {a.rstrip("/") for a in audiences}:
        raise fail("invalid_request", "aud must be this server's FHIR base URL")
    try:
        scopes = ScopeSet.parse(params.get("scope", ""))
    except InvalidScope as exc:
        raise fail("invalid_scope", f"{exc.reason}: {exc.scope}") from None
    if "launch" in scopes.other:
        raise fail("invalid_scope", "EHR launch is not supported; use standalone launch")
    if any(s.context == "system" for s in scopes.resource_scopes):
        raise fail("invalid_scope", "system/ scopes are for backend services")
    return AuthorizeRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        code_challenge=challenge,
        nonce=params.get("nonce"),
        params={k: params[k] for k in FORWARDED if k in params},
    )


async def login_and_issue_code(
    ctx: SecurityContext,
    request: AuthorizeRequest,
    *,
    username: str,
    password: str,
    patient: str | None,
) -> str:
    """Check the staff login, apply the role ceiling, store a code; return the redirect URL."""
    user = await check_login(ctx.repo, username, password)
    if user is None:
        raise LoginFailed("Invalid user name or password.")
    role = str(user["role"])
    if role not in ctx.roles or ctx.roles.uses_registered_scopes(role):
        raise LoginFailed("This account cannot sign in to applications.")
    granted = ctx.roles.ceiling(role).clamp(request.scopes)
    if request.scopes.resource_scopes and not granted.resource_scopes:
        raise AuthorizeRedirect(
            request.redirect_uri,
            "access_denied",
            f"role {role!r} permits none of the requested scopes",
            request.state,
        )
    chosen = await _patient(ctx, request, patient)
    code = secrets.token_urlsafe(32)
    doc: dict[str, Any] = {
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "code_challenge": request.code_challenge,
        "scope": str(granted),
        "username": user["username"],
        "role": role,
        "patient": chosen,
        "fhir_user": user.get("fhir_user"),
        "nonce": request.nonce,
        "exp": ctx.now() + ctx.settings.code_lifetime,
    }
    await ctx.repo.save_code(code, doc)
    return with_query(request.redirect_uri, {"code": code, "state": request.state})


async def _patient(
    ctx: SecurityContext, request: AuthorizeRequest, patient: str | None
) -> str | None:
    if not request.needs_patient:
        return None
    chosen = (patient or "").strip()
    if not _PATIENT_ID.fullmatch(chosen):
        raise LoginFailed("Enter the id of the patient to open.")
    stored = await ctx.repo.store.read("Patient", chosen)
    if stored is None or stored.deleted:
        raise LoginFailed("No patient with that id.")
    return chosen


__all__ = [
    "FORWARDED",
    "AuthorizePageError",
    "AuthorizeRedirect",
    "AuthorizeRequest",
    "LoginFailed",
    "check_request",
    "login_and_issue_code",
    "with_query",
]
