"""Both search backends behind one tiny async facade, fed with the same resources."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fhir_server.search.extract import extract_index
from fhir_server.search.parse import parse_search
from fhir_server.search.query import SearchQuery
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage import mongo_search, sqlite_search
from fhir_server.storage.base import SearchResult
from fhir_server.storage.sqlite_audit_index import INDEX_SCHEMA, RID_BASE, attach, index_path
from fhir_server.storage.sqlite_schema import CORE_SCHEMA
from tests.conftest import mongo_uri

EXAMPLES = Path(__file__).with_name("examples")  # official R4 examples (CC0), copied
BASE_URL = "http://medicore.test/fhir"
LAST_UPDATED = "2026-01-01T00:00:00+00:00"


def examples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES.glob("*.json"))]


def mongo_client() -> Any:
    """A client of the real server the tests' script started (tests/conftest.py)."""
    from pymongo import AsyncMongoClient

    return AsyncMongoClient(mongo_uri(), serverSelectionTimeoutMS=5000, tz_aware=True)


class Backend:
    """Writes resources into one store's search index and runs parsed searches on it."""

    def __init__(self, kind: str, registry: SearchRegistry) -> None:
        self.kind = kind
        self.registry = registry
        self.conn: sqlite3.Connection | None = None
        self.audit_conn: sqlite3.Connection | None = None
        self._rids = 0
        self.db: Any = None
        self.client: Any = None

    async def open(self) -> None:
        if self.kind == "sqlite":
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            for statement in (*CORE_SCHEMA, *sqlite_search.SCHEMA):
                self.conn.execute(statement)
            # AuditEvents go into their own file, attached as the server's readers do.
            store_path = Path(tempfile.mkdtemp()) / "search.db"
            self.audit_conn = sqlite3.connect(index_path(store_path), isolation_level=None)
            for statement in INDEX_SCHEMA:
                self.audit_conn.execute(statement)
            attach(self.conn, store_path)
        else:
            self.client = mongo_client()
            self.db = self.client[f"search_test_{uuid.uuid4().hex[:12]}"]
            await mongo_search.ensure_indexes(self.db)

    async def close(self) -> None:
        if self.db is not None:
            await self.client.drop_database(self.db.name)
            await self.client.close()

    async def put(self, resource: dict[str, Any], *, deleted: bool = False) -> None:
        rtype, rid = resource["resourceType"], resource["id"]
        entries = extract_index(resource, self.registry)
        body = json.dumps(resource)
        if self.conn is not None:
            conn = self.audit_conn if rtype == "AuditEvent" else self.conn
            row = conn.execute(
                "SELECT rid FROM resource WHERE rtype = ? AND id = ?", (rtype, rid)
            ).fetchone()
            if row:
                sqlite_search.delete_index(conn, row[0])
                conn.execute(
                    "UPDATE resource SET deleted = ?, body = ? WHERE rid = ?",
                    (int(deleted), None if deleted else body.encode(), row[0]),
                )
                key = row[0]
            else:
                cur = conn.execute(
                    "INSERT INTO resource (rid, rtype, id, version, last_updated, deleted, body)"
                    " VALUES (?, ?, ?, 1, ?, ?, ?)",
                    (self._new_rid(rtype), rtype, rid, LAST_UPDATED, int(deleted), body.encode()),
                )
                key = cur.lastrowid
            if not deleted:
                sqlite_search.write_indexes(conn, [(key, rtype, entries)])
        else:
            doc = {
                "_id": f"{rtype}/{rid}",
                "type": rtype,
                "id": rid,
                "version": 1,
                "lastUpdated": LAST_UPDATED,
                "deleted": deleted,
                "body": None if deleted else body,
                "idx": {} if deleted else mongo_search.index_document(entries),
            }
            await self.db["resources"].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def _new_rid(self, resource_type: str) -> int:
        self._rids += 1
        return self._rids + (RID_BASE if resource_type == "AuditEvent" else 0)

    def parse(
        self, resource_type: str | None, params: Sequence[tuple[str, str]], **kw: Any
    ) -> SearchQuery:
        return parse_search(resource_type, params, self.registry, base_url=BASE_URL, **kw)

    async def run(self, query: SearchQuery) -> SearchResult:
        if self.conn is not None:
            return sqlite_search.execute(self.conn, query)
        return await mongo_search.execute(self.db, query)

    async def search(
        self, resource_type: str | None, params: Sequence[tuple[str, str]], **kw: Any
    ) -> SearchResult:
        return await self.run(self.parse(resource_type, params, **kw))

    async def ids(self, resource_type: str | None, params: Sequence[tuple[str, str]]) -> set[str]:
        result = await self.search(resource_type, [*params, ("_count", "1000")])
        return {m.id for m in result.matches}

    async def matching(self, query: SearchQuery, *, limit: int) -> list[str]:
        if self.conn is not None:
            return [m.id for m in sqlite_search.matching(self.conn, query, limit=limit)]
        return [m.id for m in await mongo_search.matching(self.db, query, limit=limit)]
