"""A parsed v2 message: python-hl7 reads the delimiters, fields are split lazily on access."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from hl7.parser import create_parse_plan

from converters._model import ConversionError

__all__ = ["NULL", "Delimiters", "Rep", "Segment", "V2Message", "parse_message"]

NULL = '""'  # HL7 explicit null: "delete the value"
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")


@dataclass(frozen=True)
class Delimiters:
    """MSH-1/MSH-2 delimiters plus the codec for ``\\Xhh\\`` escapes."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    codec: str = "utf-8"

    def unescape(self, value: str) -> str:
        """Replace the escape sequences of HL7 v2 section 2.7 by the characters they stand for."""
        esc = self.escape
        if not esc or esc not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            ch = value[i]
            end = value.find(esc, i + 1) if ch == esc else -1
            if end < 0:
                out.append(ch)
                i += 1
                continue
            out.append(self._sequence(value[i + 1 : end]))
            i = end + 1
        return "".join(out)

    def _sequence(self, seq: str) -> str:
        simple = {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
            ".br": "\n",
            ".sp": "\n",
        }
        if seq in simple:
            return simple[seq]
        if seq[:1] == "X" and len(seq) > 1:
            try:
                return bytes.fromhex(seq[1:]).decode(self.codec, errors="replace")
            except ValueError:
                return ""
        if seq.startswith(".sp"):
            return "\n"
        return ""  # highlighting (H, N), charset switches (C, M), other formatting


class Rep:
    """One repetition of a field: components of sub-components, still escaped."""

    __slots__ = ("_comps", "_delims")

    def __init__(self, comps: list[list[str]], delims: Delimiters) -> None:
        self._comps = comps
        self._delims = delims

    def c(self, comp: int = 1, sub: int = 1) -> str:
        """Component ``comp`` (sub-component ``sub``), unescaped; "" when absent or null."""
        if comp > len(self._comps):
            return ""
        subs = self._comps[comp - 1]
        if sub > len(subs):
            return ""
        value = subs[sub - 1]
        return "" if value == NULL else self._delims.unescape(value).strip()

    def subs(self, comp: int) -> list[str]:
        """All sub-components of component ``comp``, unescaped."""
        if comp > len(self._comps):
            return []
        return [self._delims.unescape(s).strip() for s in self._comps[comp - 1] if s != NULL]

    def is_empty(self) -> bool:
        return all(s in ("", NULL) for comp in self._comps for s in comp)

    def __len__(self) -> int:
        return len(self._comps)


class Segment:
    """One segment; ``seq`` is its 1-based occurrence among segments of that name (ERL)."""

    def __init__(self, name: str, fields: list[str], seq: int, delims: Delimiters) -> None:
        self.name = name
        self.seq = seq
        self.delims = delims
        self._fields = fields  # index n holds field n, still escaped (MSH: n is MSH-n)
        self._cache: dict[int, list[Rep]] = {}
        self._filled: dict[int, list[Rep]] = {}

    def _reps(self, n: int) -> list[Rep]:
        cached = self._cache.get(n)
        if cached is not None:
            return cached
        reps: list[Rep] = []
        if n < len(self._fields) and self._fields[n]:
            d = self.delims
            for rep in self._fields[n].split(d.repetition):
                comps = [comp.split(d.subcomponent) for comp in rep.split(d.component)]
                reps.append(Rep(comps, d))
        self._cache[n] = reps
        return reps

    def reps(self, n: int) -> list[Rep]:
        """The non-empty repetitions of field ``n``."""
        found = self._filled.get(n)
        if found is None:
            found = self._filled[n] = [r for r in self._reps(n) if not r.is_empty()]
        return found

    def rep(self, n: int) -> Rep | None:
        found = self.reps(n)
        return found[0] if found else None

    def get(self, n: int, comp: int = 1, sub: int = 1) -> str:
        """First repetition's component/sub-component of field ``n``, unescaped."""
        found = self._reps(n)
        return found[0].c(comp, sub) if found else ""

    def loc(self, n: int | None = None, comp: int | None = None) -> str:
        """ERL location, e.g. ``PID^1^3`` or ``OBX^2^5^1^2``."""
        parts = [self.name, str(self.seq)]
        if n is not None:
            parts.append(str(n))
            if comp is not None:
                parts += ["1", str(comp)]
        return "^".join(parts)


class V2Message:
    """The segments of one message in order, with lookups by name."""

    def __init__(self, segments: list[Segment], delims: Delimiters) -> None:
        self.segments = segments
        self.delims = delims

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    @property
    def msh(self) -> Segment:
        return self.segments[0]


def parse_message(text: str, *, codec: str = "utf-8") -> V2Message:
    """Parse CR-separated text (from :func:`decode_message`) into a :class:`V2Message`.

    python-hl7's parse plan reads the delimiters from MSH-1/MSH-2; fields are then split
    lazily, only when a mapper asks for them (``hl7.parse`` builds the whole container
    tree up front, which costs more than the whole mapping of a typical ORU).
    """
    try:
        plan = create_parse_plan(text)
    except Exception as exc:  # python-hl7 raises ParseException, IndexError
        raise ConversionError(
            "message cannot be parsed", ack_code="AR", error_code="100", location="MSH"
        ) from exc
    field_sep = plan.separators[1]
    encoding = text[4 : text.find(field_sep, 4)] if field_sep in text[4:] else ""
    delims = Delimiters(
        field=field_sep,
        component=plan.separators[3],
        repetition=plan.separators[2],
        escape=plan.esc if len(encoding) > 2 else "",
        subcomponent=plan.separators[4],
        codec=codec,
    )
    segments: list[Segment] = []
    counts: dict[str, int] = {}
    for line in text.split("\r"):
        if not line.strip():
            continue
        name = line[:3]
        if not _SEGMENT_ID.match(name) or (len(line) > 3 and line[3] != field_sep):
            raise ConversionError(
                f"invalid segment id after segment {len(segments)}",
                ack_code="AR",
                error_code="100",
                location=f"segment {len(segments) + 1}",
            )
        parts = line.split(field_sep)
        fields = [name, field_sep, *parts[1:]] if name == "MSH" else parts
        counts[name] = counts.get(name, 0) + 1
        segments.append(Segment(name, fields, counts[name], delims))
    if not segments or segments[0].name != "MSH":
        raise ConversionError(
            "first segment is not MSH", ack_code="AR", error_code="100", location="MSH"
        )
    return V2Message(segments, delims)
