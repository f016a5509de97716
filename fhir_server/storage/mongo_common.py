"""Helpers shared by the MongoDB store's modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.errors import ConfigurationError, ConnectionFailure, PyMongoError

from fhir_server.storage.base import (
    StoredResource,
    StoreError,
    StoreFull,
    StoreUnavailable,
    record_field,
)


def to_resource(doc: dict[str, Any]) -> StoredResource:
    body = doc.get("body")
    return StoredResource(
        resource_type=doc["type"],
        id=doc["id"],
        version=doc["version"],
        last_updated=doc["lastUpdated"],
        deleted=bool(doc.get("deleted")),
        body=body.encode() if isinstance(body, str) else None,
        method=doc.get("method", "PUT"),
    )


# Server error codes that mean the disk or the storage quota is full.
_FULL_CODES = frozenset({14031})  # OutOfDiskSpace


@asynccontextmanager
async def mapped_errors() -> AsyncIterator[None]:
    try:
        yield
    except StoreError:
        raise
    except (ConnectionFailure, ConfigurationError) as exc:  # incl. server selection timeout
        raise StoreUnavailable(
            f"the MongoDB server cannot be reached ({type(exc).__name__})"
        ) from exc
    except PyMongoError as exc:
        if getattr(exc, "code", None) in _FULL_CODES:
            raise StoreFull("the MongoDB server is out of disk space") from exc
        raise StoreUnavailable(f"the MongoDB store failed ({type(exc).__name__})") from exc


def record_query(kind: str, where: dict[str, str | int | bool] | None) -> dict[str, Any]:
    query: dict[str, Any] = {"kind": kind}
    for field_name, value in (where or {}).items():
        query[f"doc.{record_field(field_name)}"] = value
    return query
