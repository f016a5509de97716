"""Tokens of `medicore token` are revocable like any other, and a revocation holds at once
in every process: through RFC 7009 `/auth/revoke` and through the operator's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth.tokens import MAX_ACCESS_LIFETIME, issue_access_token
from fhir_server.security.authenticate import AuthenticationFailed, principal_from_token
from fhir_server.security.clients import OPERATOR_CLIENT_ID, ClientConfigError, client_record
from fhir_server.security.context import SecurityContext
from fhir_server.security.operator_tokens import (
    OperatorRefused,
    issue_operator_token,
    revoke_as_operator,
)
from fhir_server.security.principal_cache import PrincipalCache
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SqliteStore
from tests.conftest import AUDIT_KEY
from tests.integration.auth_http.conftest import AuthApp
from tests.integration.auth_http.helpers import APP_ID
from tests.integration.auth_http.launch import staff
from tests.integration.auth_http.test_revoke_introspect import user_tokens

T0 = 1_900_000_000  # tokens are issued and checked at this instant where it matters


async def operator_token(a: AuthApp, *, now: int | None = None) -> str:
    await a.ctx.repo.put_user(staff("dr.cli", "doctor"), new=False)
    issued = await issue_operator_token(a.ctx, username="dr.cli", scope="user/*.rs", now=now)
    return issued.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def frozen_cache() -> PrincipalCache:
    """A cache whose entries never age: a refusal after revocation is not a cache expiry."""
    return PrincipalCache(clock=lambda: 0.0, wall=lambda: 0.0)


def another_process(ctx: SecurityContext) -> SecurityContext:
    """The same store seen by a second worker: its own principal cache, nothing shared."""
    return SecurityContext(
        settings=ctx.settings,
        repo=ctx.repo,
        keys=ctx.keys,
        roles=ctx.roles,
        fhir_base=ctx.fhir_base,
        issuer=ctx.issuer,
        principals=frozen_cache(),
        clock=ctx.clock,
    )


async def test_rfc7009_revocation_of_an_operator_token_is_refused_next_use(
    any_auth_app: AuthApp,
) -> None:
    a = any_auth_app
    a.ctx.principals = frozen_cache()
    token = await operator_token(a)
    assert (await a.client.get("/fhir/Patient", headers=bearer(token))).status_code == 200
    r = await a.client.post("/auth/revoke", data={"token": token, "client_id": OPERATOR_CLIENT_ID})
    assert r.status_code == 200, r.text
    refused = await a.client.get("/fhir/Patient", headers=bearer(token))
    assert refused.status_code == 401
    assert "revoked" in refused.headers["WWW-Authenticate"]


async def test_only_operator_tokens_are_revoked_in_the_operator_clients_name(
    auth_app: AuthApp,
) -> None:
    app_tokens = await user_tokens(auth_app)
    form = {"token": app_tokens["access_token"], "client_id": OPERATOR_CLIENT_ID}
    r = await auth_app.client.post("/auth/revoke", data=form)
    assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")
    still = await principal_from_token(auth_app.ctx, app_tokens["access_token"])
    assert still.client_id == APP_ID
    # an operator token is not revoked in an app's name either
    token = await operator_token(auth_app)
    r = await auth_app.client.post("/auth/revoke", data={"token": token, "client_id": APP_ID})
    assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")
    # naming the operator client with an assertion is not the built-in public client
    signed = {"client_assertion_type": "x", "client_assertion": "a.b.c"}
    r = await auth_app.client.post(
        "/auth/revoke", data={"token": token, "client_id": OPERATOR_CLIENT_ID, **signed}
    )
    assert r.status_code == 401
    assert (await principal_from_token(auth_app.ctx, token)).subject == "dr.cli"


async def test_a_revocation_in_one_process_holds_at_once_in_another(any_auth_app: AuthApp) -> None:
    """Worker A verified the token a moment ago (cached); worker B revokes it."""
    a = any_auth_app
    worker_a, worker_b = another_process(a.ctx), another_process(a.ctx)
    token = await operator_token(a)
    assert (await principal_from_token(worker_a, token)).subject == "dr.cli"
    assert worker_a.principals.get(token) is not None
    await revoke_as_operator(worker_b, token)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await principal_from_token(worker_a, token)
    assert worker_a.principals.get(token) is None


async def test_another_store_instance_on_the_same_file_sees_the_revocation(
    auth_app: AuthApp, tmp_path: Path
) -> None:
    """On SQLite a second process opens the file itself: as `medicore tokens revoke` does."""
    a = auth_app
    a.ctx.principals = frozen_cache()
    token = await operator_token(a)
    assert (await a.client.get("/fhir/Patient", headers=bearer(token))).status_code == 200
    other = SqliteStore(tmp_path / "store.db", audit_key=AUDIT_KEY)
    await other.open()
    try:
        settings = Settings(store=f"sqlite:///{tmp_path / 'store.db'}")
        cli = SecurityContext.build(
            settings, other, security=a.ctx.settings, keys=a.ctx.keys, clock=a.clock
        )
        done = await revoke_as_operator(cli, token)
    finally:
        await other.close()
    assert (done.kind, done.subject, done.recorded) == ("access token", "dr.cli", True)
    assert (await a.client.get("/fhir/Patient", headers=bearer(token))).status_code == 401


async def test_operator_tokens_are_recorded_and_revocable_by_jti(any_auth_app: AuthApp) -> None:
    a = any_auth_app
    await a.ctx.repo.put_user(staff("dr.cli", "doctor"), new=False)
    issued = await issue_operator_token(
        a.ctx, username="dr.cli", scope="user/*.rs", lifetime=600, now=T0
    )
    record = await a.ctx.repo.get_issued(issued.jti)
    assert record == {
        "exp": T0 + 600,
        "iat": T0,
        "sub": "dr.cli",
        "client_id": OPERATOR_CLIENT_ID,
        "scope": issued.claims["scope"],
    }
    done = await revoke_as_operator(a.ctx, issued.jti, now=T0 + 10)
    assert (done.jti, done.subject, done.expires_at, done.recorded) == (
        issued.jti,
        "dr.cli",
        T0 + 600,
        True,
    )
    assert await a.ctx.repo.is_revoked(issued.jti)
    # both records go once the token has expired
    await a.ctx.repo.purge_expired(now=T0 + 601)
    assert await a.ctx.repo.get_issued(issued.jti) is None
    assert not await a.ctx.repo.is_revoked(issued.jti)


async def test_an_unrecorded_jti_is_revoked_for_the_longest_lifetime(auth_app: AuthApp) -> None:
    done = await revoke_as_operator(auth_app.ctx, "no-such-jti", now=T0)
    assert (done.recorded, done.expires_at) == (False, T0 + MAX_ACCESS_LIFETIME)
    assert await auth_app.ctx.repo.is_revoked("no-such-jti")


async def test_the_operator_revokes_any_clients_token_and_refresh_tokens(auth_app: AuthApp) -> None:
    tokens = await user_tokens(auth_app)
    done = await revoke_as_operator(auth_app.ctx, tokens["access_token"])
    assert (done.kind, done.subject, done.recorded) == ("access token", "dr.kim", False)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await principal_from_token(auth_app.ctx, tokens["access_token"])
    done = await revoke_as_operator(auth_app.ctx, tokens["refresh_token"])
    assert done.kind == "refresh token"
    assert await auth_app.ctx.repo.get_refresh(tokens["refresh_token"]) is None


async def test_what_the_operator_cannot_revoke(auth_app: AuthApp) -> None:
    ctx = auth_app.ctx
    foreign = issue_access_token(
        ctx.keys,
        issuer="https://elsewhere.example",
        audience=ctx.fhir_base,
        subject="x",
        client_id="y",
        scope="user/*.rs",
        now=T0,
    ).token
    expired = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject="x",
        client_id="y",
        scope="user/*.rs",
        lifetime=60,
        now=T0 - 120,
    ).token
    for value, reason in ((foreign, "not a live access token"), (expired, "not a live")):
        with pytest.raises(OperatorRefused, match=reason):
            await revoke_as_operator(ctx, value, now=T0)
    for value in ("", "two words", "x" * 300):
        with pytest.raises(OperatorRefused):
            await revoke_as_operator(ctx, value, now=T0)


def test_the_operator_client_id_cannot_be_registered() -> None:
    with pytest.raises(ClientConfigError, match="reserved"):
        client_record(OPERATOR_CLIENT_ID, redirect_uris=["https://a.example/cb"])


async def test_a_cached_verification_still_checks_revocation_each_use(auth_app: AuthApp) -> None:
    """The cache saves the signature check, not the revocation lookup (no clock involved)."""
    ctx = another_process(auth_app.ctx)
    token = await operator_token(auth_app)
    reads: list[str] = []
    real = ctx.repo.is_revoked

    async def counted(jti: str) -> bool:
        reads.append(jti)
        return await real(jti)

    ctx.repo = type(ctx.repo)(ctx.repo.store)
    ctx.repo.is_revoked = counted  # type: ignore[method-assign]
    for _ in range(3):
        await principal_from_token(ctx, token)
    assert len(reads) == 3 and len(set(reads)) == 1
