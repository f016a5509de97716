"""ADT events -> Patient (+ Encounter); A40 merges."""

from __future__ import annotations

from converters._context import Context, missing
from converters._encounter import write_encounter
from converters._model import ConversionError
from converters._patient import merge_patients, patient_key, write_patient

__all__ = ["ADT_EVENTS", "convert_adt"]

#: Events that carry a visit; A28/A31 (person add/update) write the Patient only.
_VISIT_EVENTS = {"A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13"}
ADT_EVENTS = _VISIT_EVENTS | {"A28", "A31", "A40"}


def convert_adt(ctx: Context) -> None:
    """Map an ADT message into the context's Bundle."""
    if ctx.event == "A40":
        _merge(ctx)
        return
    pid = ctx.msg.first("PID")
    patient = write_patient(ctx, pid, replace=True)
    if ctx.event in _VISIT_EVENTS:
        write_encounter(ctx, ctx.msg.first("PV1"), patient=patient, replace=True)


def _merge(ctx: Context) -> None:
    """A40 carries one or more PID/MRG pairs: each MRG retires a Patient into its PID."""
    pid = None
    pairs = 0
    for seg in ctx.msg:
        if seg.name == "PID":
            pid = seg
        elif seg.name == "MRG":
            if pid is None:
                raise missing(None, what="PID")
            if patient_key(ctx, pid) == patient_key(ctx, seg, 1):
                raise ConversionError(
                    "MRG-1 names the surviving patient itself",
                    error_code="205",
                    location=seg.loc(1),
                )
            merge_patients(ctx, pid, seg)
            pairs += 1
    if not pairs:
        raise missing(None, what="MRG")
