"""Search errors: a malformed or (under strict handling) unknown parameter becomes a 400."""

from __future__ import annotations


class SearchError(ValueError):
    """A search parameter the server cannot accept; ``param`` is the name at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

    @property
    def expression(self) -> str:
        """FHIRPath-ish location of the fault, for OperationOutcome.issue.expression."""
        return self.param
