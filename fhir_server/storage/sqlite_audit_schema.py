"""DDL of the audit chain tables and the triggers that make them append-only."""

from __future__ import annotations

AUDIT_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS audit (
        position INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        recorded TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        event BLOB NOT NULL
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
