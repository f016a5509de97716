"""What a backup holds, written into the archive so a restore can prove it got it all back."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

FORMAT_VERSION = 1


@dataclass(slots=True)
class Inventory:
    """Counts that must be identical after a restore; no ids, no content."""

    resources: dict[str, int] = field(default_factory=dict)  # current, not deleted, per type
    versions: dict[str, int] = field(default_factory=dict)  # every stored version, per type
    records: dict[str, int] = field(default_factory=dict)  # server records per kind
    audit_head: dict[str, Any] | None = None  # {"position": n, "hash": "..."} when kept

    @property
    def empty(self) -> bool:
        position = (self.audit_head or {}).get("position", 0)
        return not (sum(self.versions.values()) or sum(self.records.values()) or position)

    def differences(self, other: Inventory) -> list[str]:
        """PHI-free lines naming every count that differs (``self`` is the expected side)."""
        problems: list[str] = []
        for name in ("resources", "versions", "records"):
            want: dict[str, int] = getattr(self, name)
            got: dict[str, int] = getattr(other, name)
            for key in sorted(set(want) | set(got)):
                if want.get(key, 0) != got.get(key, 0):
                    problems.append(
                        f"{name}[{key}]: expected {want.get(key, 0)}, found {got.get(key, 0)}"
                    )
        if self.audit_head != other.audit_head:
            want_head, got_head = _head(self.audit_head), _head(other.audit_head)
            problems.append(f"audit chain head: expected {want_head}, found {got_head}")
        return problems


def _head(head: dict[str, Any] | None) -> str:
    if not head:
        return "none"
    return f"position {head.get('position')} hash {str(head.get('hash'))[:12]}"


@dataclass(slots=True)
class Manifest:
    """``manifest.json`` at the top of every archive."""

    created: str  # UTC instant of the snapshot
    store_kind: str  # "sqlite" or "mongodb"
    payload: str  # file name of the payload inside the archive
    payload_sha256: str
    payload_bytes: int
    inventory: Inventory
    counts_exact: bool  # False when counts were taken beside a moving dump (MongoDB)
    server_version: str = "0.1.0"
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Raise ``ValueError`` for anything but a well-formed manifest of this format."""
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
            raise ValueError("not a MediCore backup manifest of a known format")
        try:
            raw["inventory"] = Inventory(**raw["inventory"])
            manifest = cls(**raw)
        except (KeyError, TypeError) as exc:  # missing, unknown or non-mapping fields
            raise ValueError("the backup manifest is malformed") from exc
        inv = manifest.inventory
        counts_ok = all(
            isinstance(c, dict) and all(isinstance(n, int) for n in c.values())
            for c in (inv.resources, inv.versions, inv.records)
        )
        if not (
            counts_ok
            and isinstance(inv.audit_head, dict | None)
            and isinstance(manifest.payload, str)
            and isinstance(manifest.store_kind, str)
        ):
            raise ValueError("the backup manifest is malformed")
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
