"""Structured JSON log lines, one object per line, carrying the current request id.

Only the fields a caller passes in ``extra={"fields": {...}}`` are written, plus time,
level, logger, message and the request id; exception text is reduced to the exception
class so a driver message quoting a resource can never reach the log.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "medicore_request_id", default=None
)

ROOT_LOGGER = "medicore"
_HANDLER_NAME = "medicore-json"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; ``record.fields`` holds the structured data."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode()


def configure_logging(*, level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Attach one JSON handler to the ``medicore`` logger (idempotent) and return it."""
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(level.upper())
    for handler in logger.handlers:
        if handler.get_name() == _HANDLER_NAME:
            if stream is not None and isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
            return handler
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    # Propagation stays on (pytest's caplog, an operator's root handler); uvicorn leaves
    # the root logger without handlers, so nothing is printed twice.
    return handler


def get_logger(name: str) -> logging.Logger:
    """A logger under ``medicore.`` so it shares the JSON handler."""
    return logging.getLogger(f"{ROOT_LOGGER}.{name}")
