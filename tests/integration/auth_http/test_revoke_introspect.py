"""RFC 7009 revocation and RFC 7662 introspection, and who may call them."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey, RSAKey

from auth.tokens import issue_access_token
from fhir_server.security.authenticate import AuthenticationFailed, principal_from_token
from fhir_server.security.clients import client_record
from tests.integration.auth_http.conftest import AuthApp
from tests.integration.auth_http.helpers import (
    APP_ID,
    ASSERTION_TYPE,
    assertion,
    client_keys,
    public_jwks,
)
from tests.integration.auth_http.launch import (
    code_for,
    code_form,
    launch_params,
    setup_app_and_users,
)

RESOURCE_SERVER = "resource-server"
PARTNER = "partner-hospital"


def staff_token(a: AuthApp, role: str) -> str:
    return issue_access_token(
        a.ctx.keys,
        issuer=a.ctx.issuer,
        audience=a.ctx.fhir_base,
        subject=f"{role}-user",
        client_id="medicore-cli",
        scope="user/*.rs",
        role=role,
        now=a.ctx.now(),
    ).token


async def user_tokens(a: AuthApp) -> dict[str, str]:
    patient = await setup_app_and_users(a)
    launch = launch_params("launch/patient offline_access patient/*.rs")
    code = await code_for(a, launch, patient=patient)
    r = await a.client.post("/auth/token", data=code_form(code, launch.verifier))
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


async def test_revoked_access_token_is_inactive_and_refused(any_auth_app: AuthApp) -> None:
    a = any_auth_app
    tokens = await user_tokens(a)
    itadmin = {"Authorization": f"Bearer {staff_token(a, 'itadmin')}"}
    r = await a.client.post(
        "/auth/introspect", data={"token": tokens["access_token"]}, headers=itadmin
    )
    assert r.status_code == 200, r.text
    live = r.json()
    assert live["active"] is True
    assert (live["client_id"], live["role"], live["sub"]) == (APP_ID, "doctor", "dr.kim")
    r = await a.client.post(
        "/auth/revoke", data={"token": tokens["access_token"], "client_id": APP_ID}
    )
    assert r.status_code == 200
    r = await a.client.post(
        "/auth/introspect", data={"token": tokens["access_token"]}, headers=itadmin
    )
    assert r.json() == {"active": False}
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await principal_from_token(a.ctx, tokens["access_token"])


async def test_revoked_refresh_token_no_longer_refreshes(auth_app: AuthApp) -> None:
    tokens = await user_tokens(auth_app)
    itadmin = {"Authorization": f"Bearer {staff_token(auth_app, 'itadmin')}"}
    refresh = tokens["refresh_token"]
    r = await auth_app.client.post("/auth/introspect", data={"token": refresh}, headers=itadmin)
    assert r.json()["active"] is True and r.json()["token_type"] == "refresh_token"
    r = await auth_app.client.post("/auth/revoke", data={"token": refresh, "client_id": APP_ID})
    assert r.status_code == 200
    r = await auth_app.client.post("/auth/introspect", data={"token": refresh}, headers=itadmin)
    assert r.json() == {"active": False}
    form = {"grant_type": "refresh_token", "client_id": APP_ID, "refresh_token": refresh}
    r = await auth_app.client.post("/auth/token", data=form)
    assert r.json()["error"] == "invalid_grant"


async def test_revoke_is_silent_for_unknown_tokens_and_refuses_other_clients(
    auth_app: AuthApp,
) -> None:
    tokens = await user_tokens(auth_app)
    await auth_app.ctx.repo.put_client(
        client_record("other-app", redirect_uris=["https://o.example/cb"])
    )
    r = await auth_app.client.post("/auth/revoke", data={"token": "garbage", "client_id": APP_ID})
    assert r.status_code == 200
    theft = {"token": tokens["access_token"], "client_id": "other-app"}
    r = await auth_app.client.post("/auth/revoke", data=theft)
    assert r.status_code == 400
    assert (await principal_from_token(auth_app.ctx, tokens["access_token"])).subject == "dr.kim"
    r = await auth_app.client.post("/auth/revoke", data={"token": tokens["access_token"]})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")


async def test_who_may_introspect(auth_app: AuthApp) -> None:
    tokens = await user_tokens(auth_app)
    form = {"token": tokens["access_token"]}
    r = await auth_app.client.post("/auth/introspect", data={**form, "client_id": APP_ID})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    nurse = {"Authorization": f"Bearer {staff_token(auth_app, 'nurse')}"}
    r = await auth_app.client.post("/auth/introspect", data=form, headers=nurse)
    assert r.status_code == 403
    bogus = {"Authorization": "Bearer not.a.token"}
    r = await auth_app.client.post("/auth/introspect", data=form, headers=bogus)
    assert r.status_code == 401
    # a confidential client sees only its own tokens, unless registered to introspect all
    keys: dict[str, RSAKey | ECKey] = client_keys()
    for client_id, allowed in ((PARTNER, False), (RESOURCE_SERVER, True)):
        doc = client_record(
            client_id, scope="system/Patient.rs", jwks=public_jwks(keys), may_introspect=allowed
        )
        await auth_app.ctx.repo.put_client(doc)
        signed = assertion(keys["ES384"], "ES384", client_id)
        auth = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
        r = await auth_app.client.post("/auth/introspect", data={**form, **auth})
        assert r.status_code == 200
        assert r.json()["active"] is allowed
        if allowed:
            assert r.json()["scope"] == tokens["scope"]


async def test_confidential_client_introspects_its_own_token(auth_app: AuthApp) -> None:
    keys: dict[str, RSAKey | ECKey] = client_keys()
    doc = client_record(PARTNER, scope="system/Patient.rs", jwks=public_jwks(keys))
    await auth_app.ctx.repo.put_client(doc)

    def auth() -> dict[str, str]:
        signed = assertion(keys["RS384"], "RS384", PARTNER)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}

    grant = {"grant_type": "client_credentials", "scope": "system/Patient.rs", **auth()}
    token = (await auth_app.client.post("/auth/token", data=grant)).json()["access_token"]
    r = await auth_app.client.post("/auth/introspect", data={"token": token, **auth()})
    assert r.json()["active"] is True
    assert (r.json()["client_id"], r.json()["role"]) == (PARTNER, "system")
    assert r.json()["exp"] - r.json()["iat"] <= 300
