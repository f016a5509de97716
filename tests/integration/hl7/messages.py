"""HL7 v2 messages built for the intake tests (CR-separated bytes)."""

from __future__ import annotations

MSH_TAIL = "P|2.5.1|||AL|NE||UNICODE UTF-8"
OBSERVATIONS = [
    ("2345-7", "Glucose", "NM", "105", "mg/dL", "70-99", "H"),
    ("2160-0", "Creatinine", "NM", "0.9", "mg/dL", "0.7-1.3", "N"),
    ("2093-3", "Cholesterol", "NM", "180", "mg/dL", "<200", "N"),
    ("2571-8", "Triglyceride", "NM", "140", "mg/dL", "<150", "N"),
    ("5778-6", "Color of Urine", "ST", "Straw", "", "", "N"),
]


def _join(segments: list[str]) -> bytes:
    return ("\r".join(segments) + "\r").encode("utf-8")


def pid(mrn: str, *, family: str = "Kim", given: str = "Minjun") -> str:
    return f"PID|1||{mrn}^^^SGH&2.16.840.1.113883.3.9999&ISO^MR||{family}^{given}||19880101|M"


def adt_a04(control_id: str, mrn: str, *, family: str = "Kim") -> bytes:
    return _join(
        [
            f"MSH|^~\\&|MEDIADT|SGH|MEDICORE|MEDICORE|20240305083000+0900||ADT^A04^ADT_A01|"
            f"{control_id}|{MSH_TAIL}",
            "EVN|A04|20240305083000+0900",
            pid(mrn, family=family),
            "PV1|1|O|CLINIC^101^A^SGH||||||||||||||||V-" + control_id,
        ]
    )


def oru_r01(
    control_id: str,
    mrn: str,
    *,
    order: str = "FL-1",
    status: str = "F",
    first_value: str = "105",
    obx_count: int = 5,
) -> bytes:
    """An ORU^R01 with ``obx_count`` results (at most 5) for filler order ``order``."""
    segments = [
        f"MSH|^~\\&|MEDILAB|SGH|MEDICORE|MEDICORE|20240305101500+0900||ORU^R01^ORU_R01|"
        f"{control_id}|{MSH_TAIL}",
        pid(mrn),
        f"ORC|RE|P-{order}^MEDIORD|{order}^MEDILAB",
        f"OBR|1|P-{order}^MEDIORD|{order}^MEDILAB|24323-8^Metabolic panel^LN|||"
        f"20240305093000+0900|||||||||D100^Lee^Jiwoo||||||20240305101000+0900|||{status}",
    ]
    for n, (code, name, vtype, value, unit, ref, flag) in enumerate(
        OBSERVATIONS[:obx_count], start=1
    ):
        shown = first_value if n == 1 else value
        units = f"{unit}^^UCUM" if unit else ""
        segments.append(
            f"OBX|{n}|{vtype}|{code}^{name}^LN||{shown}|{units}|{ref}|{flag}|||{status}"
        )
    return _join(segments)


def unsupported_type(control_id: str) -> bytes:
    return _join(
        [
            f"MSH|^~\\&|MEDIADT|SGH|MEDICORE|MEDICORE|20240305083000||ZZZ^Z99|{control_id}|"
            f"{MSH_TAIL}",
            "PID|1||X-1^^^SGH^MR",
        ]
    )


def euc_kr_a04(control_id: str, mrn: str) -> bytes:
    """A Korean registration in EUC-KR bytes with MSH-18 left empty."""
    text = (
        f"MSH|^~\\&|KRADT|SGH|MEDICORE|MEDICORE|20240305083000+0900||ADT^A04^ADT_A01|"
        f"{control_id}|P|2.5.1\r"
        "EVN|A04|20240305083000+0900\r"
        f"PID|1||{mrn}^^^SGH&2.16.840.1.113883.3.9999&ISO^MR||홍^길동||19700101|M\r"
    )
    return text.encode("euc-kr")


NOT_HL7 = b"this is not an HL7 message at all"
