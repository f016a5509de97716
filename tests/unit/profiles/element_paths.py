"""Paths into a resource's JSON, for tests that mutate one element at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def element_paths(
    value: Any, *, depth: int, skip: frozenset[str] = frozenset(), prefix: tuple[Any, ...] = ()
) -> Iterator[tuple[Any, ...]]:
    """Every key path up to ``depth`` steps, pre-order; list items: the first two only."""
    if len(prefix) >= depth:
        return
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value[:2])
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        if key in skip:
            continue
        yield (*prefix, key)
        yield from element_paths(child, depth=depth, skip=skip, prefix=(*prefix, key))
