"""Role ceilings loaded from JSON, so the hospital changes its rules without a release.

Effective access is (token scopes) ∩ (role ceiling). A ceiling is either a fixed table
`resource type -> SMART v2 letters` (staff roles) or, for roles marked
`"ceiling": "registered-scopes"` (partner systems, HL7 interfaces), the scopes registered
for the client. The shipped table is `auth/roles.json`; `RoleTable.load(path)` reads another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auth.errors import ConfigError
from auth.scopes import LETTERS, ResourceScope, ScopeSet, letter_for

DEFAULT_ROLES_FILE = Path(__file__).with_name("roles.json")
REGISTERED = "registered-scopes"
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


class RoleConfigError(ConfigError):
    """The role table is malformed; `expression` points at the faulty JSON member."""


@dataclass(frozen=True, slots=True)
class RoleCeiling:
    """What one role may ever do, whatever scopes its token carries."""

    role: str
    resources: Mapping[str, str] = field(default_factory=dict)
    operations: frozenset[str] = frozenset()
    registered: ScopeSet | None = None  # set for registered-scopes roles

    def permits(self, interaction: str, resource_type: str) -> bool:
        """Whether the ceiling lets this interaction through (before scopes are looked at)."""
        if self.registered is not None:
            return self.registered.allows(interaction, resource_type)
        return letter_for(interaction) in self.resources.get(resource_type, "")

    def registered_queries(
        self, interaction: str, resource_type: str
    ) -> tuple[tuple[tuple[str, str], ...], ...]:
        """The query restrictions of the registered scopes granting this (OR of them; ()
        when the ceiling is a fixed table or one registered scope is unrestricted)."""
        if self.registered is None:
            return ()
        queries = [s.query for s in self.registered.granting(interaction, resource_type)]
        return () if () in queries else tuple(dict.fromkeys(queries))

    def accepts_context(self, context: str) -> bool:
        """Staff act as `user/` or `patient/`; registered-scopes clients only as `system/`."""
        return (context == "system") == (self.registered is not None)

    def clamp(self, scopes: ScopeSet) -> ScopeSet:
        """The token scopes cut down to this ceiling (wildcards expand to named types)."""
        out: list[ResourceScope] = []
        for req in scopes.resource_scopes:
            if not self.accepts_context(req.context):
                continue
            for cap_type, cap_letters, cap_query in self._caps(req.context):
                cut = _intersect(req, cap_type, cap_letters, cap_query)
                if cut is not None and cut not in out:
                    out.append(cut)
        return ScopeSet(resource_scopes=tuple(out), other=scopes.other)

    def _caps(self, context: str) -> Iterable[tuple[str, str, tuple[tuple[str, str], ...]]]:
        if self.registered is not None:
            for g in self.registered.resource_scopes:
                if g.context == context:
                    yield g.resource_type, g.letters, g.query
        else:
            for type_, letters in self.resources.items():
                yield type_, letters, ()


def _intersect(
    req: ResourceScope, cap_type: str, cap_letters: str, cap_query: tuple[tuple[str, str], ...]
) -> ResourceScope | None:
    if req.resource_type == "*":
        type_ = cap_type
    elif cap_type in ("*", req.resource_type):
        type_ = req.resource_type
    else:
        return None
    letters = "".join(ch for ch in LETTERS if ch in req.letters and ch in cap_letters)
    if not letters:
        return None
    query = tuple(sorted(set(req.query) | set(cap_query)))
    return ResourceScope(context=req.context, resource_type=type_, letters=letters, query=query)


@dataclass(frozen=True, slots=True)
class _RoleEntry:
    resources: Mapping[str, str]
    operations: frozenset[str]
    registered: bool


class RoleTable:
    """All configured roles; immutable once loaded."""

    def __init__(self, entries: Mapping[str, _RoleEntry]) -> None:
        self._entries = dict(entries)
        # Staff ceilings never change: build them once, not on every decision.
        self._staff = {
            name: RoleCeiling(role=name, resources=e.resources, operations=e.operations)
            for name, e in self._entries.items()
            if not e.registered
        }

    @classmethod
    def load(cls, path: str | Path | None = None) -> RoleTable:
        """Read and validate a role file (default: the shipped `auth/roles.json`)."""
        file = Path(path) if path is not None else DEFAULT_ROLES_FILE
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RoleConfigError("$", f"cannot read role file {file.name}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> RoleTable:
        """Validate a parsed role document; every fault names its JSON member."""
        if not isinstance(data, Mapping) or not isinstance(data.get("roles"), Mapping):
            raise RoleConfigError("roles", "expected an object of roles")
        entries: dict[str, _RoleEntry] = {}
        for name, spec in data["roles"].items():
            entries[name] = _parse_role(name, spec)
        return cls(entries)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, role: object) -> bool:
        return role in self._entries

    def uses_registered_scopes(self, role: str) -> bool:
        """True for roles capped by their client's registered scopes."""
        entry = self._entries.get(role)
        return entry is not None and entry.registered

    def ceiling(self, role: str, *, registered: ScopeSet | None = None) -> RoleCeiling:
        """The ceiling of `role`; unknown roles get an empty ceiling (deny everything)."""
        entry = self._entries.get(role)
        if entry is None:
            return RoleCeiling(role=role)
        if entry.registered:
            return RoleCeiling(
                role=role, operations=entry.operations, registered=registered or ScopeSet()
            )
        return self._staff[role]


def _parse_role(name: Any, spec: Any) -> _RoleEntry:
    where = f"roles.{name}"
    if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
        raise RoleConfigError(where, "role names are lower-case identifiers")
    if not isinstance(spec, Mapping):
        raise RoleConfigError(where, "expected an object")
    ops = spec.get("operations", [])
    if not isinstance(ops, list) or not all(isinstance(o, str) and o for o in ops):
        raise RoleConfigError(f"{where}.operations", "expected a list of operation names")
    if "ceiling" in spec:
        if spec["ceiling"] != REGISTERED or "resources" in spec:
            raise RoleConfigError(
                f"{where}.ceiling", f"only {REGISTERED!r}, and not together with resources"
            )
        return _RoleEntry(resources={}, operations=frozenset(ops), registered=True)
    resources = spec.get("resources")
    if not isinstance(resources, Mapping):
        raise RoleConfigError(f"{where}.resources", "expected an object of type -> letters")
    for type_, letters in resources.items():
        at = f"{where}.resources.{type_}"
        if not isinstance(type_, str) or not _TYPE_NAME.fullmatch(type_):
            raise RoleConfigError(at, "expected a FHIR resource type name")
        ordered = "".join(ch for ch in LETTERS if isinstance(letters, str) and ch in letters)
        if not isinstance(letters, str) or not letters or letters != ordered:
            raise RoleConfigError(at, "expected SMART v2 letters in order c r u d s")
    return _RoleEntry(resources=dict(resources), operations=frozenset(ops), registered=False)


__all__ = ["DEFAULT_ROLES_FILE", "RoleCeiling", "RoleConfigError", "RoleTable"]
