"""Print per-resource validation cost (not a test): ``python -m profiles.tools.measure``."""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from profiles import Validator
from profiles.structure import model_issues

EXAMPLES = Path(__file__).resolve().parents[2] / "tests" / "unit" / "profiles" / "examples"
LAB = "https://medicore.example.org/fhir/StructureDefinition/medicore-lab-observation"


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def main(n: int = 200) -> None:
    v = Validator.default()
    lab = json.loads((EXAMPLES / "Observation-f001.json").read_text())
    lab = copy.deepcopy(lab)
    lab["meta"] = {"profile": [LAB]}
    lab["category"] = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }
            ]
        }
    ]
    cases = {
        name: json.loads((EXAMPLES / f"{name}.json").read_text())
        for name in ("Observation-example", "Observation-blood-pressure", "Patient-example")
    }
    cases["Observation-f001 + medicore-lab profile"] = lab
    print(f"{'resource':42} {'model µs':>9} {'total µs':>9} {'ours µs':>8}")
    for name, resource in cases.items():
        model = _per_call_us(partial(model_issues, resource), n)
        total = _per_call_us(partial(v.validate, resource), n)
        print(f"{name:42} {model:9.0f} {total:9.0f} {total - model:8.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
