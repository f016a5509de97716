"""Labels are bounded: interaction names and known types, never ids or values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fhir_server.observability import labels


@pytest.mark.parametrize(
    ("method", "template", "expected"),
    [
        ("GET", "/fhir/{resource_type}/{resource_id}", "read"),
        ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version}", "vread"),
        ("PUT", "/fhir/{resource_type}/{resource_id}", "update"),
        ("PATCH", "/fhir/{resource_type}/{resource_id}", "patch"),
        ("DELETE", "/fhir/{resource_type}/{resource_id}", "delete"),
        ("POST", "/fhir/{resource_type}", "create"),
        ("GET", "/fhir/{resource_type}", "search-type"),
        ("POST", "/fhir/{resource_type}/_search", "search-type"),
        ("GET", "/fhir/_history", "history-system"),
        ("POST", "/fhir", "batch-transaction"),
        ("GET", "/fhir/metadata", "capabilities"),
        ("POST", "/fhir/{resource_type}/$validate", "operation"),
        ("GET", "/health/ready", "health"),
        ("GET", "/docs", "other"),
        ("GET", None, "unmatched"),
    ],
)
def test_interaction_names(method: str, template: str | None, expected: str) -> None:
    assert labels.interaction(method, template) == expected


def test_resource_type_is_bounded_to_known_types() -> None:
    assert labels.resource_type({"path_params": {"resource_type": "Observation"}}) == "Observation"
    assert labels.resource_type({"path_params": {"resource_type": "Kim-Minsu"}}) == "other"
    assert labels.resource_type({"path_params": {}}) == "-"
    assert labels.resource_type({}) == "-"


def test_route_template_comes_from_the_matched_route() -> None:
    scope = {"route": SimpleNamespace(path="/fhir/{resource_type}")}
    assert labels.route_template(scope) == "/fhir/{resource_type}"
    assert labels.route_template({}) is None


def test_query_shape_keeps_names_and_drops_values() -> None:
    query = b"family=Kim&birthdate=ge1960-01-01&identifier=urn%3Aoid%3A1%7CMRN-1&name%3Aexact=Lee"
    assert labels.query_shape(query) == ["birthdate", "family", "identifier", "name:exact"]
    assert labels.query_shape(b"") == []
    # A "name" that is really data (e.g. a pasted identifier with spaces) is not echoed.
    assert labels.query_shape(b"Kim%20Minsu%20800101=1&_count=5") == ["?", "_count"]
