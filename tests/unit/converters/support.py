"""Helpers for the converter tests: sample loading, R4B validation, Bundle lookups."""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from converters import Conversion, convert

SAMPLES = Path(__file__).parent / "samples"
PUBLIC = SAMPLES / "public"
OWN = SAMPLES / "own"


def raw(name: str) -> bytes:
    """Bytes of a sample: ``own/x.hl7`` or ``public/x.hl7``."""
    return (SAMPLES / name).read_bytes()


def expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PUBLIC / name).read_text(encoding="utf-8-sig"))
    return data


def _model(resource_type: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Every entry's resource and the Bundle itself must pass the R4B models."""
    _model("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        _model(resource["resourceType"]).model_validate(resource)


def converted(name: str, **kwargs: Any) -> Conversion:
    """Convert a sample and validate what came out."""
    result = convert(raw(name), **kwargs)
    validate_bundle(result.bundle)
    return result


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def entries(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def one(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources(bundle, resource_type)
    assert len(found) == 1, f"{len(found)} {resource_type} entries"
    return found[0]


def same_instant(left: str, right: str) -> bool:
    """Two FHIR dateTimes with time zones denote the same moment."""
    return datetime.fromisoformat(left) == datetime.fromisoformat(right)


def codes(concept: dict[str, Any] | None) -> set[str]:
    return {c["code"] for c in (concept or {}).get("coding", []) if "code" in c}
