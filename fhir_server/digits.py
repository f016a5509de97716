"""Integers from request text (``_count``, versions, cursors): plain ASCII digits only."""

from __future__ import annotations


def non_negative_int(text: str, *, limit: int) -> int | None:
    """``text`` as an integer capped at ``limit``, or None unless it is ASCII digits.

    ``str.isdigit`` alone also accepts "²" or Arabic-Indic digits, which ``int`` then
    refuses or reads, and ``int`` refuses more than 4,300 digits: both would be a 500.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return limit if len(digits) > len(str(limit)) else min(int(digits), limit)
