"""The ``medicore`` command answers bad settings and store URIs with one line, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_server import app as app_module
from fhir_server import cli


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    return int(stopped.value.code or 0), capsys.readouterr().err


def test_a_store_uri_of_no_known_kind(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEDICORE_DATA_DIR", str(tmp_path))
    code, err = run(["audit", "index", "--store", "bogus://x"], capsys)
    assert code == 2
    assert err == "medicore: error: the store URI must start with sqlite:/// or mongodb://\n"


def test_a_setting_of_the_wrong_form(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDICORE_AUDIT_INDEXER", "weird")
    code, err = run(["serve"], capsys)
    assert (code, err) == (2, "medicore: error: invalid setting: audit_indexer\n")


@pytest.mark.parametrize(("env", "expected"), [(None, "process"), ("inline", "inline")])
def test_serve_indexes_in_a_child_process_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: str
) -> None:
    seen: list[Any] = []

    class Started(Exception):
        pass

    def capture(settings: Any, **kwargs: Any) -> None:
        seen.append(settings)
        raise Started

    monkeypatch.delenv("MEDICORE_AUDIT_INDEXER", raising=False)
    if env is not None:
        monkeypatch.setenv("medicore_audit_indexer", env)  # any case, as pydantic reads it
    monkeypatch.setattr(app_module, "create_app", capture)
    with pytest.raises(Started):
        cli.main(["serve"])
    assert seen[0].audit_indexer == expected
