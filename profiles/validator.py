"""The validator behind every write and $validate: structure, bindings, invariants, profiles."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from profiles.bindings import BindingIndex, Terminology, base_terminology
from profiles.elements import RESOURCE_TYPES, element_table
from profiles.invariants import InvariantSet
from profiles.issues import Severity, ValidationIssue, has_errors, to_operation_outcome
from profiles.profile import (
    DATA_DIR,
    DEFAULT_MRN_SYSTEM,
    KRCORE_DIR,
    MEDICORE_DIR,
    Profile,
    ProfileChecker,
    load_definitions,
)
from profiles.structure import model_issues
from profiles.walker import NodeChecker

__all__ = ["Validator", "has_errors", "to_operation_outcome"]

MODES = frozenset({"create", "update", "delete"})


class Validator:
    """Validates resource JSON; build one at start-up and share it (it holds no request state)."""

    def __init__(
        self,
        profile_dirs: Iterable[str | Path] = (MEDICORE_DIR, KRCORE_DIR),
        *,
        mandatory: Mapping[str, str | Sequence[str]] | None = None,
        reject_unknown_profiles: bool = False,
        mrn_system: str = DEFAULT_MRN_SYSTEM,
    ) -> None:
        base = base_terminology()
        self.terminology = Terminology(base.valuesets)
        self.table = element_table()
        self.bindings = BindingIndex(self.table, self.terminology)
        constraints = json.loads((DATA_DIR / "constraints.json").read_text())
        self.invariants = InvariantSet(constraints, RESOURCE_TYPES)
        self.nodes = NodeChecker(self.table, self.bindings, self.invariants)
        substitutions = {DEFAULT_MRN_SYSTEM: mrn_system} if mrn_system != DEFAULT_MRN_SYSTEM else {}
        self.profiles: dict[str, Profile] = load_definitions(
            [Path(d) for d in profile_dirs],
            terminology=self.terminology,
            substitutions=substitutions,
        )
        self.checker = ProfileChecker(self.terminology)
        self.reject_unknown_profiles = reject_unknown_profiles
        self.mandatory: dict[str, tuple[str, ...]] = {}
        for rtype, urls in (mandatory or {}).items():
            listed = (urls,) if isinstance(urls, str) else tuple(urls)
            for url in listed:
                if url not in self.profiles:
                    raise ValueError(f"mandatory profile for {rtype} is not loaded: {url}")
            self.mandatory[rtype] = listed

    @classmethod
    def default(cls) -> Validator:
        """R4 base rules plus the shipped MediCore and KR Core profiles, none mandatory."""
        return cls()

    def supported_profiles(self, resource_type: str) -> list[str]:
        """Canonical urls of the loaded profiles on a type (for the CapabilityStatement)."""
        return sorted(p.url for p in self.profiles.values() if p.type == resource_type)

    def validate(
        self, resource: Any, *, mode: str | None = None, profile: str | None = None
    ) -> list[ValidationIssue]:
        """Every issue found; only ``fatal``/``error`` ones should block a write."""
        if mode is not None and mode not in MODES:
            return [
                ValidationIssue("error", "value", "mode", "mode must be create, update or delete")
            ]
        if mode == "delete":
            return []
        issues = model_issues(resource)
        if issues and issues[0].severity == "fatal":
            return issues
        rtype: str = resource["resourceType"]
        if mode == "update" and not resource.get("id"):
            issues.append(ValidationIssue("error", "required", f"{rtype}.id", "update needs an id"))
        issues.extend(self.nodes.check(resource, {i.expression for i in issues}))
        for url, explicit, where in self._profiles_to_check(resource, rtype, profile):
            found = self.profiles.get(url)
            if found is None:
                severity: Severity = (
                    "error" if explicit or self.reject_unknown_profiles else "warning"
                )
                issues.append(
                    ValidationIssue(
                        severity,
                        "not-supported",
                        where,
                        f"profile {url} is not known to this server",
                    )
                )
            elif found.type != rtype:
                issues.append(
                    ValidationIssue(
                        "error",
                        "invalid",
                        where,
                        f"profile {url} constrains {found.type}, not {rtype}",
                    )
                )
            else:
                for step in self._chain(found):
                    issues.extend(self.checker.check(step, resource))
        return issues

    def _chain(self, profile: Profile) -> list[Profile]:
        """The profile and the loaded profiles it derives from (a KR Core vital sign: 2)."""
        chain = [profile]
        base = self.profiles.get(profile.base or "")
        while base is not None and base not in chain:
            chain.append(base)
            base = self.profiles.get(base.base or "")
        return chain

    def _profiles_to_check(
        self, resource: dict[str, Any], rtype: str, requested: str | None
    ) -> list[tuple[str, bool, str]]:
        """(url, explicitly required, FHIRPath of the claim) for each profile to check."""
        urls: dict[str, tuple[bool, str]] = {}
        meta = resource.get("meta")
        claimed = meta.get("profile") if isinstance(meta, dict) else None
        for i, url in enumerate(claimed if isinstance(claimed, list) else []):
            if isinstance(url, str):
                urls[url.split("|", 1)[0]] = (False, f"{rtype}.meta.profile[{i}]")
        for url in self.mandatory.get(rtype, ()):
            urls[url] = (True, rtype)
        if requested:
            urls[requested.split("|", 1)[0]] = (True, rtype)
        return [(url, explicit, expr) for url, (explicit, expr) in urls.items()]

    has_errors = staticmethod(has_errors)
    to_operation_outcome = staticmethod(to_operation_outcome)
