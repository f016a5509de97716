"""The supervisor of a server with several workers.

It binds the sockets (so every worker accepts on the same ports and the kernel spreads
connections among them), does what must happen once before anyone serves, runs the
background duties once, and keeps ``plan.workers`` worker processes alive. It serves no
request itself. SIGTERM or SIGINT stops the workers gracefully, then the duties.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from fhir_server.audit_indexer import supervise as supervise_audit_indexer
from fhir_server.serving.plan import ServePlan
from fhir_server.serving.processes import keep_running
from fhir_server.serving.status import ServerStatus
from fhir_server.serving.worker import GRACEFUL_SHUTDOWN_SECONDS
from fhir_server.storage.base import StoreError

log = logging.getLogger("medicore.serving")

AUDIT_INDEXER = "audit indexer"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket the workers inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_supervised(plan: ServePlan) -> int:
    """Serve with ``plan.workers`` processes until SIGTERM or SIGINT."""
    settings = plan.settings
    http = bind(settings.host, settings.port)
    mllp_port = plan.hl7.mllp_port
    mllp = bind(plan.hl7.mllp_host or settings.host, mllp_port) if mllp_port else None
    run_dir = Path(tempfile.mkdtemp(prefix="medicore-serve-"))
    try:
        return asyncio.run(Supervisor(plan, http=http, mllp=mllp, run_dir=run_dir).run())
    finally:
        http.close()
        if mllp is not None:
            mllp.close()
        shutil.rmtree(run_dir, ignore_errors=True)


class Supervisor:
    def __init__(
        self, plan: ServePlan, *, http: socket.socket, mllp: socket.socket | None, run_dir: Path
    ) -> None:
        self.plan = plan
        self.http = http
        self.mllp = mllp
        self.run_dir = run_dir
        self.metrics_dir = run_dir / "metrics"
        self.status_path = run_dir / "status.json"
        self.status = ServerStatus(workers=plan.workers, duties={AUDIT_INDEXER: "starting"})
        self._started: set[int] = set()  # worker slots that have had a process

    async def run(self) -> int:
        try:
            await prepare(self.plan)
        except StoreError as exc:  # its message names the store's problem, never data
            log.error("cannot start: %s", exc)
            return 1
        self.metrics_dir.mkdir()
        self._save_status()
        plan_path = self.run_dir / "plan.json"
        self.plan.for_worker().write(plan_path)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        duties = [asyncio.create_task(self._audit_indexer())]
        workers = [
            asyncio.create_task(self._worker(slot, plan_path)) for slot in range(self.plan.workers)
        ]
        log.info(
            "serving on %s:%d with %d workers",
            self.plan.settings.host,
            self.http.getsockname()[1],
            self.plan.workers,
        )
        await stopping.wait()
        log.info("stopping: letting the workers finish their requests")
        await _cancel(workers)
        await _cancel(duties)
        return 0

    async def _worker(self, slot: int, plan_path: Path) -> None:
        command = [sys.executable, "-m", "fhir_server.serving.worker", str(plan_path)]
        command += ["--http-fd", str(self.http.fileno()), "--status", str(self.status_path)]
        command += ["--supervisor", str(os.getpid())]
        fds = [self.http.fileno()]
        if self.mllp is not None:
            command += ["--mllp-fd", str(self.mllp.fileno())]
            fds.append(self.mllp.fileno())
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        current: list[int] = []

        def on_change(pid: int | None) -> None:
            if pid is None:
                self._worker_gone(current.pop())
            else:
                self._worker_up(slot, pid)
                current.append(pid)

        await keep_running(
            f"worker {slot + 1}",
            command,
            env=env,
            pass_fds=fds,
            on_change=on_change,
            stop_timeout=GRACEFUL_SHUTDOWN_SECONDS + 15,
        )

    def _worker_up(self, slot: int, pid: int) -> None:
        if slot in self._started:
            self.status.restarts += 1
        self._started.add(slot)
        self.status.serving.append(pid)
        self._save_status()

    def _worker_gone(self, pid: int) -> None:
        from prometheus_client import multiprocess

        self.status.serving.remove(pid)
        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # its live gauges go
        self._save_status()

    async def _audit_indexer(self) -> None:
        def on_change(pid: int | None) -> None:
            self.status.duties[AUDIT_INDEXER] = "running" if pid else "restarting"
            self._save_status()

        await supervise_audit_indexer(self.plan.settings, on_change=on_change)

    def _save_status(self) -> None:
        self.status.save(self.status_path)


async def prepare(plan: ServePlan) -> None:
    """The once-only start: schema and migrations, demo accounts, HL7 messages a killed
    server left unfinished. Done before any worker serves, so workers never race at it."""
    from fhir_server.app import create_app

    once = ServePlan(
        settings=plan.settings.model_copy(update={"audit_indexer": "external"}),
        hl7=plan.hl7.model_copy(update={"mllp_port": 0}),
    )
    app = create_app(once.settings, hl7=once.hl7, demo=plan.demo)
    async with app.router.lifespan_context(app):
        recovery = app.state.hl7_recovery
        if recovery is not None:
            await recovery


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.warning("a supervised task had failed (%s)", type(result).__name__)
