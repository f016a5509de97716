"""Every sample that converts yields a Bundle whose resources all pass the R4B models."""

from __future__ import annotations

import pytest

from .support import OWN, PUBLIC, converted

FAILING_ON_PURPOSE = {
    "hapifhir-hapi-hl7v2__cv.04_001_chem.hl7",
    "hapifhir-hapi-hl7v2__util-messages.txt_ORU_R01_1994.hl7",
    "johnpaulett-python-hl7__tests-samples.py_sample_hl7.hl7",
    "johnpaulett-python-hl7__tests-samples.py_rep_sample_hl7.hl7",
    "johnpaulett-python-hl7__tests-samples.py_sample_batch.hl7",
    "microsoft-FHIR-Converter__MDHHS-OML-O21-2.hl7",
}
SAMPLES = [f"own/{p.name}" for p in sorted(OWN.glob("*.hl7")) if p.name != "batch.hl7"] + [
    f"public/{p.name}" for p in sorted(PUBLIC.glob("*.hl7")) if p.name not in FAILING_ON_PURPOSE
]


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_validates(name: str) -> None:
    charset = "KS X 1001" if "no_msh18" in name else None
    result = converted(name, default_charset=charset)
    bundle = result.bundle
    assert bundle["type"] == "transaction"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert all(u.startswith("urn:uuid:") for u in urls)
    provenance = bundle["entry"][-1]["resource"]
    assert provenance["resourceType"] == "Provenance"
    assert [t["reference"] for t in provenance["target"]] == urls[:-1]
    for entry in bundle["entry"][:-1]:
        assert entry["request"]["method"] in ("PUT", "POST", "PATCH")
        assert "identifier=" in (entry["request"].get("ifNoneExist") or entry["request"]["url"])
