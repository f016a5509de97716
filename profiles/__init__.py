"""MediCore's FHIR definitions and the validator behind every write and $validate."""

from __future__ import annotations

from profiles.finality import is_final
from profiles.issues import ValidationIssue, has_errors, to_operation_outcome
from profiles.validator import Validator

__all__ = ["ValidationIssue", "Validator", "has_errors", "is_final", "to_operation_outcome"]
