"""_summary and _elements applied to one resource (pure; the bundle builder calls it)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_DATA = Path(__file__).with_name("data") / "summary-elements.json"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS = ("resourceType", "id", "meta")


@functools.cache
def _elements() -> dict[str, dict[str, list[str]]]:
    data: dict[str, dict[str, list[str]]] = json.loads(_DATA.read_text(encoding="utf-8"))
    return data


def _keep(resource: dict[str, Any], names: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in resource.items():
        bare = key[1:] if key.startswith("_") else key
        if (
            key in _ALWAYS
            or bare in names
            or any(bare.startswith(n) and bare[len(n) : len(n) + 1].isupper() for n in names)
        ):
            out[key] = value
    return out


def _mark(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if SUBSETTED not in tags:
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    return {**resource, "meta": meta}


def shape(
    resource: dict[str, Any], *, summary: str | None, elements: tuple[str, ...]
) -> dict[str, Any]:
    """The resource as ``_summary``/``_elements`` ask (SUBSETTED-tagged when trimmed)."""
    info = _elements().get(str(resource.get("resourceType")), {"summary": [], "mandatory": []})
    if summary == "true":
        return _mark(_keep(resource, set(info["summary"])))
    if summary == "text":
        return _mark(_keep(resource, {"text", *info["mandatory"]}))
    if summary == "data":
        return _mark({k: v for k, v in resource.items() if k != "text"})
    if elements:
        return _mark(_keep(resource, {*elements, *info["mandatory"]}))
    return resource
