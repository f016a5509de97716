"""Profiles (StructureDefinition constraints, differential only) compiled into element trees.

Supported in a differential: min/max, fixed[x], pattern[x], required bindings (value sets
from R4 or shipped beside the profiles), and slicing with ``value``/``pattern``
discriminators (typically ``system`` of an Identifier or Coding, or ``$this``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiles.bindings import Terminology, code_issue
from profiles.issues import ValidationIssue

DATA_DIR = Path(__file__).resolve().parent / "data"
MEDICORE_DIR = DATA_DIR / "medicore"
KRCORE_DIR = DATA_DIR / "krcore"
DEFAULT_MRN_SYSTEM = "urn:medicore:mrn"


@dataclass
class ElementRule:
    """The differential constraints on one element (or one slice of it)."""

    name: str
    label: str
    min: int | None = None
    max: str | None = None
    fixed: Any = None
    pattern: Any = None
    binding: str | None = None
    discriminators: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False
    children: dict[str, ElementRule] = field(default_factory=dict)
    slices: dict[str, ElementRule] = field(default_factory=dict)


@dataclass
class Profile:
    """A compiled profile: canonical url, constrained type, element tree root."""

    url: str
    name: str
    type: str
    root: ElementRule
    base: str | None = None


def _prefixed(el: dict[str, Any], prefix: str) -> Any:
    for key, value in el.items():
        if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isupper():
            return value
    return None


def _split_id(element_id: str) -> list[tuple[str, str | None]]:
    parts = []
    for seg in element_id.split(".")[1:]:
        name, _, slice_name = seg.partition(":")
        parts.append((name, slice_name or None))
    return parts


def compile_profile(sd: dict[str, Any]) -> Profile:
    """Compile a constraint StructureDefinition's differential into a rule tree."""
    rtype = sd["type"]
    root = ElementRule(rtype, rtype)
    for el in (sd.get("differential") or {}).get("element") or []:
        rule = root
        name, slice_name = rtype, None
        for name, slice_name in _split_id(el.get("id") or el["path"]):
            rule = rule.children.setdefault(name, ElementRule(name, f"{rule.label}.{name}"))
            if slice_name:
                rule = rule.slices.setdefault(
                    slice_name, ElementRule(name, f"{rule.label}:{slice_name}")
                )
        if "min" in el:
            rule.min = int(el["min"])
        if "max" in el:
            rule.max = str(el["max"])
        rule.fixed = _prefixed(el, "fixed") if rule.fixed is None else rule.fixed
        rule.pattern = _prefixed(el, "pattern") if rule.pattern is None else rule.pattern
        if name in ("extension", "modifierExtension") and slice_name:
            for t in el.get("type") or []:
                for url in t.get("profile") or []:
                    url_rule = rule.children.setdefault(
                        "url", ElementRule("url", f"{rule.label}.url")
                    )
                    url_rule.fixed = url
        binding = el.get("binding") or {}
        if binding.get("strength") == "required" and binding.get("valueSet"):
            rule.binding = binding["valueSet"]
        slicing = el.get("slicing")
        if slicing:
            rule.discriminators = [
                (d.get("type", "value"), d.get("path", "$this"))
                for d in slicing.get("discriminator") or []
            ]
            rule.closed = slicing.get("rules") == "closed"
    _imply_extension_slicing(root)
    return Profile(sd["url"], sd.get("name") or sd["url"], rtype, root, sd.get("baseDefinition"))


def _imply_extension_slicing(rule: ElementRule) -> None:
    """Extension slices need no declared slicing: they are told apart by url."""
    for name, child in rule.children.items():
        if name in ("extension", "modifierExtension") and child.slices and not child.discriminators:
            child.discriminators = [("value", "url")]
        _imply_extension_slicing(child)
        for slice_rule in child.slices.values():
            _imply_extension_slicing(slice_rule)


# --- instance navigation ---------------------------------------------------------------


def _values(parent: Any, name: str, expr: str) -> list[tuple[Any, str]]:
    if not isinstance(parent, dict):
        return []
    if name.endswith("[x]"):
        stem = name[:-3]
        keys = [k for k in parent if k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper()]
    else:
        keys = [name] if name in parent else []
    out: list[tuple[Any, str]] = []
    for key in keys:
        raw = parent[key]
        if isinstance(raw, list):
            out.extend((v, f"{expr}.{key}[{i}]") for i, v in enumerate(raw))
        elif raw is not None:
            out.append((raw, f"{expr}.{key}"))
    return out


def matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern[x]: every property of the pattern is present (lists: each item somewhere)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            matches_pattern(value.get(k), p) for k, p in pattern.items()
        )
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(v, p) for v in items) for p in pattern)
    return value == pattern


def _rule_at(rule: ElementRule, path: str) -> ElementRule | None:
    if path == "$this":
        return rule
    for name in path.split("."):
        nxt = rule.children.get(name)
        if nxt is None:
            return None
        rule = nxt
    return rule


def _in_slice(value: Any, slice_rule: ElementRule, discriminators: list[tuple[str, str]]) -> bool:
    for _kind, path in discriminators:
        target = _rule_at(slice_rule, path)
        if target is None:
            return False
        expected = target.fixed if target.fixed is not None else target.pattern
        if expected is None:
            return False
        found = [value] if path == "$this" else [v for v, _ in _walk_path(value, path)]
        if not any(matches_pattern(v, expected) for v in found):
            return False
    return True


def _walk_path(value: Any, path: str) -> list[tuple[Any, str]]:
    current = [(value, "")]
    for name in path.split("."):
        current = [pair for v, e in current for pair in _values(v, name, e)]
    return current


# --- checking -----------------------------------------------------------------------------


class ProfileChecker:
    """Check a resource against a compiled profile."""

    def __init__(self, terminology: Terminology) -> None:
        self.terminology = terminology

    def check(self, profile: Profile, resource: dict[str, Any]) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        self._apply(profile, profile.root, [(resource, profile.type)], profile.type, issues)
        return issues

    def _cardinality(
        self, profile: Profile, rule: ElementRule, count: int, expr: str, out: list[ValidationIssue]
    ) -> None:
        if rule.min is not None and count < rule.min:
            out.append(
                ValidationIssue(
                    "error",
                    "required",
                    expr,
                    f"{rule.label}: minimum cardinality {rule.min} not met ({count} found), "
                    f"required by profile {profile.url}",
                )
            )
        if rule.max not in (None, "*") and count > int(rule.max or 0):
            out.append(
                ValidationIssue(
                    "error",
                    "structure",
                    expr,
                    f"{rule.label}: maximum cardinality {rule.max} exceeded ({count} found), "
                    f"set by profile {profile.url}",
                )
            )

    def _apply(
        self,
        profile: Profile,
        rule: ElementRule,
        values: list[tuple[Any, str]],
        at: str,
        out: list[ValidationIssue],
    ) -> None:
        """Check values of one element under one parent; ``at`` is that element's FHIRPath."""
        for value, expr in values:
            if rule.fixed is not None and value != rule.fixed:
                out.append(self._issue(profile, rule, expr, "does not have the fixed value"))
            if rule.pattern is not None and not matches_pattern(value, rule.pattern):
                out.append(self._issue(profile, rule, expr, "does not match the required pattern"))
            if rule.binding:
                vs = self.terminology.get(rule.binding)
                if vs is not None:
                    issue = code_issue(vs, value, element=rule.label, expression=expr)
                    if issue:
                        out.append(issue)
        if rule.slices:
            self._slices(profile, rule, values, at, out)
        for child in rule.children.values():
            child_at_name = child.name.removesuffix("[x]")
            for value, expr in values:
                found = _values(value, child.name, expr)
                child_at = f"{expr}.{child_at_name}"
                self._cardinality(profile, child, len(found), child_at, out)
                self._apply(profile, child, found, child_at, out)

    def _slices(
        self,
        profile: Profile,
        rule: ElementRule,
        values: list[tuple[Any, str]],
        at: str,
        out: list[ValidationIssue],
    ) -> None:
        groups: dict[str, list[tuple[Any, str]]] = {name: [] for name in rule.slices}
        for value, expr in values:
            for name, slice_rule in rule.slices.items():
                if _in_slice(value, slice_rule, rule.discriminators):
                    groups[name].append((value, expr))
                    break
            else:
                if rule.closed:
                    out.append(self._issue(profile, rule, expr, "matches no slice (closed)"))
        for name, slice_rule in rule.slices.items():
            self._cardinality(profile, slice_rule, len(groups[name]), at, out)
            self._apply(profile, slice_rule, groups[name], at, out)

    @staticmethod
    def _issue(profile: Profile, rule: ElementRule, expr: str, what: str) -> ValidationIssue:
        return ValidationIssue(
            "error", "value", expr, f"{rule.label} {what} of profile {profile.url}"
        )


def _substitute(value: Any, table: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return table.get(value, value)
    if isinstance(value, list):
        return [_substitute(v, table) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, table) for k, v in value.items()}
    return value


def load_definitions(
    dirs: Iterable[Path], *, terminology: Terminology, substitutions: Mapping[str, str]
) -> dict[str, Profile]:
    """Load every constraint StructureDefinition (and explicit ValueSet) found in dirs."""
    profiles: dict[str, Profile] = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read definition file {path.name}") from exc
            if not isinstance(raw, dict):
                continue
            res = _substitute(raw, substitutions)
            if res.get("resourceType") == "ValueSet":
                terminology.add_resource(res)
            elif (
                res.get("resourceType") == "StructureDefinition"
                and res.get("derivation") == "constraint"
                and res.get("kind") == "resource"
            ):
                profile = compile_profile(res)
                profiles[profile.url] = profile
    return profiles
