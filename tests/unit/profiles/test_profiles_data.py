"""The shipped data tables agree with the official required-bindings table."""

from __future__ import annotations

import json

import pytest

from profiles.bindings import base_terminology, binding_index
from profiles.elements import DATA_DIR, element_table

REQUIRED = json.loads((DATA_DIR / "required-bindings.json").read_text())["bindings"]
ENTRIES = [
    (rtype, b["path"], b["valueSet"], b["via"]) for rtype, bs in REQUIRED.items() for b in bs
]


def test_every_required_value_set_is_shipped() -> None:
    urls = {vs.split("|")[0] for _, _, vs, _ in ENTRIES}
    terminology = base_terminology()
    assert all(terminology.get(url) is not None for url in urls)
    gender = terminology.get("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
    assert gender is not None
    assert gender.codes == {"male", "female", "other", "unknown"}


@pytest.mark.parametrize(("rtype", "path", "valueset", "via"), ENTRIES)
def test_required_binding_is_indexed(rtype: str, path: str, valueset: str, via: str | None) -> None:
    owner = via.split(">")[-1] if via else path.rsplit(".", 1)[0]
    key = path.rsplit(".", 1)[1]
    url = valueset.split("|")[0]
    index = binding_index().by_parent
    owners = [p for p in index if p == owner or p.startswith(f"{owner}.")]
    found = [(k, vs.url) for p in owners for k, _, vs in index[p]]
    assert (key, url) in found


def test_choice_elements_are_expanded() -> None:
    table = element_table()
    child = table.children["Observation"].get("valueQuantity")
    assert child is not None and child.type == "Quantity" and child.path == "Observation.value[x]"
    ref = table.children["Observation.component"].get("referenceRange")
    assert ref is not None and ref.path == "Observation.referenceRange"


def test_the_leaf_package_knows_the_same_six_types_as_the_server() -> None:
    """``profiles`` may not import the server, so it keeps its own list: the same one."""
    from fhir_server.resources.meta import SUPPORTED_TYPES
    from profiles.elements import RESOURCE_TYPES

    assert RESOURCE_TYPES == SUPPORTED_TYPES
