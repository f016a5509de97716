"""`/auth/*` (token, authorize, jwks, revoke, introspect) and SMART discovery: thin routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from auth.errors import OAuthError
from auth.tokens import unverified_parts
from fhir_server.api.auditing import record_authentication
from fhir_server.api.auth_audit import (
    Who,
    claimed,
    of_client,
    of_introspector,
    record_call,
    record_refusal,
)
from fhir_server.api.auth_login import error_page, login_page
from fhir_server.api.http import base_url, media_type
from fhir_server.api.openapi_responses import AUTH_RESPONSES
from fhir_server.security.authenticate import challenge
from fhir_server.security.authorize import (
    AuthorizePageError,
    AuthorizeRedirect,
    AuthorizeRequest,
    LoginFailed,
    check_request,
    login_and_issue_code,
)
from fhir_server.security.context import SecurityContext
from fhir_server.security.grants import token_request
from fhir_server.security.revocation import (
    introspect,
    introspection_scope,
    introspector,
    revoke,
    revoking_client,
)
from fhir_server.security.smart import endpoints, smart_configuration

router = APIRouter(tags=["SMART authorization"], responses=AUTH_RESPONSES)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_LOGIN_FIELDS = ("username", "password", "patient")
# OAuth forms are a dozen short fields; a signed assertion is a few KB.
_MAX_FIELDS = 100
_MAX_FIELD_BYTES = 64 * 1024


def _ctx(request: Request) -> SecurityContext:
    ctx: SecurityContext = request.app.state.security
    return ctx


def _json(body: Mapping[str, Any], *, status: int = 200, cache: str | None = None) -> Response:
    headers = dict(_NO_STORE) if cache is None else {"Cache-Control": cache}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _oauth_error(exc: OAuthError) -> Response:
    """RFC 6749 5.2 JSON; a 401 (RFC 9110) or refused bearer (RFC 6750) gets a challenge."""
    response = _json(exc.as_dict(), status=exc.status)
    bearer_error = exc.error in ("invalid_token", "insufficient_scope")
    if bearer_error or exc.status == 401:
        error = exc.error if bearer_error else None
        response.headers["WWW-Authenticate"] = challenge(error, exc.description)
    return response


async def _form(request: Request) -> dict[str, str]:
    """The url-encoded body as `_once` parameters."""
    media = media_type(request)
    if media != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "use application/x-www-form-urlencoded", 400)
    try:
        form = await request.form(max_fields=_MAX_FIELDS, max_part_size=_MAX_FIELD_BYTES)
    except HTTPException as exc:  # Starlette's answer to an oversized or unparsable form
        raise OAuthError("invalid_request", str(exc.detail), 400) from None
    return _once(form.multi_items())


def _once(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Parameters as a dict; one given twice is an `invalid_request` (RFC 6749 3.1)."""
    out: dict[str, str] = {}
    for key, value in items:
        if key in out or not isinstance(value, str):
            raise OAuthError("invalid_request", f"parameter {key} given more than once", 400)
        out[key] = value
    return out


def _token_url(request: Request) -> str:
    return endpoints(base_url(request))["token"]


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@router.post("/auth/token")
async def token(request: Request) -> Response:
    form: dict[str, str] = {}
    try:
        form = await _form(request)
        body = await token_request(_ctx(request), form, token_url=_token_url(request))
    except OAuthError as exc:
        await record_authentication(
            request,
            "token-issue",
            status=exc.status,
            client_id=form.get("client_id") or None,
            description=exc.error,
        )
        return _oauth_error(exc)
    _, claims = unverified_parts(body["access_token"])  # signed a moment ago, by us
    client_id = claims.get("client_id")
    await record_authentication(
        request,
        "token-issue",
        status=200,
        user_id=claims["sub"] if claims.get("sub") != client_id else None,
        client_id=client_id,
        roles=(claims["role"],) if isinstance(claims.get("role"), str) else (),
    )
    return _json(body)


@router.post("/auth/revoke")
async def revoke_token(request: Request) -> Response:
    ctx = _ctx(request)
    form: dict[str, str] = {}
    who = Who()
    try:
        form = await _form(request)
        who = claimed(form)
        caller = await revoking_client(ctx, form, token_url=_token_url(request))
        who = of_client(caller)
        done = await revoke(ctx, caller, form.get("token"))
    except OAuthError as exc:
        await record_refusal(request, "token-revoke", who, exc)
        return _oauth_error(exc)
    await record_call(request, "token-revoke", who, description=done)
    return Response(status_code=200, headers=_NO_STORE)


@router.post("/auth/introspect")
async def introspect_token(request: Request) -> Response:
    ctx = _ctx(request)
    who = Who()
    try:
        form = await _form(request)
        who = claimed(form)
        caller = await introspector(
            ctx, form, token_url=_token_url(request), bearer=_bearer(request)
        )
        who = of_introspector(caller)
        only = introspection_scope(ctx, caller)
        if not form.get("token"):
            raise OAuthError("invalid_request", "token is required", 400)
    except OAuthError as exc:
        await record_refusal(request, "token-introspect", who, exc)
        return _oauth_error(exc)
    answer = await introspect(ctx, form["token"], only_client=only)
    state = "token active" if answer["active"] else "token inactive"
    await record_call(request, "token-introspect", who, description=state)
    return _json(answer)


@router.get("/auth/jwks.json")
async def jwks(request: Request) -> Response:
    return _json(_ctx(request).keys.jwks(), cache="public, max-age=300")


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration")
async def smart_config(request: Request) -> Response:
    body = smart_configuration(base_url(request), issuer=_ctx(request).issuer)
    return _json(body, cache="public, max-age=3600")


async def _checked(request: Request, params: Mapping[str, str]) -> AuthorizeRequest:
    ctx = _ctx(request)
    return await check_request(ctx, params, audiences={ctx.fhir_base, base_url(request)})


def _form_for(req: AuthorizeRequest, *, error: str | None = None, status: int = 200) -> Response:
    return login_page(
        req.params,
        client_id=req.client_id,
        scope=str(req.scopes),
        ask_patient=req.needs_patient,
        error=error,
        status=status,
    )


@router.get("/auth/authorize")
async def authorize(request: Request) -> Response:
    try:
        req = await _checked(request, _once(request.query_params.multi_items()))
    except OAuthError as exc:
        return error_page(exc.description)
    except AuthorizePageError as exc:
        return error_page(exc.description)
    except AuthorizeRedirect as exc:
        return RedirectResponse(exc.location, status_code=302)
    return _form_for(req)


@router.post("/auth/authorize")
async def authorize_login(request: Request) -> Response:
    try:
        form = await _form(request)
    except OAuthError as exc:
        return error_page(exc.description)
    params = {k: v for k, v in form.items() if k not in _LOGIN_FIELDS}
    try:
        req = await _checked(request, params)
        location = await login_and_issue_code(
            _ctx(request),
            req,
            username=form.get("username", ""),
            password=form.get("password", ""),
            patient=form.get("patient"),
        )
    except AuthorizePageError as exc:
        return error_page(exc.description)
    except AuthorizeRedirect as exc:
        return RedirectResponse(exc.location, status_code=303)
    except LoginFailed as exc:
        await _record_login(request, form, req, status=401, description=exc.message)
        return _form_for(req, error=exc.message, status=401)
    await _record_login(request, form, req, status=200)
    return RedirectResponse(location, status_code=303, headers=_NO_STORE)


async def _record_login(
    request: Request,
    form: Mapping[str, str],
    req: AuthorizeRequest,
    *,
    status: int,
    description: str = "",
) -> None:
    # The name as typed, cut short: a failed login's target is what an audit looks for.
    await record_authentication(
        request,
        "login",
        status=status,
        user_id=form.get("username", "")[:64] or None,
        client_id=req.client_id,
        description=description,
    )


__all__ = ["router"]
