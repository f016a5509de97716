"""JSON log lines: one object per line, request id from the context, no exception text."""

from __future__ import annotations

import io
import logging

import orjson

from fhir_server.observability.logs import JsonFormatter, configure_logging, request_id_var


def _record(msg: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("medicore.test", logging.INFO, __file__, 1, msg, None, None)
    record.fields = fields
    return record


def test_lines_are_json_with_fields_and_request_id() -> None:
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter().format(_record("request", status=200, route="/fhir/metadata"))
    finally:
        request_id_var.reset(token)
    entry = orjson.loads(line)
    assert entry["event"] == "request"
    assert entry["request_id"] == "req-1"
    assert entry["status"] == 200 and entry["route"] == "/fhir/metadata"
    assert entry["level"] == "info" and entry["logger"] == "medicore.test"
    assert "\n" not in line


def test_exceptions_are_reduced_to_their_class() -> None:
    try:
        raise ValueError("patient Kim Minsu MRN-123 not found")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["error"] == "ValueError"
    assert "Kim" not in orjson.dumps(entry).decode()


def test_configure_logging_is_idempotent() -> None:
    logger = logging.getLogger("medicore")
    before = list(logger.handlers)
    stream = io.StringIO()
    try:
        first = configure_logging(stream=stream)
        second = configure_logging(stream=stream)
        assert first is second
        assert len(logger.handlers) == len({*before, first})
        logging.getLogger("medicore.unit").info("hello", extra={"fields": {"n": 1}})
        assert orjson.loads(stream.getvalue().splitlines()[-1])["n"] == 1
    finally:
        for handler in list(logger.handlers):
            if handler not in before:
                logger.removeHandler(handler)
