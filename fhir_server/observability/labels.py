"""Metric and log labels from the route template, never the raw path (ids are not labels)."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from fhir_server.resources.meta import SUPPORTED_TYPES

# Types the server serves; anything else in ``{resource_type}`` is reported as "other"
# so a client probing random paths cannot grow the label set.
KNOWN_TYPES = frozenset(SUPPORTED_TYPES)

_INTERACTIONS: dict[tuple[str, str], str] = {
    ("GET", "/fhir/metadata"): "capabilities",
    ("GET", "/fhir/_history"): "history-system",
    ("GET", "/fhir"): "search-system",
    ("GET", "/fhir/"): "search-system",
    ("POST", "/fhir"): "batch-transaction",
    ("POST", "/fhir/"): "batch-transaction",
    ("GET", "/fhir/{resource_type}/_history"): "history-type",
    ("POST", "/fhir/{resource_type}/_search"): "search-type",
    ("GET", "/fhir/{resource_type}"): "search-type",
    ("POST", "/fhir/{resource_type}"): "create",
    ("PUT", "/fhir/{resource_type}"): "conditional-update",
    ("DELETE", "/fhir/{resource_type}"): "conditional-delete",
    ("GET", "/fhir/{resource_type}/{resource_id}/_history"): "history-instance",
    ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version}"): "vread",
    ("GET", "/fhir/{resource_type}/{resource_id}"): "read",
    ("PUT", "/fhir/{resource_type}/{resource_id}"): "update",
    ("PATCH", "/fhir/{resource_type}/{resource_id}"): "patch",
    ("DELETE", "/fhir/{resource_type}/{resource_id}"): "delete",
}


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (``/fhir/{resource_type}/{resource_id}``)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def interaction(method: str, template: str | None) -> str:
    """A FHIR interaction name, ``operation`` for ``$op`` routes, else ``other``/``unmatched``."""
    if template is None:
        return "unmatched"
    known = _INTERACTIONS.get((method, template))
    if known is not None:
        return known
    if "$" in template:
        return "operation"
    if template.startswith("/health"):
        return "health"
    return "other"


def resource_type(scope: Scope) -> str:
    """The resource type from the path parameters, bounded to :data:`KNOWN_TYPES`."""
    params = scope.get("path_params") or {}
    value = params.get("resource_type")
    if value is None:
        return "-"
    return value if value in KNOWN_TYPES else "other"


def query_shape(query_string: bytes) -> list[str]:
    """The parameter NAMES of a query string (with modifiers), sorted; values never appear."""
    names: set[str] = set()
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        name = part.split("=", 1)[0]
        name = name.replace("%3A", ":").replace("%3a", ":")
        # Names are short tokens; anything else is reported as a placeholder.
        if len(name) <= 64 and all(c.isalnum() or c in "_-:.$" for c in name):
            names.add(name)
        else:
            names.add("?")
    return sorted(names)
