"""Who may do what: the caller's token scopes ∩ role ceiling (``auth.decision``), applied
by the service to every interaction, every stored resource it touches and every entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auth.compartment import compartment_search_params
from auth.decision import Decision, Principal, decide
from fhir_server.resources import errors

_BEARER = 'Bearer realm="medicore"'


class Guard:
    """Allows everything: the server runs with ``MEDICORE_AUTH_REQUIRED=false`` (never in
    production), e.g. for local development and the REST conformance tests."""

    principal: Principal | None = None

    def require(
        self, interaction: str, resource_type: str, resource: Mapping[str, Any] | None = None
    ) -> None:
        return None

    def narrowing(self, resource_type: str) -> list[tuple[str, str]]:
        """Search parameters that confine a search to what the caller may see."""
        return []

    def may_read(self, resource: Mapping[str, Any]) -> bool:
        return True


class PrincipalGuard(Guard):
    """Decisions for one authenticated caller."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def require(
        self, interaction: str, resource_type: str, resource: Mapping[str, Any] | None = None
    ) -> None:
        self._allowed(interaction, resource_type, resource)

    def _allowed(
        self, interaction: str, resource_type: str, resource: Mapping[str, Any] | None
    ) -> Decision:
        """The decision when it allows; the refusal as a FHIR error otherwise."""
        decision = decide(self.principal, interaction, resource_type, resource)
        if decision.allowed:
            return decision
        if decision.status == 404:
            # Outside the caller's compartment reads like a missing id: nothing leaks.
            raise errors.not_found(f"{resource_type} is not known")
        headers = {"WWW-Authenticate": _BEARER} if decision.status == 401 else {}
        code = "login" if decision.status == 401 else "forbidden"
        raise errors.FhirError(decision.status, code, decision.reason, headers=headers)

    def narrowing(self, resource_type: str) -> list[tuple[str, str]]:
        decision = self._allowed("search", resource_type, None)
        if not decision.search:
            return []
        constraint = decision.search[0]  # several constraints: results are also post-filtered
        params = list(constraint.query)
        if constraint.patient:
            if resource_type == "Patient":
                params.append(("_id", constraint.patient))
            else:
                candidates = compartment_search_params(resource_type)
                if not candidates:
                    raise errors.FhirError(
                        403, "forbidden", f"{resource_type} is outside the patient compartment"
                    )
                params.append((candidates[0], f"Patient/{constraint.patient}"))
        return params

    def may_read(self, resource: Mapping[str, Any]) -> bool:
        kind = str(resource.get("resourceType", ""))
        return decide(self.principal, "read", kind, resource).allowed


OPEN = Guard()
