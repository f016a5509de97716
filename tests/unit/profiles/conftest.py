"""Fixtures for the validator tests: one shared Validator and the official R4 examples."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from profiles import Validator

EXAMPLES = Path(__file__).parent / "examples"
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.json"))


def load_example(name: str) -> dict[str, Any]:
    """A fresh deep copy of an official example, safe to break."""
    return copy.deepcopy(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def validator() -> Validator:
    return Validator.default()


@pytest.fixture
def example() -> Callable[[str], dict[str, Any]]:
    return load_example
