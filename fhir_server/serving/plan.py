"""What ``medicore serve`` was asked to run, in a form a worker process can be given."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_server.hl7.settings import Hl7Settings
from fhir_server.settings import Settings


def worker_count(value: str) -> int:
    """``--workers``: a positive number, or ``auto`` for the cores this process may use."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--workers must be a positive number or 'auto', not {value!r}") from None
    if count < 1:
        raise ValueError("--workers must be at least 1")
    return count


@dataclass(frozen=True, slots=True)
class ServePlan:
    settings: Settings
    hl7: Hl7Settings
    log_level: str = "info"
    demo: bool = False
    workers: int = 1

    def for_worker(self) -> ServePlan:
        """A worker's share: no once-only work, no background duties of its own."""
        return ServePlan(
            settings=self.settings.model_copy(update={"audit_indexer": "external"}),
            hl7=self.hl7.model_copy(update={"hl7_recover_on_startup": False}),
            log_level=self.log_level,
        )

    def write(self, path: Path) -> None:
        """Saved for a worker; owner-only, as the settings may name credentials."""
        data: dict[str, Any] = {
            "settings": self.settings.model_dump(mode="json"),
            "hl7": self.hl7.model_dump(mode="json"),
            "log_level": self.log_level,
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(data, file)

    @classmethod
    def read(cls, path: Path) -> ServePlan:
        data = json.loads(path.read_text())
        return cls(
            settings=Settings(**data["settings"]),
            hl7=Hl7Settings(**data["hl7"]),
            log_level=data["log_level"],
        )
