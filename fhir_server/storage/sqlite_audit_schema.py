"""DDL of the audit chain tables and the triggers that make them append-only."""

from __future__ import annotations

import sqlite3

# Files from before layout 2 (issue 14) have no ``layout`` column: their rows are layout 1.
_LAYOUT_COLUMN = "layout INTEGER NOT NULL DEFAULT 1"

AUDIT_SCHEMA: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS audit (
        position INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        recorded TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        event BLOB NOT NULL,
        {_LAYOUT_COLUMN}
    )""",
    "CREATE INDEX IF NOT EXISTS audit_recorded ON audit (recorded)",
    # No code path changes an audit record; these make the database refuse it too.
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    # Files written before the index moved to its own file keep AuditEvent rows here.
    """CREATE TRIGGER IF NOT EXISTS audit_resource_no_update BEFORE UPDATE ON resource
        WHEN OLD.rtype = 'AuditEvent'
        BEGIN SELECT RAISE(ABORT, 'AuditEvent resources are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_resource_no_delete BEFORE DELETE ON resource
        WHEN OLD.rtype = 'AuditEvent'
        BEGIN SELECT RAISE(ABORT, 'AuditEvent resources are append-only'); END""",
)


def add_layout_column(conn: sqlite3.Connection) -> None:
    """Give a file from before layout 2 its ``layout`` column (old rows read as layout 1).

    Adding a column with a constant default rewrites no row, so the append-only triggers
    are not involved; two processes opening the same old file may race, and the loser's
    "duplicate column" is the winner's success.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
    if "layout" in columns:
        return
    try:
        conn.execute(f"ALTER TABLE audit ADD COLUMN {_LAYOUT_COLUMN}")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise
