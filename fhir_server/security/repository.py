"""Users, clients, codes, refresh tokens and revocations as store records (both stores).

Kinds and keys:

    auth_user     username          {username, role, password_hash, fhir_user, active}
    auth_client   client_id         {client_id, role, scope, jwks | jwks_url, redirect_uris, ...}
    auth_jti      "<client> <jti>"  {exp}: client-assertion ids seen (replay protection)
    auth_code     sha256(code)      the pending authorization grant
    auth_refresh  sha256(token)     the refresh grant
    auth_revoked  jti | "code:<h>" | "refresh:<h>"   {exp}: revoked or consumed
    auth_issued   jti               {exp, iat, sub, client_id, scope}: tokens `medicore token`
                                    printed, so an operator can revoke one by its jti

One-time use (codes, refresh-token rotation, assertion jti) relies only on the store's
insert-if-absent, so it holds across workers and hosts. Secrets are stored hashed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from typing import Any

from auth.clock import Clock, system_clock
from fhir_server.storage.base import RecordExists, RecordWrite, Store, WriteBatch

USER, CLIENT, JTI, CODE, REFRESH, REVOKED, ISSUED = (
    "auth_user",
    "auth_client",
    "auth_jti",
    "auth_code",
    "auth_refresh",
    "auth_revoked",
    "auth_issued",
)
_EXPIRING = (JTI, CODE, REFRESH, REVOKED, ISSUED)
_PURGE_CHANCE = 0.01


def secret_key(secret: str) -> str:
    """The record key of a bearer secret (code, refresh token): never the secret itself."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AuthRepository:
    """Typed access to the auth records of one `Store`."""

    def __init__(
        self, store: Store, *, purge_chance: float = _PURGE_CHANCE, clock: Clock = system_clock
    ) -> None:
        self.store = store
        self.purge_chance = purge_chance
        self.clock = clock  # what "expired" means when no moment is given

    async def _put(self, kind: str, key: str, doc: dict[str, Any] | None, *, new: bool) -> None:
        await self.store.commit(WriteBatch(records=[RecordWrite(kind, key, doc, if_absent=new)]))

    # users -------------------------------------------------------------------------
    async def get_user(self, username: str) -> dict[str, Any] | None:
        return await self.store.get_record(USER, username)

    async def put_user(self, doc: dict[str, Any], *, new: bool = True) -> None:
        """Insert a user (`RecordExists` if taken) or, with `new=False`, replace it."""
        await self._put(USER, str(doc["username"]), doc, new=new)

    # clients -----------------------------------------------------------------------
    async def get_client(self, client_id: str) -> dict[str, Any] | None:
        return await self.store.get_record(CLIENT, client_id)

    async def put_client(self, doc: dict[str, Any], *, new: bool = True) -> None:
        await self._put(CLIENT, str(doc["client_id"]), doc, new=new)

    # assertion replay (auth.backend_services.JtiStore) ---------------------------------
    async def add_if_absent(self, client_id: str, jti: str, *, expires_at: int, now: int) -> bool:
        """Remember an assertion id; False when it was seen before (a replay)."""
        try:
            await self._put(JTI, f"{client_id} {jti}", {"exp": expires_at}, new=True)
        except RecordExists:
            return False
        if random.random() < self.purge_chance:  # housekeeping, not correctness
            await self.purge_expired(now=now)
        return True

    # authorization codes -----------------------------------------------------------
    async def save_code(self, code: str, doc: dict[str, Any]) -> None:
        await self._put(CODE, secret_key(code), doc, new=True)

    async def take_code(self, code: str) -> dict[str, Any] | None:
        """The grant behind `code`, consumed atomically; None if unknown or already used."""
        key = secret_key(code)
        doc = await self.store.get_record(CODE, key)
        if doc is None:
            return None
        marker = RecordWrite(REVOKED, f"code:{key}", {"exp": doc["exp"]}, if_absent=True)
        try:
            await self.store.commit(WriteBatch(records=[marker, RecordWrite(CODE, key, None)]))
        except RecordExists:
            return None
        return doc

    # refresh tokens ----------------------------------------------------------------
    async def save_refresh(self, token: str, doc: dict[str, Any]) -> None:
        await self._put(REFRESH, secret_key(token), doc, new=True)

    async def get_refresh(self, token: str) -> dict[str, Any] | None:
        return await self.store.get_record(REFRESH, secret_key(token))

    async def rotate_refresh(
        self, old: str, old_doc: dict[str, Any], new: str | None, new_doc: dict[str, Any] | None
    ) -> bool:
        """Consume `old` and store `new` in one batch; False if `old` was already used."""
        key = secret_key(old)
        writes = [
            RecordWrite(REVOKED, f"refresh:{key}", {"exp": old_doc["exp"]}, if_absent=True),
            RecordWrite(REFRESH, key, None),
        ]
        if new is not None and new_doc is not None:
            writes.append(RecordWrite(REFRESH, secret_key(new), new_doc, if_absent=True))
        try:
            await self.store.commit(WriteBatch(records=writes))
        except RecordExists:
            return False
        return True

    # access-token revocation -------------------------------------------------------
    async def revoke_jti(self, jti: str, *, expires_at: int) -> None:
        await self._put(REVOKED, jti, {"exp": expires_at}, new=False)

    async def is_revoked(self, jti: str) -> bool:
        return await self.store.get_record(REVOKED, jti) is not None

    # operator-issued tokens (`medicore token`) -------------------------------------
    async def record_issued(self, jti: str, doc: dict[str, Any]) -> None:
        """Remember a token the operator command printed (its jti is random: never taken)."""
        await self._put(ISSUED, jti, doc, new=True)

    async def get_issued(self, jti: str) -> dict[str, Any] | None:
        return await self.store.get_record(ISSUED, jti)

    # housekeeping ------------------------------------------------------------------
    async def purge_expired(
        self, *, now: int | None = None, kinds: Iterable[str] = _EXPIRING, batch: int = 500
    ) -> int:
        """Delete expired records of the expiring kinds; return how many went."""
        at = int(self.clock()) if now is None else now
        removed = 0
        for kind in kinds:
            after: str | None = None
            while True:
                rows = await self.store.find_records(kind, after=after, limit=batch)
                gone = [RecordWrite(kind, key, None) for key, doc in rows if _expired(doc, at)]
                if gone:
                    await self.store.commit(WriteBatch(records=gone))
                    removed += len(gone)
                if len(rows) < batch:
                    break
                after = rows[-1][0]
        return removed


def _expired(doc: dict[str, Any], now: int) -> bool:
    exp = doc.get("exp")
    return isinstance(exp, int) and exp < now


__all__ = ["AuthRepository", "secret_key"]
