"""One worker of a supervised server: uvicorn and the MLLP listener on inherited sockets.

``python -m fhir_server.serving.worker PLAN --http-fd N [--mllp-fd M] --status FILE
--supervisor PID``,
started by the supervisor only. The worker exits when the supervisor is gone, so that a
killed supervisor never leaves orphans holding the ports.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from pathlib import Path

import uvicorn

from fhir_server.gc_tuning import tune_for_serving
from fhir_server.serving.plan import ServePlan
from fhir_server.serving.status import workers_check

_PARENT_POLL_SECONDS = 1.0
GRACEFUL_SHUTDOWN_SECONDS = 30


def serve_worker(
    plan: ServePlan,
    *,
    http: socket.socket,
    mllp: socket.socket | None,
    status: Path,
    supervisor: int,
) -> None:
    from fhir_server.app import create_app

    app = create_app(plan.settings, hl7=plan.hl7, mllp_socket=mllp)
    app.state.health.register("server", workers_check(status), critical=False)
    app.state.metrics.watch_server(status)
    tune_for_serving()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=plan.log_level,
            proxy_headers=True,
            access_log=False,  # its lines carry raw query strings (PHI); ours carry none
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    _exit_with_parent(server, supervisor)
    server.run(sockets=[http])


def _exit_with_parent(server: uvicorn.Server, parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        server.should_exit = True  # the same graceful stop as SIGTERM

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(prog="medicore-worker")
    parser.add_argument("plan", type=Path)
    parser.add_argument("--http-fd", type=int, required=True)
    parser.add_argument("--mllp-fd", type=int)
    parser.add_argument("--status", type=Path, required=True)
    # Given, not read at start: the supervisor may already be gone by then.
    parser.add_argument("--supervisor", type=int, required=True)
    args = parser.parse_args()
    http = socket.socket(fileno=args.http_fd)
    mllp = socket.socket(fileno=args.mllp_fd) if args.mllp_fd is not None else None
    serve_worker(
        ServePlan.read(args.plan),
        http=http,
        mllp=mllp,
        status=args.status,
        supervisor=args.supervisor,
    )


if __name__ == "__main__":
    main()
