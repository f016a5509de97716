"""Who may do what: the caller's token scopes ∩ role ceiling (``auth.decision``), applied
by the service to every query it runs and every resource it returns or writes.

The decision's constraints become ``AccessRules`` (criteria per type, parsed by the search
parser): ``confine`` compiles them into a search's own query (matches, totals, order,
chains, ``_has``, includes) and ``require`` evaluates the same criteria on one resource's
index entries, so a read by id and a search can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auth.compartment import PATIENT_PARAMS, patient_criteria
from auth.decision import Decision, Principal, decide
from auth.scopes import SearchConstraint, letter_for
from fhir_server.resources import errors
from fhir_server.resources.meta import SUPPORTED_TYPES
from fhir_server.search.access import AccessDenied, AccessRules, Alternative, allows, confine
from fhir_server.search.errors import SearchError
from fhir_server.search.extract import IndexEntries, extract_index
from fhir_server.search.parse import parse_search
from fhir_server.search.query import SearchQuery
from fhir_server.search.registry import SearchRegistry

_BEARER = 'Bearer realm="medicore"'
_WRITES = frozenset("cud")


class Guard:
    """Allows everything: the server runs with ``MEDICORE_AUTH_REQUIRED=false`` (never in
    production), e.g. for local development and the REST conformance tests."""

    principal: Principal | None = None

    def require(
        self, interaction: str, resource_type: str, resource: Mapping[str, Any] | None = None
    ) -> None:
        return None

    def confine(self, query: SearchQuery) -> SearchQuery:
        """``query`` narrowed, inside the store's query, to what the caller may see."""
        return query

    def history_types(self, resource_type: str | None) -> tuple[str, ...] | None:
        """The types a type or system history may list (None: every type)."""
        return None

    def may_read(self, resource: Mapping[str, Any]) -> bool:
        return True


class PrincipalGuard(Guard):
    """Decisions for one authenticated caller."""

    principal: Principal

    def __init__(self, principal: Principal, registry: SearchRegistry) -> None:
        self.principal = principal
        self.registry = registry
        self._rules: dict[str, AccessRules] = {}

    def require(
        self, interaction: str, resource_type: str, resource: Mapping[str, Any] | None = None
    ) -> None:
        """Allowed on the type at all (401/403), then, with ``resource``, on that resource:
        outside the caller's rules a read answers 404 (as a missing id would), a write 403."""
        decision = self._allowed(interaction, resource_type)
        if resource is None or not decision.constraints:
            return
        entries = extract_index(dict(resource), self.registry)
        rules = self.rules(interaction)
        letter = letter_for(interaction)
        if not allows(rules, resource_type, _id_of(resource), entries):
            if letter in _WRITES:
                raise errors.FhirError(
                    403, "forbidden", f"{resource_type} is outside what your token may change"
                )
            raise errors.not_found(f"{resource_type} is not known")
        if letter in _WRITES and all(c.patient for c in decision.constraints):
            _require_about_patient(resource_type, entries, str(self.principal.patient))

    def _allowed(self, interaction: str, resource_type: str) -> Decision:
        """The decision when it allows; the refusal as a FHIR error otherwise."""
        decision = decide(self.principal, interaction, resource_type)
        if decision.allowed:
            return decision
        headers = {"WWW-Authenticate": _BEARER} if decision.status == 401 else {}
        code = "login" if decision.status == 401 else "forbidden"
        raise errors.FhirError(decision.status, code, decision.reason, headers=headers)

    def rules(self, interaction: str) -> AccessRules:
        """Per type, what ``interaction`` may touch (built once per request and letter)."""
        letter = letter_for(interaction)
        known = self._rules.get(letter)
        if known is None:
            known = AccessRules({t: self._alternatives(interaction, t) for t in SUPPORTED_TYPES})
            self._rules[letter] = known
        return known

    def _alternatives(self, interaction: str, resource_type: str) -> tuple[Alternative, ...]:
        decision = decide(self.principal, interaction, resource_type)
        if not decision.allowed:
            return ()
        if not decision.constraints:
            return ((),)
        found = (self._criteria(resource_type, c) for c in decision.constraints)
        return tuple(alternative for alternative in found if alternative is not None)

    def _criteria(self, resource_type: str, constraint: SearchConstraint) -> Alternative | None:
        """One constraint as parsed criteria; None (fail closed) when it cannot apply."""
        params = list(constraint.query)
        if constraint.patient:
            about = patient_criteria(resource_type, constraint.patient)
            if about is None:
                return None
            params += about
        try:
            query = parse_search(resource_type, params, self.registry, base_url="", strict=True)
        except SearchError:
            return None  # a scope restriction this server cannot evaluate grants nothing
        return query.criteria

    def confine(self, query: SearchQuery) -> SearchQuery:
        try:
            return confine(query, search=self.rules("search"), read=self.rules("read"))
        except AccessDenied as exc:
            message = f"search parameter {exc.param}: {exc.message}"
            raise errors.FhirError(403, "forbidden", message, (exc.param,)) from None

    def history_types(self, resource_type: str | None) -> tuple[str, ...] | None:
        """Type and system history list versions, which carry no index to confine by: they
        are open to callers who may read every resource of the type, and no one else."""
        interaction = "history-type" if resource_type else "history-system"
        rules = self.rules("search" if interaction == "history-system" else interaction)
        types = (resource_type,) if resource_type else SUPPORTED_TYPES
        allowed = tuple(t for t in types if rules.unrestricted(t))
        if resource_type and not allowed:
            self._allowed("history-type", resource_type)  # 401/403 for the type itself
            raise errors.FhirError(
                403,
                "forbidden",
                f"the history of every {resource_type} needs access to every {resource_type};"
                " use search or the history of one resource",
            )
        if not allowed:
            raise errors.FhirError(403, "forbidden", "you may not read the history of any type")
        return None if allowed == SUPPORTED_TYPES else allowed

    def may_read(self, resource: Mapping[str, Any]) -> bool:
        try:
            self.require("read", str(resource.get("resourceType", "")), resource)
        except errors.FhirError:
            return False
        return True


def _id_of(resource: Mapping[str, Any]) -> str | None:
    value = resource.get("id")
    return value if isinstance(value, str) else None


def _require_about_patient(resource_type: str, entries: IndexEntries, patient: str) -> None:
    """A patient-context write: every patient the resource is about is the token's patient
    (other participants, e.g. a performer, may be anyone)."""
    param = PATIENT_PARAMS.get(resource_type)
    others = [
        ref_id
        for name, rtype, ref_id in entries.references
        if name == param and rtype == "Patient" and ref_id != patient
    ]
    if others:
        raise errors.FhirError(
            403, "forbidden", f"{resource_type} is about another patient than your token's"
        )


OPEN = Guard()
