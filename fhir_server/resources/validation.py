"""Every write is checked by the ``profiles`` validator: structure, required bindings,
invariants and claimed profiles. Warnings never block; errors become one 400.
(``offload`` runs these checks for large resources in worker processes.)"""

from __future__ import annotations

from typing import Any

from fhir_server.resources.errors import Issue, invalid_resource
from profiles import ValidationIssue, Validator, has_errors


def to_issue(found: ValidationIssue) -> Issue:
    return Issue(found.severity, found.code, found.message, (found.expression,))


def blocking_issues(validator: Validator, resource: dict[str, Any], *, mode: str) -> list[Issue]:
    """The errors that refuse a write, the first one leading; [] when it may go ahead."""
    found = validator.validate(resource, mode=mode)
    if not has_errors(found):
        return []
    return [to_issue(i) for i in found if i.severity in ("error", "fatal")]


def check_resource(validator: Validator, resource: dict[str, Any], *, mode: str) -> None:
    """Raise a 400 naming every element at fault; the first error leads the outcome."""
    blocking = blocking_issues(validator, resource, mode=mode)
    if blocking:
        raise invalid_resource(blocking)
