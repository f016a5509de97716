"""Structural validation of incoming resources with the ``fhir.resources`` R4B models."""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.resources.errors import Issue, invalid_resource


@cache
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def expression_of(resource_type: str, loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as FHIRPath: ``('name', 0)`` -> ``Patient.name[0]``."""
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "__root__":
            path += f".{part}"
    return path


def _describe(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown element"
    if kind.endswith("missing"):
        return "required element is missing"
    # pydantic messages describe the expected form; the offending value is in 'input',
    # which is never echoed because it may be patient data.
    return str(error.get("msg", "invalid value"))


def validate_structure(resource: dict[str, Any]) -> None:
    """Raise a 400 naming every element that breaks the R4 structure of ``resource``."""
    resource_type = resource["resourceType"]
    try:
        _model(resource_type).model_validate(resource)
    except ValidationError as exc:
        issues = [
            Issue(
                "error",
                "required" if e.get("type", "").endswith("missing") else "structure",
                f"{expression_of(resource_type, tuple(e['loc']))}: {_describe(e)}",
                (expression_of(resource_type, tuple(e["loc"])),),
            )
            for e in exc.errors()
        ]
        raise invalid_resource(issues) from None
    except (TypeError, ValueError) as exc:
        raise invalid_resource(
            [Issue("error", "structure", f"{resource_type}: invalid resource", (resource_type,))]
        ) from exc
