"""The auth records on both stores: one-time use holds through insert-if-absent alone."""

from __future__ import annotations

import pytest

from auth.passwords import verify_password
from auth.roles import RoleTable
from fhir_server.security.demo import (
    DEMO_ACCOUNTS,
    DEMO_PASSWORD,
    ProductionRefused,
    refuse_demo_in_production,
    seed_demo_accounts,
)
from fhir_server.security.repository import AuthRepository, secret_key
from fhir_server.security.users import check_login
from fhir_server.settings import Settings
from fhir_server.storage.base import RecordExists, Store
from tests.clock import T0


async def test_jti_replay_and_purge(store: Store) -> None:
    repo = AuthRepository(store, purge_chance=0.0)
    now = T0
    assert await repo.add_if_absent("c1", "j1", expires_at=now + 60, now=now)
    assert not await repo.add_if_absent("c1", "j1", expires_at=now + 60, now=now)
    assert await repo.add_if_absent("c2", "j1", expires_at=now + 60, now=now)  # per client
    assert await repo.add_if_absent("c1", "old", expires_at=now - 10, now=now)
    assert await repo.purge_expired(now=now) == 1
    assert await store.count_records("auth_jti") == 2


async def test_codes_are_one_time_and_stored_hashed(store: Store) -> None:
    repo = AuthRepository(store)
    await repo.save_code("the-code", {"client_id": "app", "exp": T0 + 60})
    assert await store.get_record("auth_code", "the-code") is None
    assert await store.get_record("auth_code", secret_key("the-code")) is not None
    first = await repo.take_code("the-code")
    assert first is not None and first["client_id"] == "app"
    assert await repo.take_code("the-code") is None


async def test_refresh_rotation_happens_once(store: Store) -> None:
    repo = AuthRepository(store)
    doc = {"client_id": "app", "exp": T0 + 60}
    await repo.save_refresh("r1", doc)
    assert await repo.rotate_refresh("r1", doc, "r2", {**doc, "n": 2})
    assert not await repo.rotate_refresh("r1", doc, "r3", doc)
    assert await repo.get_refresh("r1") is None
    assert await repo.get_refresh("r3") is None
    assert (await repo.get_refresh("r2") or {}).get("n") == 2


async def test_revocation_and_unique_users(store: Store) -> None:
    repo = AuthRepository(store)
    await repo.revoke_jti("jti-9", expires_at=T0 + 60)
    assert await repo.is_revoked("jti-9") and not await repo.is_revoked("jti-8")
    await repo.put_user({"username": "u1", "role": "nurse"})
    with pytest.raises(RecordExists):
        await repo.put_user({"username": "u1", "role": "doctor"})


async def test_demo_accounts(store: Store) -> None:
    created = await seed_demo_accounts(store)
    assert created == [name for name, _ in DEMO_ACCOUNTS]
    assert await seed_demo_accounts(store) == []  # idempotent, never overwrites
    repo = AuthRepository(store)
    doc = await check_login(repo, "nurse001", DEMO_PASSWORD)
    assert doc is not None and doc["role"] == "nurse"
    assert await check_login(repo, "nurse001", "wrong") is None
    roles = RoleTable.load()
    for name, role in DEMO_ACCOUNTS:
        user = await repo.get_user(name)
        assert user is not None and user["role"] == role and role in roles
        assert DEMO_PASSWORD not in str(user)
    stored = await repo.get_user("doctor001")
    assert stored is not None and verify_password(stored["password_hash"], DEMO_PASSWORD)


def test_demo_refused_in_production() -> None:
    with pytest.raises(ProductionRefused):
        refuse_demo_in_production(Settings(env="production"))
    refuse_demo_in_production(Settings(env="development"))
