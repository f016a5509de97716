"""The fuzzers' Hypothesis profile and a live HL7 intake with its MLLP listener.

Profile ``fuzz`` (loaded here, for tests/fuzz only): fixed example counts, derandomized so
CI repeats the same inputs, no deadline (a shared 2-core machine), no example database
written into the repository. ``FUZZ_EXAMPLES`` scales the counts for a longer local run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from fhir_server.hl7 import Hl7Settings
from fhir_server.hl7.mllp import MllpListener
from tests.integration.hl7.conftest import Intake, open_intake

T = TypeVar("T")

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
settings.register_profile(
    "fuzz",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def examples(n: int) -> Any:
    """The ``fuzz`` profile with ``n`` examples (times FUZZ_EXAMPLES)."""
    return settings(settings.get_profile("fuzz"), max_examples=max(1, int(n * SCALE)))


#: Frames larger than this are refused (AR, then the connection is closed).
MLLP_LIMIT = 64 * 1024


@dataclass
class LiveIntake:
    """The app's HL7 intake on a real SQLite file, running on its own event-loop thread so
    that synchronous Hypothesis tests can drive it over real sockets."""

    loop: asyncio.AbstractEventLoop
    intake: Intake
    listener: MllpListener

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.listener.port


@pytest.fixture(scope="module")
def live_intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIntake]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-intake", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    opened = open_intake(tmp_path_factory.mktemp("hl7fuzz"), Hl7Settings(mllp_port=0))
    intake = run(opened.__aenter__())
    listener = MllpListener(
        intake.processor,
        host="127.0.0.1",
        port=0,
        max_message_bytes=MLLP_LIMIT,
        idle_timeout=2,
    )
    run(listener.start())
    try:
        yield LiveIntake(loop, intake, listener)
    finally:
        run(listener.stop(grace=5))
        run(opened.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class LogTrap(logging.Handler):
    """Every record logged anywhere (any thread) while installed, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def log_trap() -> Iterator[LogTrap]:
    """Records from every thread (caplog's handler also sees them, but this keeps them
    across Hypothesis examples, which caplog resets per test only)."""
    trap = LogTrap()
    root = logging.getLogger()
    old = root.level
    root.addHandler(trap)
    root.setLevel(logging.DEBUG)
    try:
        yield trap
    finally:
        root.removeHandler(trap)
        root.setLevel(old)


def no_leaks(trap: LogTrap, markers: tuple[str, ...]) -> None:
    """No traceback, no error-level record, and no PHI marker in any log line the server
    wrote (httpx's own request lines are the test client's, not the server's)."""
    for record in trap.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue
        line = record.getMessage()
        assert record.exc_info is None, f"traceback logged: {line}"
        assert record.levelno < logging.ERROR, f"error logged: {line}"
        for marker in markers:
            assert marker not in line, f"PHI marker in a log line: {line}"
