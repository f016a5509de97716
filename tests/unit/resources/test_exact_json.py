"""Decimals keep the digits they were written with (FHIR: precision is significant)."""

from __future__ import annotations

import copy
import pickle

import orjson
import pytest

from fhir_server.resources.exact_json import ExactDecimal, dumps, loads
from fhir_server.resources.meta import from_json, from_json_exact, to_json


@pytest.mark.parametrize(
    "text",
    [
        b'{"v":36.50}',
        b'{"v":[0.010,1.0,2.500]}',
        b'{"v":1.000e1}',
        b'{"v":-3E-2}',
        b'{"v":0.12345678901234567890}',
        b'{"v":123456789012345678901234567890}',
        b'{"a":{"b":[{"v":100.00}]}}',
    ],
)
def test_written_back_as_written(text: bytes) -> None:
    assert dumps(loads(text)) == text


def test_exact_values_still_behave_as_numbers() -> None:
    value = loads(b'{"v":36.50}')["v"]
    assert isinstance(value, float) and value == 36.5 and value > 36
    assert isinstance(value, ExactDecimal) and value.text == "36.50"
    assert copy.deepcopy(value).text == "36.50"
    assert pickle.loads(pickle.dumps(value)).text == "36.50"


def test_stored_resources_are_read_fast_or_exact_as_needed() -> None:
    body = b'{"resourceType":"Observation","valueQuantity":{"value":36.50}}'
    assert type(from_json(body)["valueQuantity"]["value"]) is float  # for decisions
    assert to_json(from_json_exact(body)) == body  # for writing out again


@pytest.mark.parametrize(
    "bad", [b'{"v":NaN}', b'{"v":1.50', b'{"v":"\\ud800"}', b'\xff{"v":1.50}', b'{"v":1e400}']
)
def test_bad_json_is_refused_as_before(bad: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        loads(bad)
