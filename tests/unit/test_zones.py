"""MEDICORE_TIMEZONE: the machine's zone by default, a bad name stops the start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fhir_server.cli import main
from fhir_server.settings import Settings
from fhir_server.zones import load_zone, local_zone_name


def test_the_default_is_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDICORE_TIMEZONE", raising=False)
    monkeypatch.setenv("TZ", "Asia/Seoul")
    assert local_zone_name() == "Asia/Seoul"
    assert Settings().timezone == "Asia/Seoul"
    monkeypatch.setenv("TZ", ":Europe/Berlin")  # glibc's form
    assert local_zone_name() == "Europe/Berlin"
    monkeypatch.setenv("TZ", "not a zone")  # then the system's (/etc/localtime), else UTC
    assert load_zone(local_zone_name())


def test_the_setting_wins_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICORE_TIMEZONE", "America/New_York")
    assert str(Settings().zone) == "America/New_York"
    with pytest.raises(ValidationError, match="not an IANA time zone name"):
        Settings(timezone="KST")


def test_a_bad_zone_is_a_clear_startup_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDICORE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "0"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "MEDICORE_TIMEZONE 'Mars/Olympus' is not an IANA time zone name" in err
