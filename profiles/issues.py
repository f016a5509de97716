"""One shape for every validation finding, so the API can turn them into an OperationOutcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]

BLOCKING: frozenset[str] = frozenset({"fatal", "error"})


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """A finding: severity, OperationOutcome issue-type code, FHIRPath of the element, message.

    The message names elements, value sets and invariants only; it never echoes the value.
    """

    severity: Severity
    code: str
    expression: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.message,
            "expression": [self.expression],
        }


def has_errors(issues: Iterable[ValidationIssue]) -> bool:
    """True when any issue should block a write (warnings and information never do)."""
    return any(i.severity in BLOCKING for i in issues)


def to_operation_outcome(issues: Iterable[ValidationIssue]) -> dict[str, Any]:
    """Build an OperationOutcome; an empty list becomes the spec's single 'all OK' issue."""
    rendered = [i.to_dict() for i in issues]
    if not rendered:
        rendered = [{"severity": "information", "code": "informational", "diagnostics": "All OK"}]
    return {"resourceType": "OperationOutcome", "issue": rendered}
