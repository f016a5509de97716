"""The work one request may cost: Bundle entries, elements, array lengths, nesting, queries.

Checked on the parsed JSON before any model validation (the fhir.resources models cost
far more per element than this walk), with an early exit at the first limit crossed:

* ``Bundle.entry`` longer than ``max_bundle_entries``: 413 naming ``Bundle.entry``;
* one resource with more than ``max_resource_elements`` JSON values, an array longer than
  ``max_array_length`` or values nested deeper than ``max_depth``: 400 naming the element
  (``Patient.name``, ``Bundle.entry[3].resource.extension[0].extension``);
* a query string longer than ``max_query_bytes`` (414) or with more than
  ``max_query_params`` parameters (400).

Each ``Bundle.entry`` (and each ``resource`` wrapped in a Parameters) is a resource of
its own: its elements are counted and its depth measured from the entry. A Bundle is
walked one entry at a time, yielding to the event loop in between.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from fastapi import Request

from fhir_server.resources import errors
from fhir_server.settings import Settings

__all__ = [
    "RequestLimits",
    "check_document",
    "check_query",
    "check_query_text",
    "check_resource_bounds",
]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_bundle_entries: int = 1000
    max_resource_elements: int = 10_000
    max_array_length: int = 1000
    max_depth: int = 32
    max_query_params: int = 100
    max_query_bytes: int = 8192

    @classmethod
    def of(cls, settings: Settings) -> RequestLimits:
        """The ``MEDICORE_MAX_*`` settings of the same names."""
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


_STEP = 64  # items of a top-level array walked between two yields to the event loop


class _Exceeded(Exception):
    """Unwinds the walk at the first limit crossed; turned into a FhirError at the top."""

    def __init__(self, message: str, path: list[str | int]) -> None:
        super().__init__(message)
        self.message = message
        self.path = list(path)


def _fhirpath(root: str, path: list[str | int]) -> str:
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _Scope:
    """One resource's walk: its element budget, and the path from its root."""

    __slots__ = ("elements", "limits", "path")

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.elements = 0
        self.path: list[str | int] = []

    def walk(self, value: Any, depth: int) -> None:
        limits = self.limits
        if depth > limits.max_depth:
            raise _Exceeded(f"elements are nested more than {limits.max_depth} deep", self.path)
        if isinstance(value, dict):
            self.elements += len(value)
            self._check_count()
            for key, item in value.items():
                if isinstance(item, dict | list):
                    self.path.append(key)
                    self.walk(item, depth + 1)
                    self.path.pop()
        elif isinstance(value, list):
            self.count_items(value)
            for index, item in enumerate(value):
                if isinstance(item, dict | list):
                    self.path.append(index)
                    self.walk(item, depth + 1)
                    self.path.pop()

    def count_items(self, items: list[Any]) -> None:
        """An array's own cost: its length against the array limit, its items against the
        element budget (what they contain is walked separately)."""
        if len(items) > self.limits.max_array_length:
            raise _Exceeded(
                f"an array has {len(items)} items; at most {self.limits.max_array_length} "
                "are accepted",
                self.path,
            )
        self.elements += len(items)
        self._check_count()

    def _check_count(self) -> None:
        if self.elements > self.limits.max_resource_elements:
            # Name the top-level element being walked: where the bulk of the resource is.
            head = self.path[:2] if self.path[:1] == ["resource"] else self.path[:1]
            raise _Exceeded(
                f"the resource has more than {self.limits.max_resource_elements} elements",
                head,
            )


def check_resource_bounds(value: Any, root: str, limits: RequestLimits) -> None:
    """A 400 naming the element (under ``root``) where ``value`` first crosses a limit."""
    scope = _Scope(limits)
    try:
        scope.walk(value, 0)
    except _Exceeded as exc:
        where = _fhirpath(root, exc.path)
        raise errors.bad_request(exc.message, where, code="too-costly") from None


async def _check_in_steps(value: Any, root: str, limits: RequestLimits) -> None:
    """``check_resource_bounds``, yielding to the event loop after each large top-level
    element (a resource near the element limit takes milliseconds to walk)."""
    if not isinstance(value, dict):
        check_resource_bounds(value, root, limits)
        return
    scope = _Scope(limits)
    try:
        scope.elements += len(value)
        scope._check_count()
        for key, item in value.items():
            if isinstance(item, list) and len(item) > _STEP:
                scope.path.append(key)
                await _walk_list_in_steps(scope, item)
                scope.path.pop()
            elif isinstance(item, dict | list):
                scope.path.append(key)
                scope.walk(item, 1)
                scope.path.pop()
    except _Exceeded as exc:
        where = _fhirpath(root, exc.path)
        raise errors.bad_request(exc.message, where, code="too-costly") from None


async def _walk_list_in_steps(scope: _Scope, items: list[Any]) -> None:
    """``scope.walk(items, 1)`` for a top-level array, ``_STEP`` items at a time."""
    scope.count_items(items)
    for start in range(0, len(items), _STEP):
        for index in range(start, min(start + _STEP, len(items))):
            item = items[index]
            if isinstance(item, dict | list):
                scope.path.append(index)
                scope.walk(item, 2)
                scope.path.pop()
        await asyncio.sleep(0)


def _root_name(value: Any, default: str) -> str:
    rtype = value.get("resourceType") if isinstance(value, dict) else None
    return rtype if isinstance(rtype, str) and rtype.isidentifier() else default


async def check_document(document: Any, limits: RequestLimits, *, name: str = "body") -> None:
    """Raise a 413/400 FhirError when a parsed request body crosses a limit."""
    root = _root_name(document, name)
    if not isinstance(document, dict):
        check_resource_bounds(document, root, limits)
        return
    parts: list[tuple[str, Any]] = []  # (FHIRPath of a contained resource, its JSON)
    outer: dict[str, Any] = document
    entries = document.get("entry") if root == "Bundle" else None
    if isinstance(entries, list):
        if len(entries) > limits.max_bundle_entries:
            raise errors.FhirError(
                413,
                "too-costly",
                f"the Bundle has {len(entries)} entries; at most {limits.max_bundle_entries}"
                " are accepted",
                ("Bundle.entry",),
            )
        outer = {k: v for k, v in document.items() if k != "entry"}
        parts = [(f"Bundle.entry[{i}]", entry) for i, entry in enumerate(entries)]
    parameters = document.get("parameter") if root == "Parameters" else None
    if isinstance(parameters, list) and len(parameters) <= limits.max_array_length:
        outer = {k: v for k, v in document.items() if k != "parameter"}
        outer["parameter"] = [
            {k: v for k, v in p.items() if k != "resource"} if isinstance(p, dict) else p
            for p in parameters
        ]
        parts = [
            (f"Parameters.parameter[{i}].resource", p["resource"])
            for i, p in enumerate(parameters)
            if isinstance(p, dict) and "resource" in p
        ]
    await _check_in_steps(outer, root, limits)
    for where, part in parts:
        await asyncio.sleep(0)  # a long Bundle is walked in steps of one entry
        await _check_in_steps(part, where, limits)


def check_query_text(query: str, limits: RequestLimits, *, status: int = 414) -> None:
    """Refuse a query (or form body) that is too long or has too many parameters."""
    if len(query) > limits.max_query_bytes:
        raise errors.FhirError(
            status,
            "too-costly",
            f"the query is longer than {limits.max_query_bytes} characters",
        )
    pairs = [pair for pair in query.split("&") if pair]
    if len(pairs) > limits.max_query_params:
        # Name the parameter given most often: usually the one a client repeats by mistake.
        names = Counter(unquote_plus(pair.split("=", 1)[0]) for pair in pairs)
        name = names.most_common(1)[0][0]
        raise errors.FhirError(
            400,
            "too-costly",
            f"search parameter {name}: the query has {len(pairs)} parameters; at most"
            f" {limits.max_query_params} are accepted",
            (name,),
        )


def limits_of(request: Request) -> RequestLimits:
    limits: RequestLimits | None = getattr(request.app.state, "request_limits", None)
    if limits is None:
        limits = RequestLimits.of(request.app.state.settings)
        request.app.state.request_limits = limits
    return limits


async def check_query(request: Request) -> None:
    """A router dependency: every FHIR request's query string, before any parsing."""
    check_query_text(request.url.query, limits_of(request))
