"""Every official R4 example of our six types passes validation."""

from __future__ import annotations

import pytest

from profiles import Validator, has_errors
from tests.unit.profiles.conftest import EXAMPLE_FILES, load_example

SIX = {"Patient", "Encounter", "MedicationRequest", "Observation", "Provenance", "AuditEvent"}
VITALSIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"


def test_all_48_examples_are_here() -> None:
    types = {name.split("-", 1)[0] for name in EXAMPLE_FILES}
    assert types == SIX
    assert len(EXAMPLE_FILES) == 48


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_official_example_is_valid(validator: Validator, name: str) -> None:
    resource = load_example(name)
    issues = validator.validate(resource)
    assert not has_errors(issues), [(i.expression, i.message) for i in issues]
    # The only thing allowed to be reported: the vital-signs profile we do not ship.
    claimed = resource.get("meta", {}).get("profile", [])
    for issue in issues:
        assert issue.severity == "warning"
        assert issue.code == "not-supported"
        assert VITALSIGNS in claimed and VITALSIGNS in issue.message
        assert issue.expression == f"{resource['resourceType']}.meta.profile[0]"


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_official_example_valid_in_create_and_update_mode(validator: Validator, name: str) -> None:
    resource = load_example(name)
    assert not has_errors(validator.validate(resource, mode="create"))
    assert not has_errors(validator.validate(resource, mode="update"))
