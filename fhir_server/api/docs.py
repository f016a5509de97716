"""``/docs``: Swagger UI from the package's own files (no CDN: hospital networks are often
closed), and the OpenAPI document's bearer-token scheme so "Try it out" sends a token."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
ASSETS_PATH = "/docs/assets"

#: Declared on every FHIR route (``access.establish_caller``); it only reads the header,
#: the verification stays ``establish_caller``'s.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A SMART access token (JWT) from /auth/token or `medicore token`.",
)


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs from ``ASSETS_DIR``; the app is built with
    ``docs_url=None, redoc_url=None`` (ReDoc would need a CDN too)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            # no validator badge: it would call validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_route("/docs", swagger_ui, include_in_schema=False)
