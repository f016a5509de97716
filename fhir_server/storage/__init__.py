"""Storage adapters behind one ``Store`` contract; ``open_store`` picks one from a URI."""

from __future__ import annotations

from fhir_server.storage.base import Store, StoreUnavailable


def store_from_uri(
    uri: str,
    *,
    mongo_database: str = "medicore",
    audit_key: bytes = b"",
    sqlite_max_pages: int | None = None,
) -> Store:
    """``sqlite:///path.db`` -> the embedded store; ``mongodb://...`` -> MongoDB.
    ``sqlite_max_pages``: a page limit on the SQLite file (test-only, a stand-in disk)."""
    if uri.startswith("sqlite:///"):
        from fhir_server.storage.sqlite import SqliteStore, sqlite_path_from_uri

        return SqliteStore(
            sqlite_path_from_uri(uri), audit_key=audit_key, max_pages=sqlite_max_pages
        )
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        from fhir_server.storage.mongo import MongoStore

        return MongoStore.from_uri(uri, database=mongo_database, audit_key=audit_key)
    raise ValueError("the store URI must start with sqlite:/// or mongodb://")


__all__ = ["Store", "StoreUnavailable", "store_from_uri"]
