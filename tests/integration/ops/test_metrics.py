"""``/metrics`` after real traffic: by interaction and type, never by id or value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fhir_server.storage.base import RecordWrite, WriteBatch
from tests.integration.ops.conftest import OpsApp, make_ops_app

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.410.100", "value": "MRN-778899"}],
    "name": [{"family": "Hwang", "given": ["Jisoo"]}],
}


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


async def test_metrics_appear_after_traffic(ops: OpsApp) -> None:
    created = await ops.client.post("/fhir/Patient", json=PATIENT)
    assert created.status_code == 201
    pid = created.json()["id"]
    for _ in range(3):
        assert (await ops.client.get(f"/fhir/Patient/{pid}")).status_code == 200
    assert (await ops.client.get("/fhir/Patient", params={"family": "Hwang"})).status_code == 200
    assert (await ops.client.get("/fhir/Patient/does-not-exist")).status_code == 404

    response = await ops.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    reqs = "medicore_http_requests_total"
    assert value(reqs, interaction="create", resource_type="Patient", status="201") == 1
    assert value(reqs, interaction="read", resource_type="Patient", status="200") == 3
    assert value(reqs, interaction="read", resource_type="Patient", status="404") == 1
    assert value(reqs, interaction="search-type", resource_type="Patient", status="200") == 1
    assert value("medicore_http_errors_total", status="404") == 1
    latency = "medicore_http_request_duration_seconds_count"
    assert value(latency, interaction="read", resource_type="Patient") == 4
    assert value("medicore_store_operation_duration_seconds_count", operation="commit") >= 1
    assert value("medicore_store_operation_duration_seconds_count", operation="read") >= 4
    # The scrape itself is in flight while it renders.
    assert value("medicore_http_active_requests") == 1

    # No id, name, identifier or raw path ever becomes a label value.
    label_values = {v for (_, labels) in samples for (_, v) in labels}
    for secret in (pid, "Hwang", "Jisoo", "MRN-778899", "does-not-exist", "/fhir/Patient"):
        assert not any(secret in v for v in label_values), secret


async def test_dead_letter_depth_counts_failed_hl7_messages(ops: OpsApp) -> None:
    store = ops.app.state.store
    batch = WriteBatch(
        records=[
            RecordWrite("hl7_inbox", f"LAB|H|{n}", {"status": "failed" if n < 3 else "processed"})
            for n in range(5)
        ]
    )
    await store.commit(batch)
    text = (await ops.client.get("/metrics")).text
    assert re.search(r"^medicore_hl7_dead_letter_depth 3\.0$", text, re.M)


async def test_gauges_other_parts_set_and_refreshers(ops: OpsApp) -> None:
    depth = {"n": 7}

    async def count_dead_letters() -> None:
        ops.metrics.set_dead_letter_depth(depth["n"])

    async def broken() -> None:
        raise RuntimeError("source down")

    ops.metrics.add_refresher(broken)
    ops.metrics.add_refresher(count_dead_letters)
    ops.metrics.observe_hl7("ORU^R01", "AA")
    ops.metrics.observe_hl7("ORU^R01", "AE")
    ops.metrics.observe_hl7("<script>", "AR")
    with ops.metrics.time_audit_write():
        pass
    text = (await ops.client.get("/metrics")).text
    assert re.search(r"^medicore_hl7_dead_letter_depth 7\.0$", text, re.M)
    assert 'medicore_hl7_messages_total{ack_code="AE",message_type="ORU^R01"} 1.0' in text
    assert 'medicore_hl7_messages_total{ack_code="AR",message_type="other"} 1.0' in text
    assert "medicore_audit_write_duration_seconds_count 1.0" in text
    depth["n"] = 0
    text = (await ops.client.get("/metrics")).text
    assert re.search(r"^medicore_hl7_dead_letter_depth 0\.0$", text, re.M)


async def test_unknown_types_and_paths_do_not_grow_labels(ops: OpsApp) -> None:
    for i in range(5):
        await ops.client.get(f"/fhir/Made{i}Up/x")
        await ops.client.get(f"/random/{i}")
    text = (await ops.client.get("/metrics")).text
    assert "Made0Up" not in text and "/random" not in text
    samples = _samples(text)
    unmatched = samples[
        (
            "medicore_http_requests_total",
            frozenset({"interaction": "unmatched", "resource_type": "-", "status": "404"}.items()),
        )
    ]
    assert unmatched == 5


async def test_audit_index_backlog_is_a_gauge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded but not yet searchable AuditEvents, read from the store at each scrape."""
    monkeypatch.setenv("MEDICORE_AUDIT_INDEX_INTERVAL", "3600")  # no background indexing
    async for running in make_ops_app(tmp_path):
        for _ in range(4):
            assert (await running.client.get("/fhir/Patient/nobody")).status_code == 404
        samples = _samples((await running.client.get("/metrics")).text)
        assert samples[("medicore_audit_index_backlog", frozenset())] == 4
        await running.client.get("/fhir/AuditEvent", params={"_count": "1"})  # catches up
        samples = _samples((await running.client.get("/metrics")).text)
        # The search's own event (scrapes of /metrics are not audited).
        assert samples[("medicore_audit_index_backlog", frozenset())] == 1
