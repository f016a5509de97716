"""Structural checks with the fhir.resources R4B models (shortcut by ``fastmodel``)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from profiles.fastmodel import surely_valid
from profiles.issues import ValidationIssue

_CODES = {
    "missing": ("required", "required element is missing"),
    "model_field_validation.missing": ("required", "required element is missing"),
    "extra_forbidden": ("structure", "unknown element"),
}


def loc_to_expression(resource_type: str, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into a FHIRPath like ``Patient.name[0].given``."""
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
    return out


def _message(error: Any) -> str:
    code_msg = _CODES.get(error["type"])
    if code_msg:
        return code_msg[1]
    msg = str(error.get("msg", "invalid value"))
    value = error.get("input")
    if isinstance(value, str | int | float) and len(str(value)) > 1 and str(value) in msg:
        return "invalid value"
    return msg


def model_issues(resource: Any) -> list[ValidationIssue]:
    """Validate with the R4B model; every pydantic error becomes one issue."""
    if not isinstance(resource, dict):
        return [ValidationIssue("fatal", "structure", "", "the body is not a JSON object")]
    rt = resource.get("resourceType")
    if not isinstance(rt, str) or not rt:
        return [ValidationIssue("fatal", "required", "resourceType", "resourceType is missing")]
    try:
        model = get_fhir_model_class(rt)
    except (ValueError, KeyError, AttributeError):
        return [ValidationIssue("fatal", "not-supported", "resourceType", "unknown resource type")]
    if surely_valid(model, resource):
        return []
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            code = _CODES.get(err["type"], ("value", ""))[0]
            expr = loc_to_expression(rt, tuple(err["loc"]))
            issues.append(ValidationIssue("error", code, expr, f"{expr}: {_message(err)}"))
        return issues
    except (TypeError, ValueError, KeyError, AttributeError):
        # fhir.resources itself trips on some malformed input (e.g. an unknown contained type).
        return [ValidationIssue("error", "structure", rt, "the resource could not be parsed")]
    except RecursionError:  # elements nested hundreds deep (e.g. extensions of extensions)
        return [ValidationIssue("error", "too-costly", rt, "the resource is nested too deeply")]
    return []
