"""One large request no longer stalls the others (issue #16), on a real ``medicore serve``.

Small requests run back to back while the largest allowed requests (a Patient just under
the element limit, a transaction of ``max_bundle_entries`` entries) are in flight; their
p99 must stay within 3x of the p99 measured in quiet windows of the same test, which
alternate with the busy ones so that both see the same machine noise (no absolute
thresholds). The small request is one the event loop alone answers (``/fhir/metadata``):
audited reads also wait for the SQLite writer, which commits the large write (see README,
Performance). Run alone with ``-m load``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from bench.bounds import Probe, large_requests, probe
from fhir_server.api.limits import RequestLimits
from tests.e2e.conftest import RunningServer, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.load]

SMALL = ("GET", "/fhir/metadata", b"")
RATIO = 3.0
# The quiet p99 is floored here: on an idle machine it falls under a millisecond, less than
# one GIL turn (1 ms, ``gc_tuning``) plus one scheduler slice, which a busy server with
# SQLite threads always costs now and then. A blocked loop (the defect: hundreds of ms)
# fails far above it.
QUIET_FLOOR_MS = 2.0
# A scheduling hiccup of the shared machine can land in either kind of window; a blocked
# event loop (the defect) fails every attempt, a hiccup does not repeat on demand.
ATTEMPTS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("bounds"))
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("name", list(large_requests(RequestLimits())))
def test_small_requests_keep_their_latency_during_a_maximal_request(
    server: RunningServer, name: str
) -> None:
    large = large_requests(RequestLimits())[name]
    port = int(server.base.rsplit(":", 1)[1])
    with httpx.Client(base_url=server.base, timeout=60) as http:  # warm up: worker, caches
        assert http.post(large[1], content=large[2], headers=_FHIR).status_code in (200, 201)
    attempts: list[Probe] = []
    for _ in range(ATTEMPTS):
        found = asyncio.run(
            probe(port, small=SMALL, large=large, rounds=4, min_busy=150, max_seconds=40)
        )
        assert found.small_statuses == {200}
        assert set(found.large_statuses) <= {200, 201}, found.large_statuses
        assert len(found.idle_ms) >= 150 and len(found.busy_ms) >= 150
        attempts.append(found)
        quiet, busy = Probe.p(found.idle_ms, 0.99), Probe.p(found.busy_ms, 0.99)
        print(f"{name}: p99 {quiet:.1f} ms quiet, {busy:.1f} ms during")
        if _ratio(found) <= RATIO:
            break
    best = min(attempts, key=_ratio)
    assert _ratio(best) <= RATIO, [
        (Probe.p(a.idle_ms, 0.99), Probe.p(a.busy_ms, 0.99)) for a in attempts
    ]


_FHIR = {"Content-Type": "application/fhir+json"}


def _ratio(found: Probe) -> float:
    quiet = max(Probe.p(found.idle_ms, 0.99), QUIET_FLOOR_MS)
    return Probe.p(found.busy_ms, 0.99) / quiet
