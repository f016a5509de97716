"""Whether a /fhir path names what this server has: resource types it serves, operations
it runs.

What a server serves is public (its CapabilityStatement lists it), so a type or an
operation it does not have is a 404 ``not-supported`` to every authenticated caller,
whatever their scopes; only types that exist get scope decisions (403). The check runs
after authentication (a missing or bad token is a 401 first) and before any scope
decision, on routed paths (``access.establish_caller``) and unrouted ones alike
(``errors``: the router's own 404/405).
"""

from __future__ import annotations

import functools

from fastapi import Request

from fhir_server.observability.labels import route_template
from fhir_server.resources import errors
from fhir_server.resources.meta import SUPPORTED_TYPES

_PREFIX = "/fhir"


def fhir_segments(path: str) -> list[str] | None:
    """The path's segments after ``/fhir`` (None for a path outside it)."""
    if path != _PREFIX and not path.startswith(_PREFIX + "/"):
        return None
    return [s for s in path[len(_PREFIX) :].split("/") if s]


@functools.cache
def _literals() -> frozenset[str]:
    """Fixed segments of the /fhir route templates (``_history``, ``$validate``...)."""
    from fhir_server.api import capability, operations, rest  # they import this module

    return frozenset(
        segment
        for router in (capability.router, operations.router, rest.router)
        for route in router.routes
        for segment in (fhir_segments(getattr(route, "path", "")) or ())
        if not segment.startswith("{")
    )


def check_target(request: Request) -> None:
    """404 not-supported for an unknown type or operation; 405 for a known operation
    asked with a method it does not take."""
    segments = fhir_segments(request.url.path)
    if segments is None:
        return
    literals = _literals()
    template = route_template(request.scope)
    for segment in segments:
        if not segment.startswith("$"):
            continue
        if segment not in literals:
            raise errors.unsupported_target(segment)
        if template is None or segment not in template:
            raise errors.method_not_allowed(f"{segment} is not invoked with {request.method}")
    if template is not None:
        resource_type = request.path_params.get("resource_type")
    else:  # unrouted: the first segment is a type unless it is one of the fixed names
        resource_type = segments[0] if segments and segments[0] not in literals else None
    if resource_type is not None and resource_type not in SUPPORTED_TYPES:
        raise errors.unsupported_target(resource_type)
