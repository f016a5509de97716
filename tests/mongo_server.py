"""Start and stop the real MongoDB wire-protocol server the MongoDB tests run against.

No mongod can be installed on these machines; SecantusDB (PyPI) speaks the protocol over
WiredTiger, with multi-document transactions when it runs as a one-node replica set (its
default) and without them with ``--standalone``. It is installed into its own venv so its
dependencies never mix with the project's.

    python3 tests/mongo_server.py start [--standalone] [--port 27117]   # prints the URI
    MEDICORE_TEST_MONGODB_URI=<uri> .venv/bin/python -m pytest -q -k mongo
    python3 tests/mongo_server.py stop [--port 27117]

Each server is known by its port (``.mongo-test/server-<port>.pid``), so that two test
sessions side by side (each starts one on a free port) never stop each other's.

Known differences from mongod that matter here (docs/operations/mongodb-tests.md has the
list): an in-memory data directory, no authentication unless asked, a single node.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VERSION = "SecantusDB==0.7.0b3"
HOME = Path(__file__).resolve().parent.parent / ".mongo-test"
VENV = HOME / "venv"
READY_SECONDS = 60.0
# How long the server keeps a dead client's open transaction (mongod's
# ``transactionLifetimeLimitSeconds``, 60 s by default; the runbook advises 10 s). A test
# that kills a MediCore process mid-transaction waits this long for its writes.
TRANSACTION_LIFETIME_SECONDS = 10.0
# SecantusDB has no flag for it: its own entry point, with the constructor's default set.
_LAUNCHER = (
    "import sys\n"
    "from secantus.server import SecantusDBServer\n"
    "defaults = SecantusDBServer.__init__.__kwdefaults__\n"
    "defaults['transaction_lifetime_seconds'] = float(sys.argv[1])\n"
    "from secantus.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _venv_bin(name: str) -> Path:
    return VENV / "bin" / name


def _pid_file(port: int) -> Path:
    return HOME / f"server-{port}.pid"


def log_file(port: int) -> Path:
    return HOME / f"server-{port}.log"


def install() -> None:
    """The server's own venv, made once (pip is quiet when it is already there)."""
    if not _venv_bin("python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not _venv_bin("secantusd-py").exists():
        subprocess.run([str(_venv_bin("pip")), "install", "-q", VERSION], check=True)


def start(port: int, *, standalone: bool) -> str:
    stop(port)  # one a killed session left on this port
    install()
    HOME.mkdir(exist_ok=True)
    command = [
        str(_venv_bin("python")), "-c", _LAUNCHER, str(TRANSACTION_LIFETIME_SECONDS),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--storage-path", ":memory:",
        "--log-level", "WARNING",
    ]  # fmt: skip
    if standalone:
        command.append("--standalone")
    with log_file(port).open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    _pid_file(port).write_text(str(process.pid))
    uri = f"mongodb://127.0.0.1:{port}/"
    _wait_ready(uri, process, port=port, standalone=standalone)
    return uri


def _wait_ready(uri: str, process: subprocess.Popen[bytes], *, port: int, standalone: bool) -> None:
    """Until the server answers ``hello`` (as a replica set primary unless standalone)."""
    probe = (
        "import sys, pymongo\n"
        "c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=1000)\n"
        "hello = c.admin.command('hello')\n"
        "sys.exit(0 if sys.argv[2] == 'standalone' or hello.get('isWritablePrimary') else 1)\n"
    )
    mode = "standalone" if standalone else "replset"
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}); see {log_file(port)}")
        ready = subprocess.run(
            [str(_venv_bin("python")), "-c", probe, uri, mode], capture_output=True
        )
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    stop(port)
    raise SystemExit(
        f"the server did not become ready in {READY_SECONDS:.0f} s; see {log_file(port)}"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop(port: int) -> None:
    """Stop the server ``start`` started on ``port`` (by the PID it left), if it still runs."""
    pid_file = _pid_file(port)
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--port", type=int, default=27117)
    parser.add_argument("--standalone", action="store_true", help="no replica set, no transactions")
    args = parser.parse_args()
    if args.action == "start":
        print(start(args.port, standalone=args.standalone))
    else:
        stop(args.port)


if __name__ == "__main__":
    main()
