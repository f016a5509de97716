"""Staff accounts: creation with an Argon2id hash and password login."""

from __future__ import annotations

import re
from typing import Any

from auth.errors import ConfigError
from auth.passwords import hash_password, needs_rehash, verify_password
from auth.roles import RoleTable
from fhir_server.security.repository import AuthRepository

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_FHIR_USER = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$"
)


class UserConfigError(ConfigError):
    """A user definition is invalid; `expression` names the faulty field."""


def user_record(
    username: str, *, role: str, password: str, roles: RoleTable, fhir_user: str | None = None
) -> dict[str, Any]:
    """Validate and hash; the record never holds the password itself."""
    if not _USERNAME.fullmatch(username):
        raise UserConfigError("username", "use letters, digits, '.', '_', '@' or '-'")
    if role not in roles or roles.uses_registered_scopes(role):
        raise UserConfigError("role", f"staff roles are: {', '.join(_staff_roles(roles))}")
    if fhir_user is not None and not _FHIR_USER.fullmatch(fhir_user):
        raise UserConfigError("fhir_user", "expected e.g. Practitioner/123")
    if len(password) < 8:
        raise UserConfigError("password", "use at least 8 characters")
    doc: dict[str, Any] = {
        "username": username,
        "role": role,
        "password_hash": hash_password(password),
        "active": True,
    }
    if fhir_user is not None:
        doc["fhir_user"] = fhir_user
    return doc


def _staff_roles(roles: RoleTable) -> list[str]:
    return [r for r in roles.roles if not roles.uses_registered_scopes(r)]


async def check_login(repo: AuthRepository, username: str, password: str) -> dict[str, Any] | None:
    """The user record when the password matches an active account (constant-ish time)."""
    doc = await repo.get_user(username) if _USERNAME.fullmatch(username) else None
    stored = doc.get("password_hash") if doc is not None else None
    ok = verify_password(stored if isinstance(stored, str) else None, password)
    if not ok or doc is None or not doc.get("active", True):
        return None
    if needs_rehash(str(stored)):
        await repo.put_user({**doc, "password_hash": hash_password(password)}, new=False)
    return doc


__all__ = ["UserConfigError", "check_login", "user_record"]
