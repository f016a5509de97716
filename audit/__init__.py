"""Audit trail: AuditEvents for every access, chained so tampering shows (issue 6).

A leaf package: it never imports ``fhir_server``; the stores implement
:class:`audit.sink.AuditSink`.
"""

from __future__ import annotations

from audit.chain import (
    GENESIS,
    ChainedRecord,
    ChainHead,
    ChainProblem,
    Checkpoint,
    VerifyReport,
    checkpoint,
    seal,
    seal_batch,
    verify,
)
from audit.events import AccessRecord, Interaction, build_audit_event
from audit.sink import AuditSink, InMemoryAuditSink

__all__ = [
    "GENESIS",
    "AccessRecord",
    "AuditSink",
    "ChainHead",
    "ChainProblem",
    "ChainedRecord",
    "Checkpoint",
    "InMemoryAuditSink",
    "Interaction",
    "VerifyReport",
    "build_audit_event",
    "checkpoint",
    "seal",
    "seal_batch",
    "verify",
]
