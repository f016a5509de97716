"""Auth error tree, so callers map failures to HTTP answers in one place.

    AuthError
    ├── ConfigError       a role table, client or user definition is invalid (`expression`)
    ├── InvalidScope      a scope string that breaks the SMART grammar (-> invalid_scope)
    ├── InvalidToken      an access or id token that fails verification (-> 401)
    ├── KeyFileError      the signing-key directory is unusable (startup error)
    └── OAuthError        an OAuth error response: error code, description, HTTP status

Messages never carry patient data: only scope strings, claim names and client ids.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every error raised by the `auth` package."""


class ConfigError(AuthError, ValueError):
    """Invalid configuration; `expression` names the faulty field, `reason` says why."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


class InvalidScope(AuthError, ValueError):
    """A scope that is not valid SMART v1/v2 syntax; `expression` names the scope at fault."""

    def __init__(self, scope: str, reason: str) -> None:
        super().__init__(f"invalid scope {scope!r}: {reason}")
        self.scope = scope
        self.reason = reason
        self.expression = "scope"


class InvalidToken(AuthError):
    """A bearer token that must be answered with 401 and `WWW-Authenticate: Bearer`."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
        self.error = "invalid_token"


class KeyFileError(AuthError):
    """The server's key directory or one of its files cannot be used safely."""


class OAuthError(AuthError):
    """An RFC 6749 section 5.2 error: `error` code, human description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def as_dict(self) -> dict[str, str]:
        """The JSON body of the token endpoint's error response."""
        return {"error": self.error, "error_description": self.description}
