"""The AuditEvent indexer process: keeps recorded AuditEvents searchable, beside the server.

Indexing an AuditEvent costs more CPU than recording it. In the server's process it
would share the one event loop (and its GIL) with requests while the machine's other
cores idle, so ``medicore serve`` runs ``medicore audit index --follow`` as a child
process and restarts it if it dies. Nothing depends on it being alive: the server still
brings the index up to date itself before answering a search that reads AuditEvents.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from fhir_server.gc_tuning import tune_for_serving
from fhir_server.search.registry import SearchRegistry
from fhir_server.serving.processes import OnChange, keep_running
from fhir_server.settings import Settings
from fhir_server.storage.base import Store

log = logging.getLogger("medicore.audit")

_NICENESS = 10
_IDLE_SECONDS = 0.2  # nothing to index: look again this much later
_RETRY_SECONDS = 5.0  # the store failed: one warning per wait, not a flood


async def follow(store: Store, *, registry: SearchRegistry, parent_pid: int | None) -> None:
    """Index as events arrive; return when the parent process is gone."""
    # Background work: the scheduler serves requests first and gives this the spare CPU.
    os.nice(_NICENESS)
    tune_for_serving()
    while parent_pid is None or os.getppid() == parent_pid:
        try:
            indexed = await store.index_audit(registry=registry)
        except Exception as exc:  # the store is down, or worse: never a crash loop
            log.warning("audit indexer: indexing failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(_RETRY_SECONDS)
            continue
        if indexed == 0:
            await asyncio.sleep(_IDLE_SECONDS)


def _child_environment(settings: Settings) -> dict[str, str]:
    """The server's environment with the settings the indexer needs made explicit
    (they may have come from command-line flags rather than the environment)."""
    return {
        **os.environ,
        "MEDICORE_STORE": settings.store,
        "MEDICORE_MONGO_DATABASE": settings.mongo_database,
        "MEDICORE_DATA_DIR": settings.data_dir,
        "MEDICORE_SEARCH_PARAMETERS_DIRS": json.dumps(settings.search_parameters_dirs),
    }


async def supervise(settings: Settings, *, on_change: OnChange | None = None) -> None:
    """Run the indexer process until cancelled, restarting it (with backoff) if it exits."""
    command = [sys.executable, "-m", "fhir_server.cli", "audit", "index", "--follow"]
    command += ["--parent", str(os.getpid())]
    await keep_running(
        "audit indexer process", command, env=_child_environment(settings), on_change=on_change
    )
