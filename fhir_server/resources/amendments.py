"""Final (signed-off) records change only through an amendment that names who and why.

A record is final by its status (``profiles.finality``); every Provenance is. A plain
update or delete of one is refused with 409. An update that carries an amendment
Provenance (the ``X-Provenance`` header, or a Provenance entry of the same transaction
targeting the record) is stored as a new version, and the Provenance is stored beside it,
targeting that exact version, so the original stays readable through vread and history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fhir_server.resources import errors
from profiles import is_final

# What a corrected Observation may become (R4 observation-status).
_AMENDED_OBSERVATION = frozenset({"amended", "corrected", "entered-in-error", "cancelled"})


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal but for what the server stamps (versionId, lastUpdated)."""
    return _content(a) == _content(b)


def _content(resource: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in _STAMPED}
    body = {k: v for k, v in resource.items() if k != "meta"}
    return {**body, "meta": meta} if meta else body


_STAMPED = ("versionId", "lastUpdated")


def check_change(
    current: dict[str, Any], new: dict[str, Any] | None, *, amendment: dict[str, Any] | None
) -> None:
    """Refuse changing a final record without a valid amendment (a replay is no change)."""
    if not is_final(current):
        return
    kind = current["resourceType"]
    if new is None:
        raise errors.conflict(f"{kind} is final and cannot be deleted")
    if same_content(new, current):
        return  # a replay of what is stored: nothing to amend
    if kind == "Provenance":
        raise errors.conflict("a Provenance is never changed once recorded")
    if amendment is None:
        raise errors.conflict(
            f"{kind} is final (status {current.get('status')}); correct it with an "
            "X-Provenance header whose Provenance gives the reason"
        )
    if not amendment.get("reason"):
        raise errors.unprocessable("an amendment Provenance needs a reason", "Provenance.reason")
    if kind == "Observation" and new.get("status") not in _AMENDED_OBSERVATION:
        raise errors.unprocessable(
            "a correction of a final Observation sets status amended or corrected",
            "Observation.status",
        )


def parse_x_provenance(header: str, *, requester: Any) -> dict[str, Any]:
    """The ``X-Provenance`` header: a Provenance with a reason, naming the requester."""
    try:
        provenance = orjson.loads(header)
    except orjson.JSONDecodeError:
        raise errors.bad_request("X-Provenance is not JSON", "X-Provenance") from None
    if not isinstance(provenance, dict) or provenance.get("resourceType") != "Provenance":
        raise errors.bad_request("X-Provenance must hold a Provenance", "X-Provenance")
    if not provenance.get("reason"):
        raise errors.unprocessable("an amendment Provenance needs a reason", "Provenance.reason")
    agents = provenance.get("agent") or []
    if not agents:
        raise errors.unprocessable("an amendment Provenance names its agent", "Provenance.agent")
    if requester is not None and not any(_is_requester(a, requester) for a in agents):
        raise errors.unprocessable(
            "the amendment Provenance's agent must be the requester", "Provenance.agent.who"
        )
    return provenance


def _is_requester(agent: Any, requester: Any) -> bool:
    who = agent.get("who") if isinstance(agent, dict) else None
    if not isinstance(who, dict):
        return False
    if requester.fhir_user and who.get("reference") == requester.fhir_user:
        return True
    identifier = who.get("identifier")
    return isinstance(identifier, dict) and identifier.get("value") == requester.subject


def pin_targets(provenance: dict[str, Any], versions: Mapping[str, int]) -> dict[str, Any]:
    """Point each target written in this commit at the exact version it now has."""
    targets = []
    for target in provenance.get("target") or []:
        ref = target.get("reference") if isinstance(target, dict) else None
        if isinstance(ref, str) and ref in versions:
            target = {**target, "reference": f"{ref}/_history/{versions[ref]}"}
        targets.append(target)
    return {**provenance, "target": targets}


def targets_of(provenance: Mapping[str, Any]) -> list[str]:
    """``Type/id`` of every target (version suffixes dropped)."""
    refs = []
    for target in provenance.get("target") or []:
        ref = target.get("reference") if isinstance(target, dict) else None
        if isinstance(ref, str) and ref.count("/") >= 1:
            refs.append("/".join(ref.split("/")[:2]))
    return refs
