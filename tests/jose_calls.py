"""Counting joserfc's token parsing and key-set imports (tests of the verification path)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import KeySet


def count_jose_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Calls of joserfc's compact-JWS split/decode and of `KeySet.import_key_set`."""
    calls = {"parse": 0, "import": 0}
    parse, import_key_set = jws.extract_compact, KeySet.import_key_set

    def counting_parse(*args: Any, **kw: Any) -> Any:
        calls["parse"] += 1
        return parse(*args, **kw)

    def counting_import(*args: Any, **kw: Any) -> KeySet:
        calls["import"] += 1
        return import_key_set(*args, **kw)

    monkeypatch.setattr(jws, "extract_compact", counting_parse)  # jwt.decode goes through it
    monkeypatch.setattr(KeySet, "import_key_set", counting_import)
    return calls
