"""Schemathesis over the app's own /openapi.json, in-process on a real SQLite file.

Every documented operation gets a fixed number of generated requests (derandomized, so CI
repeats them), sent with a doctor's token (clinical routes) or an IT administrator's (HL7
dead letters): no 5xx, and every response matches the status codes, content types and
schemas the document declares (fhir_server/api/openapi_responses.py).

Schemathesis' own pytest plugin does not run under pytest 9, so the operations are looped
over here and each one's Hypothesis test is run by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fhir_server.app import create_app
from fhir_server.hl7 import Hl7Settings
from fhir_server.settings import Settings

pytestmark = pytest.mark.fuzz

EXAMPLES_PER_OPERATION = 15
# Mostly real types, so generation reaches the handlers rather than only the type check.
TYPES = ("Patient", "Encounter", "MedicationRequest", "Observation", "Provenance", "AuditEvent")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _token(app: Any, role: str, scope: str) -> str:
    from auth.tokens import issue_access_token

    ctx = app.state.security
    issued = issue_access_token(
        ctx.keys,
        issuer=ctx.issuer,
        audience=ctx.fhir_base,
        subject=f"{role}-user",
        client_id="ward-app",
        scope=scope,
        role=role,
    )
    return str(issued.token)


def _contract_test(operation: Any, headers: dict[str, str]) -> Any:
    @given(case=operation.as_strategy(), rtype=st.sampled_from((*TYPES, None)))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case, rtype: str | None) -> None:
        if rtype is not None and "resource_type" in (case.path_parameters or {}):
            case.path_parameters["resource_type"] = rtype
        case.call_and_validate(headers=headers, checks=CHECKS)

    return check


def test_every_operation_keeps_its_contract(tmp_path: Path) -> None:
    app = create_app(
        Settings(store=f"sqlite:///{tmp_path / 'store.db'}", data_dir=str(tmp_path / "data")),
        hl7=Hl7Settings(mllp_port=0),
    )
    doctor = {"Authorization": f"Bearer {_token(app, 'doctor', 'user/*.cruds')}"}
    itadmin = {"Authorization": f"Bearer {_token(app, 'itadmin', 'user/*.cruds')}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        headers = itadmin if operation.path.startswith("/hl7") else doctor
        try:
            _contract_test(operation, headers)()
        except BaseException as exc:  # Hypothesis raises groups: gather every operation's
            failures[operation.label] = str(exc)[:3000]
        tested += 1
    assert tested >= 30  # every documented route was reached
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
