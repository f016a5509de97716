"""SMART on FHIR scopes (v2 `cruds`, v1 `read/write/*`) as small immutable values.

Grammar (SMART App Launch 2.0, "Scopes for requesting clinical data"):

    resource scope  = context "/" (Type | "*") "." permissions [ "?" query ]
    context         = "patient" | "user" | "system"
    permissions     = v2 letters, a non-empty subsequence of "cruds" in that order
                    | v1 "read" (= rs) | "write" (= cud) | "*" (= cruds)

plus the launch/identity scopes in `OTHER_SCOPES`. Anything else raises `InvalidScope`.

A query-restricted scope (`patient/Observation.rs?category=...|laboratory`) only grants
access to resources that match its token parameters; `ResourceScope.matches` checks a
resource body, `ScopeSet.search_constraints` tells a search how to narrow itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from auth.errors import InvalidScope

Interaction = Literal[
    "create",
    "read",
    "vread",
    "history-instance",
    "update",
    "patch",
    "delete",
    "search",
    "history-type",
    "history-system",
]
Context = Literal["patient", "user", "system"]

#: Which permission letter each FHIR interaction needs (SMART v2 section "Scopes").
INTERACTION_LETTER: Mapping[str, str] = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search": "s",
    "history-type": "s",
    "history-system": "s",
}
INTERACTIONS: tuple[str, ...] = tuple(INTERACTION_LETTER)
LETTERS = "cruds"
V1_PERMISSIONS: Mapping[str, str] = {"read": "rs", "write": "cud", "*": "cruds"}
OTHER_SCOPES: frozenset[str] = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    }
)

_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<perm>[^?\s]+)(?:\?(?P<query>\S*))?$"
)
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*$")


def letter_for(interaction: str) -> str:
    """The permission letter an interaction needs; unknown interactions are a bug."""
    try:
        return INTERACTION_LETTER[interaction]
    except KeyError:
        raise ValueError(f"unknown interaction {interaction!r}") from None


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One clinical-data scope, normalised to v2 letters."""

    context: Context
    resource_type: str  # a FHIR type name or "*"
    letters: str  # subsequence of "cruds"
    query: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> ResourceScope:
        """Parse one resource scope, raising `InvalidScope` with the reason."""
        m = _RESOURCE_SCOPE.fullmatch(text)
        if m is None:
            raise InvalidScope(text, "expected (patient|user|system)/(Type|*).permissions")
        perm = m.group("perm")
        query_text = m.group("query")
        if perm in V1_PERMISSIONS:
            if query_text is not None:
                raise InvalidScope(text, "v1 permissions cannot carry a query")
            letters = V1_PERMISSIONS[perm]
        else:
            if any(ch not in LETTERS for ch in perm):
                raise InvalidScope(text, "permissions must be letters from 'cruds'")
            if perm != "".join(ch for ch in LETTERS if ch in perm) or len(set(perm)) != len(perm):
                raise InvalidScope(text, "permission letters must appear once, in order c r u d s")
            letters = perm
        query = _parse_query(text, query_text) if query_text is not None else ()
        context: Context = m.group("context")  # type: ignore[assignment]
        return cls(context=context, resource_type=m.group("type"), letters=letters, query=query)

    def __str__(self) -> str:
        base = f"{self.context}/{self.resource_type}.{self.letters}"
        if not self.query:
            return base
        return base + "?" + "&".join(f"{k}={v}" for k, v in self.query)

    def applies_to(self, letter: str, resource_type: str) -> bool:
        """True when type and letter match, ignoring the query restriction."""
        return letter in self.letters and self.resource_type in ("*", resource_type)

    def covers(self, other: ResourceScope) -> bool:
        """True when this scope grants at least everything `other` grants."""
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and set(other.letters) <= set(self.letters)
            and set(self.query) <= set(other.query)
        )


def _parse_query(scope: str, text: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidScope(scope, "malformed query restriction") from None
    for name, value in pairs:
        if not _PARAM_NAME.fullmatch(name) or not value:
            raise InvalidScope(scope, "query restriction needs name=value token parameters")
    return tuple(sorted(pairs))


@dataclass(frozen=True, slots=True)
class SearchConstraint:
    """One way a search may be allowed: AND of these conditions; constraints are OR-ed."""

    patient: str | None = None  # restrict to this patient's compartment
    query: tuple[tuple[str, str], ...] = ()  # token parameters every hit must match


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """The scopes of one token: resource scopes plus launch/identity scopes."""

    resource_scopes: tuple[ResourceScope, ...] = ()
    other: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> ScopeSet:
        """Parse a space-separated scope string (or list); any bad scope raises."""
        items = text.split() if isinstance(text, str) else list(text)
        resource: list[ResourceScope] = []
        other: set[str] = set()
        for item in items:
            if item in OTHER_SCOPES:
                other.add(item)
            elif "/" in item and "." in item:
                scope = ResourceScope.parse(item)
                if scope not in resource:
                    resource.append(scope)
            else:
                raise InvalidScope(item, "unknown scope")
        return cls(resource_scopes=tuple(resource), other=frozenset(other))

    def __str__(self) -> str:
        return " ".join([*sorted(self.other), *(str(s) for s in self.resource_scopes)])

    def __contains__(self, name: object) -> bool:
        return name in self.other or any(str(s) == name for s in self.resource_scopes)

    def granting(self, interaction: str, resource_type: str) -> tuple[ResourceScope, ...]:
        """Scopes whose type and letter fit, before query and compartment checks."""
        letter = letter_for(interaction)
        return tuple(s for s in self.resource_scopes if s.applies_to(letter, resource_type))

    def allows(self, interaction: str, resource_type: str) -> bool:
        """Whether some scope grants the interaction on the type; query restrictions and
        the patient context are constraints of ``auth.decision``, applied by the server."""
        return bool(self.granting(interaction, resource_type))

    def missing_scope(self, interaction: str, resource_type: str) -> str:
        """The narrowest scope that would allow the interaction, for the 403 message."""
        contexts = {s.context for s in self.resource_scopes}
        context = next((c for c in ("user", "system", "patient") if c in contexts), "user")
        return f"{context}/{resource_type}.{letter_for(interaction)}"

    def not_covered_by(self, granted: ScopeSet) -> list[str]:
        """Scopes of `self` that `granted` does not cover (for `invalid_scope`)."""
        missing = [str(s) for s in self.resource_scopes if not granted.covers(s)]
        missing += sorted(self.other - granted.other)
        return missing

    def covers(self, scope: ResourceScope) -> bool:
        """True when one scope of this set grants everything `scope` grants."""
        return any(s.covers(scope) for s in self.resource_scopes)


__all__ = [
    "INTERACTIONS",
    "INTERACTION_LETTER",
    "OTHER_SCOPES",
    "Interaction",
    "ResourceScope",
    "ScopeSet",
    "SearchConstraint",
    "letter_for",
]
