"""The supervisor's view of the whole server, shared with workers through one file.

A request reaches whichever worker accepted it, and that worker alone cannot tell how
many of its siblings are serving or whether the background duties run. The supervisor
rewrites ``status.json`` (atomically) whenever that changes; every worker reads it for
``/health/ready`` and for the ``medicore_workers_*`` metrics.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fhir_server.observability.health import CheckFailed, CheckFn


@dataclass(slots=True)
class ServerStatus:
    workers: int  # how many the server should run
    serving: list[int] = field(default_factory=list)  # pids of workers running now
    restarts: int = 0  # workers restarted since the server started
    duties: dict[str, str] = field(default_factory=dict)  # background duty -> state

    def save(self, path: Path) -> None:
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)  # readers see the old file or the new one, never half

    @classmethod
    def load(cls, path: Path) -> ServerStatus:
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(**data)

    def describe(self) -> str:
        duties = ", ".join(f"{name} {state}" for name, state in sorted(self.duties.items()))
        text = f"{len(self.serving)} of {self.workers} workers serving"
        return f"{text}; {duties}" if duties else text


def workers_check(path: Path) -> CheckFn:
    """Readiness detail for the whole server; fails (a warning) while a worker is down."""

    async def check() -> str | None:
        try:
            status = ServerStatus.load(path)
        except (OSError, ValueError, TypeError) as exc:
            raise CheckFailed("the supervisor's status cannot be read") from exc
        if len(status.serving) < status.workers or any(
            state != "running" for state in status.duties.values()
        ):
            raise CheckFailed(status.describe())
        return status.describe()

    return check
