"""Search at scale on the embedded store: load, then time the queries clinicians run.

    python -m bench.search --patients 100000 --observations 1000000 [--workers 2]
    python -m bench.search --db /path/bench.db --skip-load      # re-time an existing file

Loading goes through the real write path (validation, index extraction, one AuditEvent
per resource, durable commits) in transactions of ``--batch`` resources, with
``--workers`` processes sharing the SQLite file (they plan in parallel; SQLite orders
their commits). Each query is timed ``--repeat`` times in-process on the service layer
(parse, search, searchset Bundle), with varying values; p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fhir_server.api.search_bundle import build_searchset
from fhir_server.resources.auditing import AuditTrail, Requestor
from fhir_server.resources.planning import Plan
from fhir_server.resources.service import ResourceService
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.sqlite import SqliteStore

FAMILIES = [
    "Kim",
    "Lee",
    "Park",
    "Choi",
    "Jung",
    "Kang",
    "Cho",
    "Yoon",
    "Jang",
    "Lim",
    "Smith",
    "Garcia",
    "Nguyen",
    "Müller",
    "Okafor",
    "김",
    "이",
    "박",
    "최",
    "정",
]
GIVEN = [
    "Minjun",
    "Seoyeon",
    "Jiho",
    "Hayoon",
    "Doyun",
    "Emma",
    "Liam",
    "José",
    "Anna",
    "민준",
    "서연",
    "지호",
    "하윤",
    "도윤",
]
# (LOINC code, display, unit, mean, sd, category); weights make a few codes dominate.
CODES = [
    ("8867-4", "Heart rate", "/min", 78, 12, "vital-signs"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 125, 15, "vital-signs"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 80, 10, "vital-signs"),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.5, "vital-signs"),
    ("2339-0", "Glucose", "mg/dL", 100, 25, "laboratory"),
    ("2160-0", "Creatinine", "mg/dL", 1.0, 0.3, "laboratory"),
    ("718-7", "Hemoglobin", "g/dL", 13.5, 1.8, "laboratory"),
    ("6690-2", "Leukocytes", "10*3/uL", 7, 2, "laboratory"),
    ("2093-3", "Cholesterol", "mg/dL", 190, 35, "laboratory"),
    ("4548-4", "Hemoglobin A1c", "%", 5.8, 0.9, "laboratory"),
]
WEIGHTS = [30, 15, 15, 10, 10, 6, 5, 4, 3, 2]
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
EPOCH = 1_640_995_200  # 2022-01-01
SPAN = 4 * 365 * 86400


def patient(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.200.1", "value": f"MRN{i:07d}"}],
        "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVEN)]}],
        "gender": rng.choice(["male", "female"]),
        "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }


def observation(i: int, patients: int, rng: random.Random) -> dict[str, Any]:
    code, display, unit, mean, sd, category = rng.choices(CODES, WEIGHTS)[0]
    # A few patients have many observations (chronic care), most have few.
    # 30% of observations belong to the 1% of patients in chronic care (~30 each at
    # 100,000 patients and 1,000,000 observations), the rest spread over everyone.
    chronic = rng.random() < 0.3
    subject = rng.randrange(max(1, patients // 100)) if chronic else rng.randrange(patients)
    moment = time.gmtime(EPOCH + rng.randrange(SPAN))
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": f"Patient/pat-{subject}"},
        "effectiveDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", moment),
        "valueQuantity": {
            "value": round(rng.gauss(mean, sd), 1),
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


async def _load_part(path: Path, worker: int, workers: int, args: argparse.Namespace) -> int:
    store = SqliteStore(path, audit_key=b"bench-key")
    await store.open()
    service = ResourceService(store, SearchRegistry.default())
    rng = random.Random(1000 + worker)
    written = 0
    jobs: list[tuple[str, int]] = [("Patient", i) for i in range(worker, args.patients, workers)]
    jobs += [("Observation", i) for i in range(worker, args.observations, workers)]
    for start in range(0, len(jobs), args.batch):
        chunk = jobs[start : start + args.batch]

        async def build(plan: Plan, chunk: list[tuple[str, int]] = chunk) -> None:
            for kind, i in chunk:
                if kind == "Patient":
                    await service.planner.create(plan, patient(i, rng), resource_id=f"pat-{i}")
                else:
                    await service.planner.create(plan, observation(i, args.patients, rng))

        trail = AuditTrail(Requestor(client_id="bench-loader", address="127.0.0.1"))
        await service.run(build, trail=trail)
        written += len(chunk)
    await store.close()
    return written


def _worker(path: str, worker: int, workers: int, args: argparse.Namespace) -> int:
    return asyncio.run(_load_part(Path(path), worker, workers, args))


def load(path: Path, args: argparse.Namespace) -> float:
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        counts = pool.starmap(
            _worker, [(str(path), w, args.workers, args) for w in range(args.workers)]
        )
    elapsed = time.perf_counter() - started
    return sum(counts) / elapsed


def queries(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    def hot_patient() -> int:
        """Half the queries are about a chronic-care patient, half about anyone."""
        return (
            rng.randrange(max(1, args.patients // 100))
            if rng.random() < 0.5
            else (rng.randrange(args.patients))
        )

    def week() -> list[tuple[str, str]]:
        day = EPOCH + rng.randrange(SPAN - 7 * 86400)
        lo = time.strftime("%Y-%m-%d", time.gmtime(day))
        hi = time.strftime("%Y-%m-%d", time.gmtime(day + 7 * 86400))
        return [("date", f"ge{lo}"), ("date", f"lt{hi}")]

    return {
        "token: Observation?code=&patient=": lambda: (
            "Observation",
            [
                ("code", f"http://loinc.org|{rng.choices(CODES, WEIGHTS)[0][0]}"),
                ("patient", f"Patient/pat-{hot_patient()}"),
            ],
        ),
        "date range (one week)": lambda: ("Observation", week()),
        "string prefix: Patient?name=": lambda: ("Patient", [("name", rng.choice(FAMILIES)[:2])]),
        "chain: Observation?patient.identifier=": lambda: (
            "Observation",
            [("patient.identifier", f"urn:oid:1.2.410.200.1|MRN{hot_patient():07d}")],
        ),
        "_revinclude: Patient?_id=&_revinclude=Observation:subject": lambda: (
            "Patient",
            [("_id", f"pat-{hot_patient()}"), ("_revinclude", "Observation:subject")],
        ),
        "_summary=count over all Observations": lambda: (
            "Observation",
            [("status", "final"), ("_summary", "count")],
        ),
    }


async def time_queries(path: Path, args: argparse.Namespace) -> list[tuple[str, float, float, int]]:
    store = SqliteStore(path, audit_key=b"bench-key")
    await store.open()
    service = ResourceService(store, SearchRegistry.default())
    rng = random.Random(7)
    rows = []
    for name, make in queries(args, rng).items():
        samples, hits = [], 0
        for _ in range(args.repeat):
            rtype, params = make()
            started = time.perf_counter()
            query = service.parse_query(rtype, params, base_url="http://bench/fhir", strict=True)
            result = await service.search(query)
            bundle = build_searchset(result, query, base_url="http://bench/fhir")
            samples.append((time.perf_counter() - started) * 1000)
            hits = max(hits, bundle.get("total") or len(bundle.get("entry", [])))
        samples.sort()
        p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
        rows.append((name, statistics.median(samples), p95, hits))
    await store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="medicore-search-")) / "bench.db"
    rate = None
    if not args.skip_load:
        rate = load(path, args)
    rows = asyncio.run(time_queries(path, args))
    print(
        f"{args.patients:,} patients, {args.observations:,} observations, SQLite file "
        f"{path.stat().st_size / 2**30:.2f} GiB, {os.cpu_count()} cores"
    )
    if rate is not None:
        print(
            f"load: {rate:,.0f} resources/s ({args.workers} processes, "
            f"transactions of {args.batch}, validation + indexing + one AuditEvent per "
            "resource, synchronous=FULL)"
        )
    print("\n| query | p50 ms | p95 ms | hits (first page or total) |\n|---|---|---|---|")
    for name, p50, p95, hits in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {hits:,} |")


if __name__ == "__main__":
    sys.exit(main())
