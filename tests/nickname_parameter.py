"""A SearchParameter definition file MediCore has no code for: Patient ``nickname``."""

from __future__ import annotations

import json
from pathlib import Path

NICKNAME = {
    "resourceType": "SearchParameter",
    "url": "https://medicore.example.org/fhir/SearchParameter/patient-nickname",
    "name": "nickname",
    "status": "active",
    "code": "nickname",
    "base": ["Patient"],
    "type": "string",
    "expression": "Patient.name.where(use='nickname').given",
}


def nickname_folder(parent: Path) -> Path:
    """A folder holding the definition, as ``MEDICORE_SEARCH_PARAMETERS_DIRS`` names one."""
    folder = parent / "params"
    folder.mkdir()
    (folder / "nickname.json").write_text(json.dumps(NICKNAME))
    return folder
