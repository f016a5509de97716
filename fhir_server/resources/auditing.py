"""Who is asking, and the AuditEvents one request leaves (built with ``audit.events``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from audit.events import AccessRecord, Interaction, build_audit_event
from fhir_server.resources.access import OPEN, Guard
from fhir_server.resources.meta import new_id


@dataclass(frozen=True, slots=True)
class Requestor:
    user_id: str | None = None
    client_id: str | None = None
    roles: tuple[str, ...] = ()
    purpose_of_use: tuple[str, ...] = ()
    address: str | None = None
    request_id: str | None = None


class AuditTrail:
    """The AccessRecords of one request, until they are committed (with its writes).

    It travels with every service call of the request, so it also carries the caller's
    access ``guard``: both describe who is asking.
    """

    def __init__(
        self,
        requestor: Requestor,
        *,
        server_id: str = "medicore",
        enabled: bool = True,
    ) -> None:
        self.requestor = requestor
        self.guard: Guard = OPEN  # set once the caller is established (api.access)
        self.server_id = server_id
        self.enabled = enabled
        self._pending: list[AccessRecord] = []

    def identify(self, **who: Any) -> None:
        """Fill in the authenticated user/client once the token has been checked."""
        self.requestor = replace(self.requestor, **who)

    def add(
        self,
        interaction: str,
        *,
        status: int,
        resource_type: str | None = None,
        resource_id: str | None = None,
        version: int | None = None,
        patients: tuple[str, ...] | list[str] = (),
        query: str | None = None,
        operation: str | None = None,
        description: str = "",
        denied: bool = False,
    ) -> None:
        if not self.enabled:
            return
        who = self.requestor
        self._pending.append(
            AccessRecord(
                interaction=Interaction(interaction),
                recorded=datetime.now(UTC),
                status=status,
                description=description,
                user_id=who.user_id,
                client_id=who.client_id,
                roles=who.roles,
                purpose_of_use=who.purpose_of_use,
                network_address=who.address,
                resource_type=resource_type,
                resource_id=resource_id if resource_type else None,
                version_id=str(version) if version is not None and resource_id else None,
                patient_ids=tuple(patients),
                query=query,
                operation=operation,
                request_id=who.request_id,
                denied=denied,
            )
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def drain(self) -> list[dict[str, Any]]:
        """The pending records as AuditEvent resources, ready for a ``WriteBatch``."""
        events = [
            build_audit_event(record, server_id=self.server_id, event_id=new_id())
            for record in self._pending
        ]
        self._pending.clear()
        return events

    async def drain_in_steps(self, *, step: int = 16) -> list[dict[str, Any]]:
        """``drain`` for many records (a long transaction): yields to the event loop
        between steps of ``step`` records."""
        records, self._pending = self._pending, []
        events: list[dict[str, Any]] = []
        for start in range(0, len(records), step):
            if start:
                await asyncio.sleep(0)
            events += [
                build_audit_event(record, server_id=self.server_id, event_id=new_id())
                for record in records[start : start + step]
            ]
        return events

    def discard(self) -> None:
        self._pending.clear()
