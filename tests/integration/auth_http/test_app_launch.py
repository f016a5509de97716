"""Standalone launch: authorize + login form + PKCE code exchange, id_token, refresh."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from auth.pkce import new_verifier
from tests.integration.auth_http.conftest import AuthApp
from tests.integration.auth_http.helpers import (
    APP_ID,
    REDIRECT,
    REQUEST_BASE,
    decode_unverified,
    query_of,
    verify_with_jwks,
)
from tests.integration.auth_http.launch import (
    code_for,
    code_form,
    launch_params,
    setup_app_and_users,
    sign_in,
    staff,
)

SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs user/MedicationRequest.cruds"


async def test_patient_launch_gives_tokens_with_context(any_auth_app: AuthApp) -> None:
    a = any_auth_app
    patient = await setup_app_and_users(a)
    launch = launch_params(SCOPE)
    code = await code_for(a, launch, patient=patient)
    r = await a.client.post("/auth/token", data=code_form(code, launch.verifier))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["patient"] == patient
    assert body["token_type"] == "Bearer"
    assert "refresh_token" in body
    jwks = (await a.client.get("/auth/jwks.json")).json()
    access = verify_with_jwks(body["access_token"], jwks)
    assert access["role"] == "doctor"
    assert access["patient"] == patient
    assert access["fhirUser"] == "Practitioner/7"
    assert access["exp"] - access["iat"] <= 3600
    assert "user/MedicationRequest.cruds" in access["scope"].split()
    id_token = verify_with_jwks(body["id_token"], jwks)
    assert id_token["aud"] == APP_ID
    assert id_token["nonce"] == "n-456"
    assert id_token["fhirUser"] == f"{a.ctx.fhir_base}/Practitioner/7"
    # the code is one-time
    again = await a.client.post("/auth/token", data=code_form(code, launch.verifier))
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


async def test_role_ceiling_cuts_a_nurses_scopes(auth_app: AuthApp) -> None:
    patient = await setup_app_and_users(auth_app)
    launch = launch_params("launch/patient patient/MedicationRequest.cruds patient/Observation.cud")
    code = await code_for(auth_app, launch, user="rn.lee", patient=patient)
    r = await auth_app.client.post("/auth/token", data=code_form(code, launch.verifier))
    scopes = r.json()["scope"].split()
    assert "patient/MedicationRequest.rs" in scopes  # nurses never write prescriptions
    assert "patient/Observation.cu" in scopes  # and never delete observations
    assert not any(s.startswith("patient/MedicationRequest.c") for s in scopes)
    assert "id_token" not in r.json() and "refresh_token" not in r.json()


async def test_pkce_and_redirect_checks(auth_app: AuthApp) -> None:
    patient = await setup_app_and_users(auth_app)
    launch = launch_params(SCOPE)
    code = await code_for(auth_app, launch, patient=patient)
    wrong = await auth_app.client.post("/auth/token", data=code_form(code, new_verifier()))
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    # a failed exchange burns the code: the right verifier no longer helps
    late = await auth_app.client.post("/auth/token", data=code_form(code, launch.verifier))
    assert late.json()["error"] == "invalid_grant"
    launch = launch_params(SCOPE)
    code = await code_for(auth_app, launch, patient=patient)
    form = {**code_form(code, launch.verifier), "redirect_uri": "https://evil.example/cb"}
    r = await auth_app.client.post("/auth/token", data=form)
    assert r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"aud": "https://other.example/fhir"}, "invalid_request"),
        ({"scope": "patient/Observation.sr"}, "invalid_scope"),
        ({"scope": "system/Patient.rs"}, "invalid_scope"),
    ],
)
async def test_bad_authorize_requests_go_back_to_the_client(
    auth_app: AuthApp, override: dict[str, str], error: str
) -> None:
    await setup_app_and_users(auth_app)
    params = {**launch_params(SCOPE).params, **override}
    r = await auth_app.client.get("/auth/authorize", params=params)
    assert r.status_code == 302
    assert r.headers["location"].startswith(REDIRECT)
    query = query_of(r.headers["location"])
    assert (query["error"], query["state"]) == (error, "st-123")


async def test_untrusted_requests_and_bad_logins_stay_on_the_page(auth_app: AuthApp) -> None:
    patient = await setup_app_and_users(auth_app)
    unknown = launch_params(SCOPE, redirect_uri="https://evil.example/cb").params
    r = await auth_app.client.get("/auth/authorize", params=unknown)
    assert r.status_code == 400 and "location" not in r.headers
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    r = await sign_in(auth_app, launch_params(SCOPE), password="wrong password", patient=patient)
    assert r.status_code == 401 and "Invalid user name or password" in r.text
    r = await sign_in(auth_app, launch_params(SCOPE), user="nobody", patient=patient)
    assert r.status_code == 401 and "Invalid user name or password" in r.text
    r = await sign_in(auth_app, launch_params(SCOPE))  # launch/patient but no patient chosen
    assert r.status_code == 401 and "patient" in r.text
    r = await sign_in(auth_app, launch_params(SCOPE), patient="no-such-patient")
    assert r.status_code == 401 and "No patient" in r.text


async def test_admin_staff_asking_only_for_clinical_data_is_denied(auth_app: AuthApp) -> None:
    await setup_app_and_users(auth_app)
    await auth_app.ctx.repo.put_user(staff("clerk", "admin"))
    r = await sign_in(auth_app, launch_params("user/Observation.rs"), user="clerk")
    assert r.status_code == 303
    assert query_of(r.headers["location"])["error"] == "access_denied"


async def test_refresh_rotates_and_checks_scope(any_auth_app: AuthApp) -> None:
    a = any_auth_app
    patient = await setup_app_and_users(a)
    launch = launch_params(SCOPE)
    code = await code_for(a, launch, patient=patient)
    first = (await a.client.post("/auth/token", data=code_form(code, launch.verifier))).json()
    form = {"grant_type": "refresh_token", "client_id": APP_ID}
    narrower = {
        **form,
        "refresh_token": first["refresh_token"],
        "scope": "patient/Patient.rs offline_access",
    }
    r = await a.client.post("/auth/token", data=narrower)
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["scope"].split() == ["offline_access", "patient/Patient.rs"]
    assert second["refresh_token"] != first["refresh_token"]
    assert decode_unverified(second["access_token"])["patient"] == patient
    reuse = await a.client.post(
        "/auth/token", data={**form, "refresh_token": first["refresh_token"]}
    )
    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    broader = {**form, "refresh_token": second["refresh_token"], "scope": "user/*.cruds"}
    r = await a.client.post("/auth/token", data=broader)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
    assert REQUEST_BASE in launch.params["aud"]


async def _audit_events(a: AuthApp) -> list[dict[str, Any]]:
    return [orjson.loads(r.event_json) async for r in a.app.state.service.store.iter_audit()]


def _who(event: dict[str, Any]) -> dict[str, str]:
    """The user and client named in an event (by identifier system), not the server."""
    ids = {}
    for agent in event["agent"]:
        identifier = (agent.get("who") or {}).get("identifier") or {}
        if identifier.get("system"):
            ids[identifier["system"].rsplit("/", 1)[-1]] = identifier["value"]
    return ids


async def test_logins_and_tokens_leave_audit_events(any_auth_app: AuthApp) -> None:
    """BALP authentication events: failed and successful logins, tokens issued and refused."""
    a = any_auth_app
    patient = await setup_app_and_users(a)
    before = len(await _audit_events(a))
    failed = await sign_in(a, launch_params(SCOPE), password="wrong password", patient=patient)
    assert failed.status_code == 401
    launch = launch_params(SCOPE)
    code = await code_for(a, launch, patient=patient)
    assert (await a.client.post("/auth/token", data=code_form(code, launch.verifier))).is_success
    refused = await a.client.post("/auth/token", data=code_form(code, launch.verifier))
    assert refused.status_code == 400

    events = (await _audit_events(a))[before:]
    summary = [
        (e["type"]["code"], e["subtype"][0]["code"], e["outcome"], e["outcomeDesc"], _who(e))
        for e in events
    ]
    user = {"user": "dr.kim", "client": APP_ID}
    assert summary == [
        (
            "110114",
            "110122",
            "4",
            "denied: HTTP 401 Unauthorized: Invalid user name or password.",
            user,
        ),
        ("110114", "110122", "0", "HTTP 200 OK", user),
        ("110114", "ITI-71", "0", "HTTP 200 OK", user),
        ("110114", "ITI-71", "4", "HTTP 400 Bad Request: invalid_grant", {"client": APP_ID}),
    ]
    issued = events[2]["agent"][0]
    assert issued["role"][0]["coding"][0]["code"] == "doctor"
    for event in events:
        assert event["action"] == "E"
        addresses = [agent["network"]["address"] for agent in event["agent"] if "network" in agent]
        assert addresses == ["127.0.0.1"]
        assert event["entity"][-1]["what"]["identifier"]["value"]  # the request id
