"""Which records are final (signed off): the service refuses plain updates/deletes of these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FINAL_STATUSES: Mapping[str, frozenset[str]] = {
    "Observation": frozenset({"final", "amended", "corrected"}),
    "MedicationRequest": frozenset({"completed", "stopped", "cancelled"}),
    "Encounter": frozenset({"finished", "cancelled"}),
}
ALWAYS_FINAL: frozenset[str] = frozenset({"Provenance"})


def is_final(resource: Mapping[str, Any]) -> bool:
    """True when the stored record may only change through an amendment with Provenance."""
    rtype = resource.get("resourceType")
    if rtype in ALWAYS_FINAL:
        return True
    statuses = FINAL_STATUSES.get(rtype) if isinstance(rtype, str) else None
    return statuses is not None and resource.get("status") in statuses
