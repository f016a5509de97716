"""Parsing the small request forms shared by REST routes and Bundle entries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fhir_server.resources import errors

_ETAG = re.compile(r'^(?:W/)?"?(\d+)"?$')


def parse_etag(value: object, *, header: str = "If-Match") -> int | None:
    """``W/"3"`` (or ``3``) -> 3; None when absent."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    match = _ETAG.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise errors.bad_request(f'{header} must be a version ETag such as W/"3"', header)
    return int(match.group(1))


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_criteria(query: str) -> list[tuple[str, str]]:
    """``identifier=a|b&name=x`` -> pairs, keeping repeats (AND) and commas (OR)."""
    return parse_qsl(query, keep_blank_values=True)


@dataclass(frozen=True, slots=True)
class EntryUrl:
    """``Type``, ``Type/id``, ``Type/id/_history/vid``, ``Type?query`` or ``?query``."""

    resource_type: str | None
    resource_id: str | None
    version: str | None
    query: str | None
    history: bool = False
    operation: str | None = None  # a ``$name`` segment: no Bundle entry runs operations


def parse_entry_url(url: str, *, base_url: str) -> EntryUrl:
    if base_url and url.startswith(base_url.rstrip("/") + "/"):
        url = url[len(base_url.rstrip("/")) + 1 :]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise errors.bad_request(
            "an entry URL must be relative to this server", "Bundle.entry.request.url"
        )
    segments = [s for s in parts.path.split("/") if s]
    query = parts.query if "?" in url else None
    if not segments:
        return EntryUrl(None, None, None, query)
    operation = next((s for s in segments if s.startswith("$")), None)
    if operation is not None:
        named = segments[0] if segments[0] != operation else None
        return EntryUrl(named, None, None, query, operation=operation)
    resource_type = segments[0]
    if len(segments) == 1:
        return EntryUrl(resource_type, None, None, query)
    if len(segments) == 2 and segments[1] == "_history":
        return EntryUrl(resource_type, None, None, query, history=True)
    if len(segments) == 2:
        return EntryUrl(resource_type, segments[1], None, query)
    if len(segments) == 3 and segments[2] == "_history":
        return EntryUrl(resource_type, segments[1], None, query, history=True)
    if len(segments) == 4 and segments[2] == "_history":
        return EntryUrl(resource_type, segments[1], segments[3], query)
    raise errors.bad_request("unsupported entry URL", "Bundle.entry.request.url")
