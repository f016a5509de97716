"""The ``medicore`` command: ``medicore serve`` and operator subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from fhir_server import cli_audit, cli_auth, cli_hl7, cli_ops
from fhir_server.gc_tuning import tune_for_serving
from fhir_server.security import refuse_demo_in_production
from fhir_server.serving.plan import ServePlan, worker_count
from fhir_server.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("store", args.store))
        if value is not None
    }
    settings = Settings(**overrides)
    if "audit_indexer" not in settings.model_fields_set:
        # The server indexes AuditEvents in a child process unless told otherwise.
        settings = settings.model_copy(update={"audit_indexer": "process"})
    if args.demo:
        refuse_demo_in_production(settings)
    plan = ServePlan(
        settings,
        cli_hl7.hl7_settings_from_args(args),
        log_level=args.log_level,
        demo=args.demo,
        workers=worker_count(args.workers or os.environ.get("MEDICORE_WORKERS") or "1"),
    )
    if plan.workers > 1:
        from fhir_server.serving.supervisor import run_supervised

        return run_supervised(plan)
    return _serve_alone(plan)


def _serve_alone(plan: ServePlan) -> int:
    """One process: uvicorn serves, and the app runs its background duties itself."""
    import uvicorn

    from fhir_server.app import create_app
    from fhir_server.serving.worker import GRACEFUL_SHUTDOWN_SECONDS

    settings = plan.settings
    app = create_app(settings, hl7=plan.hl7, demo=plan.demo)
    tune_for_serving()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=plan.log_level,
        proxy_headers=True,
        access_log=False,  # its lines carry raw query strings (PHI); ours carry none
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medicore", description="MediCore FHIR R4 server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", help="interface to bind (MEDICORE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (MEDICORE_PORT, default 8080)")
    serve.add_argument(
        "--store",
        help="sqlite:///path/file.db (default sqlite:///data/medicore.db) or mongodb://... "
        "(MEDICORE_STORE)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--workers",
        help="server processes sharing the HTTP and MLLP ports: a number or 'auto' (one per "
        "core) (MEDICORE_WORKERS, default 1)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create the handbook's demo accounts (doctor001, nurse001, admin001, itadmin001, "
        "auditor001; password test1234!); refused when MEDICORE_ENV=production",
    )
    cli_hl7.add_serve_arguments(serve)
    serve.set_defaults(handler=_serve)
    cli_audit.register(commands)
    cli_hl7.register(commands)
    cli_auth.register(commands)
    cli_ops.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except ValidationError as exc:  # a MEDICORE_* setting or flag of the wrong form
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
        # a message this project wrote says what is expected; pydantic's own may echo input
        ours = [str(e["ctx"]["error"]) for e in exc.errors() if "MEDICORE_" in str(e.get("ctx"))]
        why = "".join(f"; {text}" for text in ours)
        parser.exit(2, f"medicore: error: invalid setting: {fields}{why}\n")
    except ValueError as exc:  # e.g. a store URI that is neither sqlite:/// nor mongodb://
        parser.exit(2, f"medicore: error: {exc}\n")
    return result


if __name__ == "__main__":
    sys.exit(main())
