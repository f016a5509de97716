"""Regenerate profiles/data from the official R4 files so the server never reads them at run time.

Run: ``python -m profiles.tools.build_data /work/shared/fhir-r4``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from profiles.elements import RESOURCE_TYPES

SKIP_TYPES = {"Element", "BackboneElement", "Resource"}
OPEN_SYSTEMS = {"urn:ietf:bcp:13"}
DATA = Path(__file__).resolve().parent.parent / "data"


def _type_codes(element: dict[str, Any]) -> list[str]:
    codes = []
    for t in element.get("type", []):
        code = t["code"]
        if code.startswith("http://hl7.org/fhirpath/System."):
            code = "string"
        codes.append(code)
    return codes


def _collect(sd: dict[str, Any], elements: dict[str, Any], constraints: dict[str, Any]) -> set[str]:
    used: set[str] = set()
    for el in sd["snapshot"]["element"]:
        path = el["path"]
        entry: dict[str, Any] = {
            "types": _type_codes(el),
            "min": el.get("min", 0),
            "max": el.get("max", "*"),
        }
        if "contentReference" in el:
            entry["ref"] = el["contentReference"].lstrip("#")
        binding = el.get("binding", {})
        if binding.get("strength") == "required" and binding.get("valueSet"):
            entry["binding"] = binding["valueSet"].split("|")[0]
        elements[path] = entry
        used.update(entry["types"])
        for c in el.get("constraint", []):
            if c["key"] in {"ele-1", "ext-1"} or c["key"].startswith("dom-"):
                continue
            if c.get("source", sd["url"]) != sd["url"]:
                continue
            constraints.setdefault(path, []).append(
                {k: c.get(k) for k in ("key", "severity", "human", "expression")}
            )
    return used


def _codes(concepts: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for c in concepts:
        out.append(c["code"])
        out.extend(_codes(c.get("concept", [])))
    return out


def build(src: Path) -> None:
    elements: dict[str, Any] = {}
    constraints: dict[str, Any] = {}
    types_bundle = json.loads((src / "structuredefinitions" / "profiles-types.json").read_text())
    datatypes = {
        e["resource"]["id"]: e["resource"]
        for e in types_bundle["entry"]
        if e["resource"]["kind"] == "complex-type"
    }
    todo: set[str] = set()
    for rt in RESOURCE_TYPES:
        sd = json.loads(
            (src / "structuredefinitions" / f"StructureDefinition-{rt}.json").read_text()
        )
        todo |= _collect(sd, elements, constraints)
    done: set[str] = set()
    while todo - done:
        name = sorted(todo - done)[0]
        done.add(name)
        if name in datatypes and name not in SKIP_TYPES:
            todo |= _collect(datatypes[name], elements, constraints)
    bundle = json.loads((src / "valuesets-required.json").read_text())
    systems = {
        e["resource"]["url"]: _codes(e["resource"].get("concept", []))
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "CodeSystem"
    }
    valuesets: dict[str, Any] = {}
    for e in bundle["entry"]:
        vs = e["resource"]
        if vs["resourceType"] != "ValueSet":
            continue
        codes: list[str] = []
        open_ = False
        for inc in vs["compose"]["include"]:
            if "concept" in inc:
                codes.extend(c["code"] for c in inc["concept"])
            elif inc["system"] in OPEN_SYSTEMS:
                open_ = True
            else:
                codes.extend(systems[inc["system"]])
        valuesets[vs["url"]] = {
            "name": vs.get("name", vs["id"]),
            "codes": sorted(set(codes)),
            "open": open_,
        }
    DATA.mkdir(exist_ok=True)
    (DATA / "elements.json").write_text(json.dumps(elements, sort_keys=True, indent=0) + "\n")
    (DATA / "constraints.json").write_text(json.dumps(constraints, sort_keys=True, indent=1) + "\n")
    (DATA / "valuesets.json").write_text(json.dumps(valuesets, sort_keys=True, indent=1) + "\n")
    shutil.copyfile(src / "required-bindings.json", DATA / "required-bindings.json")


def build_krcore(src: Path) -> None:
    """Copy KR Core's profiles on our six types (differential only) and its explicit ValueSets."""
    out = DATA / "krcore"
    out.mkdir(exist_ok=True)
    for path in sorted((src / "profiles").glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text(encoding="utf-8"))
        if sd.get("kind") != "resource" or sd.get("type") not in RESOURCE_TYPES:
            continue
        sd.pop("snapshot", None)
        sd.pop("text", None)
        (out / path.name).write_text(json.dumps(sd, ensure_ascii=False, indent=1) + "\n")
    for path in sorted((src / "terminology").glob("ValueSet-*.json")):
        vs = json.loads(path.read_text(encoding="utf-8"))
        includes = (vs.get("compose") or {}).get("include") or []
        if includes and all(inc.get("concept") for inc in includes):
            vs.pop("text", None)
            (out / path.name).write_text(json.dumps(vs, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fhir-r4"))
    build_krcore(Path(sys.argv[2] if len(sys.argv) > 2 else "/work/shared/krcore"))
