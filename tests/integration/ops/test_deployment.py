"""Dockerfile and docker-compose.yml, checked without a Docker engine (none on CI here).

``docker compose config`` cannot run on this machine, so the compose file is parsed as
YAML and checked for what the deployment depends on, including compose's own
interpolation rules (a shell ``$VAR`` must be written ``$$VAR``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_services_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"mongo", "mongo-init", "app"} <= set(services)
    app = services["app"]
    assert app["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
    assert services["mongo-init"]["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert "replicaSet=rs0" in app["environment"]["MEDICORE_STORE"]
    assert app["environment"]["MEDICORE_ENV"] == "production"


def test_healthchecks(compose: dict[str, Any]) -> None:
    for name in ("mongo", "app"):
        check = compose["services"][name]["healthcheck"]
        assert check["test"][0] == "CMD"
        assert {"interval", "timeout", "retries"} <= set(check)
    assert "/health/ready" in " ".join(compose["services"]["app"]["healthcheck"]["test"])
    assert "ping" in " ".join(compose["services"]["mongo"]["healthcheck"]["test"])


def test_replica_set_is_started_and_initiated(compose: dict[str, Any]) -> None:
    mongo = " ".join(compose["services"]["mongo"]["entrypoint"])
    assert "--replSet rs0" in mongo and "--keyFile" in mongo
    init = " ".join(compose["services"]["mongo-init"]["entrypoint"])
    assert 'rs.initiate({_id: "rs0"' in init and 'host: "mongo:27017"' in init
    assert "isWritablePrimary" in init  # waits for the primary before creating users
    assert compose["services"]["mongo-init"]["restart"] == "no"


def test_named_volumes_hold_all_state(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    assert {"mongo-data", "app-data", "backups"} <= declared
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source in declared, f"{source} is a bind mount, not a named volume"
    assert "mongo-data:/data/db" in compose["services"]["mongo"]["volumes"]
    assert "app-data:/data" in compose["services"]["app"]["volumes"]


def test_mllp_and_http_ports_are_published(compose: dict[str, Any]) -> None:
    ports = [str(p).split("#")[0].strip() for p in compose["services"]["app"]["ports"]]
    assert "2575:2575" in ports and "8080:8080" in ports


def test_secrets_come_from_the_environment_and_are_required() -> None:
    text = COMPOSE.read_text()
    for secret in (
        "MONGO_ROOT_PASSWORD",
        "MONGO_APP_PASSWORD",
        "MONGO_BACKUP_PASSWORD",
        "MONGO_REPLICA_KEY",
        "MEDICORE_AUDIT_KEY",
    ):
        assert re.search(r"\$\{" + secret + r":\?[^}]+\}", text), secret
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[a-z0-9]{6,}['\"]?\s*$", text, re.M)


def test_interpolation_syntax_is_what_compose_accepts() -> None:
    for number, line in enumerate(COMPOSE.read_text().splitlines(), 1):
        stripped = line.replace("$$", "")
        for match in re.finditer(r"\$", stripped):
            rest = stripped[match.start() + 1 :]
            assert rest.startswith("{"), f"line {number}: a bare $ (write $$ for the shell)"
        for expr in re.findall(r"\$\{([^}]*)\}", stripped):
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*(?:(?::?[-?])[^}]*)?", expr), f"line {number}"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert len(stages) >= 2 and stages[-1] == "runtime"
    assert re.search(r"^COPY --from=build ", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0:", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/health/ready", text, re.M)
    assert re.search(r"^EXPOSE .*\b2575\b", text, re.M)
    # Everything the Dockerfile copies exists; pyproject's packages are all copied.
    for source in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    for package in ("fhir_server", "converters", "profiles", "auth", "audit"):
        assert f"COPY {package} ./{package}" in text


def test_dockerignore_keeps_data_and_keys_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"data", "*.db", "*.key", ".env", ".git"} <= ignored


def test_the_app_user_may_not_change_or_remove_audit_records(compose: dict[str, Any]) -> None:
    init = " ".join(compose["services"]["mongo-init"]["entrypoint"])
    assert 'on("audit", ["find", "insert", "createIndex"])' in init
    assert 'roles: [{role: "readWrite", db: "medicore"}]' not in init.split("medicore-backup")[0]
    assert 'admin.updateUser("medicore", {roles: appRoles})' in init
    created = 'createUser({user: "medicore", pwd: process.env.MONGO_APP_PASSWORD, roles: appRoles})'
    assert created in init


def test_the_app_serves_with_a_worker_per_core(compose: dict[str, Any]) -> None:
    from fhir_server.serving.plan import worker_count

    workers = compose["services"]["app"]["environment"]["MEDICORE_WORKERS"]
    assert workers == "${MEDICORE_WORKERS:-auto}"
    assert worker_count("auto") >= 1  # the default the container gets is one we accept
