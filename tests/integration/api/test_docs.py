"""``/docs`` works with no network beyond the server (issue #16): Swagger UI's files come
from the package, and the OpenAPI document declares the bearer token the FHIR routes take."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from fhir_server.api.docs import ASSETS_DIR

EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _referenced(html: str) -> list[str]:
    """Every URL the page loads: src/href attributes and the OpenAPI ``url:``."""
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    spec = re.findall(r"""\burl:\s*["']([^"']+)["']""", html)
    return attributes + spec


async def test_docs_reference_only_local_urls_that_answer(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = _referenced(page.text)
    assert len(urls) == 4, urls  # stylesheet, icon, script, OpenAPI document
    assert all(not urlsplit(u).scheme and not urlsplit(u).netloc for u in urls), urls
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for url in urls:
        answer = await client.get(url)
        assert answer.status_code == 200, url
        suffix = url[url.rfind(".") :]
        expected = EXPECTED_TYPES.get(suffix, "application/json")
        assert answer.headers["content-type"].startswith(expected), (url, answer.headers)
    script = await client.get(next(u for u in urls if u.endswith(".js")))
    assert b"SwaggerUIBundle" in script.content
    assert script.content == (ASSETS_DIR / "swagger-ui-bundle.js").read_bytes()


async def test_the_vendored_assets_carry_their_licence() -> None:
    licence = (ASSETS_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "swagger-ui-dist 5.32.0" in (ASSETS_DIR / "README.md").read_text(encoding="utf-8")


async def test_no_cdn_backed_redoc_is_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/redoc")).status_code == 404


async def test_openapi_declares_bearer_auth_on_the_fhir_routes(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    fhir_operations = {
        (method, path): operation
        for path, item in spec["paths"].items()
        if path.startswith("/fhir")
        for method, operation in item.items()
    }
    public = {("get", "/fhir/metadata"), ("get", "/fhir/.well-known/smart-configuration")}
    assert {key for key, op in fhir_operations.items() if "security" not in op} == public
    secured = [op for key, op in fhir_operations.items() if key not in public]
    assert len(secured) > 15
    assert all(op["security"] == [{"bearer": []}] for op in secured)


async def test_the_declared_scheme_is_what_the_server_checks(
    secured: httpx.AsyncClient,
) -> None:
    """Swagger UI's "Try it out" sends ``Authorization: Bearer <token>``: exactly that."""
    from tests.integration.api.conftest import mint

    token = mint(secured, role="doctor", scope="user/Patient.rs")
    assert (await secured.get("/fhir/Patient")).status_code == 401
    answer = await secured.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
