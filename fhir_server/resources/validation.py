"""Every write is checked by the ``profiles`` validator: structure, required bindings,
invariants and claimed profiles. Warnings never block; errors become one 400."""

from __future__ import annotations

from typing import Any

from fhir_server.resources.errors import Issue, invalid_resource
from profiles import ValidationIssue, Validator, has_errors


def to_issue(found: ValidationIssue) -> Issue:
    return Issue(found.severity, found.code, found.message, (found.expression,))


def check_resource(validator: Validator, resource: dict[str, Any], *, mode: str) -> None:
    """Raise a 400 naming every element at fault; the first error leads the outcome."""
    found = validator.validate(resource, mode=mode)
    if has_errors(found):
        blocking = [to_issue(i) for i in found if i.severity in ("error", "fatal")]
        raise invalid_resource(blocking)
