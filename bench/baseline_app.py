"""The baseline: bare FastAPI + orjson answering with a fixed Patient, no store, no checks."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

PATIENT = orjson.dumps(
    {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00.000000+00:00"},
        "identifier": [{"system": "urn:oid:1.2.410.100", "value": "MRN-1"}],
        "name": [{"family": "Kim", "given": ["Minsu"]}],
        "gender": "male",
        "birthDate": "1980-01-01",
    }
)

app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})


@app.get("/fhir/Patient/{pid}")
async def read(pid: str) -> Response:
    return Response(PATIENT, media_type="application/fhir+json")


@app.post("/fhir/Patient")
async def create(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps(body), status_code=201, media_type="application/fhir+json")


@app.post("/fhir")
async def bundle(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps(body), media_type="application/fhir+json")
