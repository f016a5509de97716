"""The docs stay true: commands parse, paths exist, settings and metrics are real."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from fhir_server import cli
from fhir_server.hl7.settings import Hl7Settings
from fhir_server.observability import Metrics, ObservabilitySettings
from fhir_server.security.settings import SecuritySettings
from fhir_server.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
SCENARIOS = (
    "store-down",
    "slow-responses",
    "lab-results-not-arriving",
    "disk-full",
    "certificate-or-key-expiry",
    "restore-from-backup",
)
PAGES = [
    DOCS / "operations" / "runbook.md",
    *(DOCS / "operations" / "scenarios" / f"{name}.md" for name in SCENARIOS),
    DOCS / "architecture.md",
    DOCS / "data-model.md",
    DOCS / "security.md",
    DOCS / "design-rationale.md",
]


def _parser() -> argparse.ArgumentParser:
    return cli.build_parser()


def _code_lines(text: str) -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        lines.extend(line.strip() for line in joined.splitlines() if line.strip())
    return lines


def test_every_page_exists() -> None:
    missing = [str(p.relative_to(ROOT)) for p in PAGES if not p.is_file()]
    assert missing == []


def test_runbook_grades_and_procedure() -> None:
    text = (DOCS / "operations" / "runbook.md").read_text()
    for grade, window in (
        ("Critical", "15 minutes"),
        ("High", "30 minutes"),
        ("Medium", "2 hours"),
        ("Low", "same working day"),
    ):
        row = next(line for line in text.splitlines() if line.startswith(f"| **{grade}**"))
        assert window in row, grade
    steps = re.findall(r"^\d\. \*\*(\w+)", text, re.M)
    assert [s.lower() for s in steps] == ["detect", "grade", "find", "act", "confirm", "write"]
    for name in SCENARIOS:
        assert f"(scenarios/{name}.md)" in text


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_pages_have_symptoms_checks_and_commands(name: str) -> None:
    text = (DOCS / "operations" / "scenarios" / f"{name}.md").read_text()
    assert "## Symptoms" in text or "## Before you start" in text
    assert "## Confirm" in text or "## Steps" in text
    assert _code_lines(text), "a scenario page gives exact commands"


def test_every_medicore_command_in_the_docs_parses() -> None:
    parser = _parser()
    seen = 0
    for page in PAGES:
        for line in _code_lines(page.read_text()):
            words = shlex.split(line, comments=True)
            if not words or words[0] != "medicore":
                continue
            seen += 1
            try:
                parser.parse_args(words[1:])
            except SystemExit as exc:
                raise AssertionError(f"{page.name}: `{line}` does not parse") from exc
    assert seen >= 20


def test_paths_the_docs_point_at_exist() -> None:
    pattern = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|sh|json|md|yml))`")
    for page in PAGES:
        for path in pattern.findall(page.read_text()):
            if path.startswith(("data/", "/")):
                continue
            assert (ROOT / path).exists(), f"{page.name} points at missing {path}"
        for link in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / link).is_file(), f"{page.name}: broken link {link}"


def test_environment_variables_in_the_docs_exist() -> None:
    known = {
        f"MEDICORE_{name.upper()}"
        for cls in (Settings, ObservabilitySettings, SecuritySettings, Hl7Settings)
        for name in cls.model_fields
    }
    for script in (ROOT / "ops").glob("*.sh"):
        known |= set(re.findall(r"MEDICORE_[A-Z_]+", script.read_text()))
    for page in PAGES:
        for var in set(re.findall(r"MEDICORE_[A-Z_]+", page.read_text())):
            assert var in known, f"{page.name} names {var}, which nothing reads"


def test_metrics_in_the_docs_exist() -> None:
    metrics = Metrics()
    metrics.watch_server(Path("status.json"))  # a supervised server's worker counts too
    registered = {
        sample_name
        for family in metrics.registry.collect()
        for sample_name in (family.name, f"{family.name}_total", f"{family.name}_bucket")
    }
    for page in PAGES:
        for name in set(re.findall(r"\bmedicore_[a-z0-9_]+", page.read_text())):
            # A grep pattern may name a prefix ("medicore_hl7"); it must still match one.
            assert any(r.startswith(name) for r in registered), f"{page.name}: metric {name}"


def test_documented_defaults_match_the_settings() -> None:
    defaults = ObservabilitySettings.model_fields
    runbook = (DOCS / "operations" / "runbook.md").read_text()
    slow = defaults["slow_request_ms"].default
    assert f"`MEDICORE_SLOW_REQUEST_MS` (default {slow:g})" in runbook
    disk = (DOCS / "operations" / "scenarios" / "disk-full.md").read_text()
    assert f"`MEDICORE_DISK_MIN_FREE_MB`, default {defaults['disk_min_free_mb'].default}" in disk
