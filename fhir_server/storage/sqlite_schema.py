"""DDL of the SQLite store's own tables; search index tables live in ``sqlite_search``."""

from __future__ import annotations

# ``resource`` holds the current version of each resource (tombstones included); ``rid``
# is the compact key the search index tables point at. ``history`` keeps every version,
# ``seq`` giving the one global order that history paging walks.
RESOURCE_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS resource (
        rid INTEGER PRIMARY KEY,
        rtype TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        body BLOB,
        UNIQUE (rtype, id)
    )""",
    "CREATE INDEX IF NOT EXISTS resource_type_updated ON resource (rtype, last_updated)",
    # Type scans in rid order: a first page is found without sorting the whole type.
    "CREATE INDEX IF NOT EXISTS resource_type_rid ON resource (rtype, rid)",
)
CORE_SCHEMA: tuple[str, ...] = (
    *RESOURCE_SCHEMA,
    """CREATE TABLE IF NOT EXISTS history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        rtype TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        method TEXT NOT NULL,
        body BLOB,
        UNIQUE (rtype, id, version)
    )""",
    "CREATE INDEX IF NOT EXISTS history_type_seq ON history (rtype, seq)",
    "CREATE INDEX IF NOT EXISTS history_updated ON history (last_updated)",
    """CREATE TABLE IF NOT EXISTS record (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID""",
    # Operators list records by status (e.g. failed HL7 messages): keep that cheap.
    "CREATE INDEX IF NOT EXISTS record_status ON record (kind, json_extract(doc, '$.status'))",
)
