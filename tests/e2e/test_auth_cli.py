"""`medicore users add` / `token` / `clients add` / `keys rotate` as real subprocesses.

The token printed by the CLI must verify with the key directory and store a server run
from the same directory would use. `fhir_server.cli` is the `medicore` command (it
registers `cli_auth`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey, KeySet

from auth.keys import KeyRing
from auth.tokens import verify_access_token
from fhir_server.security.authenticate import principal_from_token
from fhir_server.security.context import SecurityContext
from fhir_server.security.settings import SecuritySettings, fhir_base
from fhir_server.settings import Settings
from fhir_server.storage import store_from_uri
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BASE = fhir_base(None)  # what `serve` uses without MEDICORE_BASE_URL, whatever its port


def run(
    module: str, cwd: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDICORE_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "PYTHONPATH": str(REPO), **env},
    )


@pytest.mark.parametrize("module", ["fhir_server.cli"])
async def test_users_add_then_token_verifies_like_the_server(module: str, tmp_path: Path) -> None:
    added = run(
        module,
        tmp_path,
        "users",
        "add",
        "dr.e2e",
        "--role",
        "doctor",
        "--password-stdin",
        "--fhir-user",
        "Practitioner/1",
        stdin="a long secret 1\n",
    )
    assert added.returncode == 0, added.stderr
    # only the server's start or `keys rotate` makes signing keys; `token` needs them
    missing = run(module, tmp_path, "token", "--user", "dr.e2e", "--scope", "user/*.rs")
    assert missing.returncode == 1 and "MEDICORE_KEYS_DIR" in missing.stderr
    assert not (tmp_path / "data" / "keys").exists()
    assert run(module, tmp_path, "keys", "rotate").returncode == 0
    scope = "launch/patient user/*.rs patient/Observation.cruds"
    out = run(module, tmp_path, "token", "--user", "dr.e2e", "--scope", scope, "--patient", "p1")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    ring = KeyRing.load_or_create(tmp_path / "data" / "keys")
    claims = verify_access_token(ring, token, issuer=BASE, audience=BASE)
    assert (claims["sub"], claims["role"], claims["patient"]) == ("dr.e2e", "doctor", "p1")
    assert claims["fhirUser"] == "Practitioner/1"
    assert "patient/Observation.cruds" in claims["scope"].split()
    # what `medicore serve` in the same directory would build
    settings = Settings(store=f"sqlite:///{tmp_path / 'data' / 'medicore.db'}")
    store = store_from_uri(settings.store)
    await store.open()
    try:
        sec = SecuritySettings(keys_dir=tmp_path / "data" / "keys")
        ctx = SecurityContext.build(settings, store, security=sec)
        principal = await principal_from_token(ctx, token)
        assert (principal.subject, principal.role, principal.patient) == ("dr.e2e", "doctor", "p1")
        user = await ctx.repo.get_user("dr.e2e")
        assert user is not None and "a long secret" not in json.dumps(user)
    finally:
        await store.close()


def test_refusals_and_client_registration(tmp_path: Path) -> None:
    module = "fhir_server.cli"
    ok = run(
        module, tmp_path, "users", "add", "rn.e2e", "--role", "nurse", "--password", "pw-12345678"
    )
    assert ok.returncode == 0, ok.stderr
    dup = run(
        module, tmp_path, "users", "add", "rn.e2e", "--role", "nurse", "--password", "pw-12345678"
    )
    assert dup.returncode == 1
    assert run(module, tmp_path, "keys", "rotate").returncode == 0
    bad_role = run(
        module, tmp_path, "users", "add", "x", "--role", "system", "--password", "pw-12345678"
    )
    assert bad_role.returncode == 2 and "role" in bad_role.stderr
    prod = run(
        module,
        tmp_path,
        "token",
        "--user",
        "rn.e2e",
        "--scope",
        "user/*.rs",
        MEDICORE_ENV="production",
    )
    assert prod.returncode == 1 and prod.stdout == "" and "production" in prod.stderr
    nothing = run(
        module, tmp_path, "token", "--user", "rn.e2e", "--scope", "user/MedicationRequest.c"
    )
    assert nothing.returncode == 1 and nothing.stdout == ""
    bad_scope = run(module, tmp_path, "token", "--user", "rn.e2e", "--scope", "user/Patient.sr")
    assert bad_scope.returncode == 2

    jwks = KeySet([ECKey.generate_key("P-384", parameters={"kid": "k1"})]).as_dict(private=False)
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    args = ("clients", "add", "--id", "partner", "--jwks", "jwks.json")
    added = run(module, tmp_path, *args, "--scope", "system/Patient.rs")
    assert added.returncode == 0, added.stderr
    wrong = run(module, tmp_path, *args[:3], "partner2", *args[4:], "--scope", "user/Patient.rs")
    assert wrong.returncode == 2 and "scope" in wrong.stderr

    rotated = run(module, tmp_path, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    out = run(module, tmp_path, "token", "--user", "rn.e2e", "--scope", "user/Observation.cruds")
    token = out.stdout.strip().splitlines()[-1]
    ring = KeyRing.load_or_create(tmp_path / "data" / "keys")
    claims = verify_access_token(ring, token, issuer=BASE, audience=BASE)
    assert claims["scope"] == "user/Observation.crus"  # roles.json nurse ceiling: no delete
    assert ring.active_kid() in rotated.stdout


def test_tokens_revoke_is_refused_by_a_running_server_at_once(tmp_path: Path) -> None:
    """`medicore tokens revoke` in one process; the server (another) refuses the next use."""
    module = "fhir_server.cli"
    added = run(
        module, tmp_path, "users", "add", "dr.rv", "--role", "doctor", "--password", "x" * 12
    )
    assert added.returncode == 0, added.stderr
    store = f"sqlite:///{tmp_path / 'data' / 'medicore.db'}"
    server = start_server(tmp_path, "--store", store, auth=True)
    try:
        tokens = []
        for _ in range(2):
            out = run(module, tmp_path, "token", "--user", "dr.rv", "--scope", "user/*.rs")
            assert out.returncode == 0, out.stderr
            jti = next(
                line.split()[-1] for line in out.stderr.splitlines() if line.startswith("jti:")
            )
            tokens.append((out.stdout.strip().splitlines()[-1], jti))
        for token, _ in tokens:  # each token verified (and cached) by the server
            r = httpx.get(
                f"{server.base}/fhir/Patient", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
        by_jti = run(module, tmp_path, "tokens", "revoke", tokens[0][1])
        assert by_jti.returncode == 0, by_jti.stderr
        assert "of dr.rv" in by_jti.stdout and by_jti.stderr == ""
        by_stdin = run(module, tmp_path, "tokens", "revoke", "-", stdin=tokens[1][0] + "\n")
        assert by_stdin.returncode == 0, by_stdin.stderr
        for token, _ in tokens:
            r = httpx.get(
                f"{server.base}/fhir/Patient", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401
            assert "revoked" in r.headers["WWW-Authenticate"]
        unknown = run(module, tmp_path, "tokens", "revoke", "not-a-recorded-jti")
        assert unknown.returncode == 0 and "no record of this jti" in unknown.stderr
        bad = run(module, tmp_path, "tokens", "revoke", "a.b.c")
        assert bad.returncode == 1 and "not a live access token" in bad.stderr
    finally:
        server.stop()
