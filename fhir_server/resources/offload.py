"""Validation and indexing of large resources in worker processes, off the event loop.

Validating a resource with the fhir.resources models and extracting its search index are
pure Python and cost time in proportion to its elements: run in the server process, one
large resource holds the event loop (and every other request) for as long. A worker
thread does not help: the work holds the GIL, and the store's reader and writer threads,
which give the GIL up and take it back at every SQLite call, then wait for it at each
step (measured: reads 15-30x slower during a large write). So resources whose JSON is
larger than ``offload_bytes`` go to a small process pool, and so do all the writes of a
request whose body is larger than that (a long transaction); smaller ones (nearly all)
are checked in the loop, which first yields once, so that a batch of many entries runs
in steps of one entry. With ``workers=0`` everything is checked in the loop.

The workers rebuild the validator and the search registry from the same ``CheckRecipe``
as the server's, so they judge and index exactly as the server does.
A worker that dies is replaced; the write in progress is then checked in the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_server.resources.errors import Issue, invalid_resource
from fhir_server.resources.validation import blocking_issues
from fhir_server.search.extract import IndexEntries, extract_index
from fhir_server.search.registry import SearchRegistry
from fhir_server.zones import load_zone
from profiles import Validator
from profiles.validator import KRCORE_DIR, MEDICORE_DIR

__all__ = ["CheckRecipe", "WriteChecks", "large_request"]

log = logging.getLogger("medicore.offload")

# Set for a request whose body is large (a long transaction): all its writes are checked
# in the workers, so the loop thread does not hold the GIL against the store's threads.
large_request: contextvars.ContextVar[bool] = contextvars.ContextVar("large_request", default=False)


@dataclass(frozen=True)
class CheckRecipe:
    """What the server's validator and search registry are built from, so that a worker
    builds the same (neither pickles: both hold compiled FHIRPath)."""

    profile_dirs: tuple[str, ...] = ()
    mandatory: dict[str, str] = field(default_factory=dict)
    reject_unknown_profiles: bool = False
    search_parameters_dirs: tuple[str, ...] = ()
    timezone: str = "UTC"  # MEDICORE_TIMEZONE: calendar dates are indexed in it

    def validator(self) -> Validator:
        return Validator(
            (MEDICORE_DIR, KRCORE_DIR, *(Path(d) for d in self.profile_dirs)),
            mandatory=self.mandatory,
            reject_unknown_profiles=self.reject_unknown_profiles,
        )

    def registry(self) -> SearchRegistry:
        return SearchRegistry.configured(
            list(self.search_parameters_dirs), zone=load_zone(self.timezone)
        )


_worker_tools: tuple[Validator, SearchRegistry] | None = None


def _start_worker(recipe: CheckRecipe) -> None:
    global _worker_tools
    # Below the server in the scheduler: on a busy host the event loop comes first.
    os.nice(5)
    _worker_tools = (recipe.validator(), recipe.registry())


def _check_in_worker(resource: dict[str, Any], mode: str) -> tuple[list[Issue], IndexEntries]:
    assert _worker_tools is not None
    validator, registry = _worker_tools
    return _check(validator, registry, resource, mode)


def _check(
    validator: Validator, registry: SearchRegistry, resource: dict[str, Any], mode: str
) -> tuple[list[Issue], IndexEntries]:
    """The blocking issues of ``resource`` and, when there are none, its index entries."""
    blocking = blocking_issues(validator, resource, mode=mode)
    if blocking:
        return blocking, IndexEntries()
    return [], extract_index(resource, registry)


class WriteChecks:
    """Validates and indexes each version a write makes: large ones in worker processes."""

    def __init__(
        self,
        validator: Validator,
        registry: SearchRegistry,
        *,
        recipe: CheckRecipe | None = None,
        workers: int = 0,
        offload_bytes: int = 8192,
    ) -> None:
        self.validator = validator
        self.registry = registry
        self.recipe = recipe
        self.workers = workers if recipe is not None else 0
        self.offload_bytes = offload_bytes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def checked_index(
        self, resource: dict[str, Any], *, mode: str, size: int
    ) -> IndexEntries:
        """The index entries of a valid ``resource`` (``size``: its JSON length); a 400
        naming every element at fault otherwise."""
        if self.workers and (size > self.offload_bytes or large_request.get()):
            blocking, index = await self._in_worker(resource, mode)
        else:
            await asyncio.sleep(0)  # one step: other requests run between a Bundle's entries
            blocking, index = _check(self.validator, self.registry, resource, mode)
        if blocking:
            raise invalid_resource(blocking)
        return index

    async def _in_worker(
        self, resource: dict[str, Any], mode: str
    ) -> tuple[list[Issue], IndexEntries]:
        pool = self._pool or self._start()
        try:
            return await asyncio.wrap_future(pool.submit(_check_in_worker, resource, mode))
        except BrokenProcessPool:
            log.error("a validation worker died; it is replaced")
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return _check(self.validator, self.registry, resource, mode)

    def _start(self) -> concurrent.futures.ProcessPoolExecutor:
        assert self.recipe is not None  # workers > 0 only with a recipe
        # "spawn": the server has threads (SQLite, uvicorn), which a fork would copy mid-state.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=functools.partial(_start_worker, self.recipe),
        )
        return self._pool

    @property
    def running(self) -> bool:
        """Whether worker processes are up (they start with the first large write)."""
        return self._pool is not None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
