"""``/docs`` in a real browser with no network beyond the server (issue #16): Debian's
Chromium driven by Playwright (``/usr/bin/chromium``: no browser download) renders the
operations from the package's own Swagger UI files, and "Try it out" sends the bearer
token given to "Authorize"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.e2e.conftest import start_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
# As the machine's notes advise for a closed network: no background connections.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _token(tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDICORE_")}
    env["PYTHONPATH"] = str(REPO)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "fhir_server.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("users", "add", "dr.docs", "--role", "doctor", "--password", "x" * 12)
    return cli("token", "--user", "dr.docs", "--scope", "user/*.rs").strip().splitlines()[-1]


def _ensure_chromium() -> None:
    """The README's test command installs what the suite needs: Debian's package, when
    missing and this is a root shell with apt (CI); elsewhere a failure saying how."""
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(step, check=True, capture_output=True, timeout=900)
    assert Path(CHROMIUM).exists(), "this test needs Debian's chromium: apt-get install chromium"


def test_docs_render_offline_and_try_it_out_sends_the_token(tmp_path: Path) -> None:
    _ensure_chromium()
    store = f"sqlite:///{tmp_path / 'data' / 'medicore.db'}"
    server = start_server(tmp_path, "--store", store, auth=True)
    outside: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:  # anything else would be a CDN, a validator... unreachable in a hospital
            outside.append(route.request.url)
            route.abort()

    try:
        token = _token(tmp_path)  # after the start: the server makes the signing keys
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.route("**/*", only_the_server)
            page.goto(f"{server.base}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/fhir/{resource_type}/{resource_id}" in {p.strip() for p in paths}
            assert len(paths) > 20

            page.click("button.authorize")
            page.fill(".auth-container input", token)
            page.click(".auth-btn-wrapper button.authorize")
            page.click(".auth-btn-wrapper button.btn-done")

            page.locator(".opblock-summary-path", has_text="/fhir/_history").first.click()
            page.click("button.try-out__btn")
            with page.expect_response(lambda r: "/fhir/_history" in r.url) as answered:
                page.click("button.execute")
            response = answered.value
            assert response.request.headers["authorization"] == f"Bearer {token}"
            assert response.status == 200
            browser.close()
    finally:
        server.stop()
    assert outside == []
