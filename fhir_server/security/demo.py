"""The handbook's demo accounts, for `medicore serve --demo` outside production only."""

from __future__ import annotations

from auth.roles import RoleTable
from fhir_server.security.repository import AuthRepository
from fhir_server.security.users import user_record
from fhir_server.settings import Settings
from fhir_server.storage.base import RecordExists, Store

DEMO_PASSWORD = "test1234!"
DEMO_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("doctor001", "doctor"),
    ("nurse001", "nurse"),
    ("admin001", "admin"),
    ("itadmin001", "itadmin"),
    ("auditor001", "auditor"),
)


class ProductionRefused(RuntimeError):
    """A development-only feature was asked for with `MEDICORE_ENV=production`."""


def refuse_in_production(settings: Settings, feature: str) -> None:
    """Raise `ProductionRefused` when `settings` say production (call before starting)."""
    if settings.is_production:
        raise ProductionRefused(f"{feature} is refused when MEDICORE_ENV=production")


def refuse_demo_in_production(settings: Settings) -> None:
    """What `medicore serve --demo` calls first."""
    refuse_in_production(settings, "--demo (demo accounts with a published password)")


async def seed_demo_accounts(store: Store, *, roles: RoleTable | None = None) -> list[str]:
    """Create the demo users that are missing (never overwrite); return the created names."""
    table = roles or RoleTable.load()
    repo = AuthRepository(store)
    created: list[str] = []
    for username, role in DEMO_ACCOUNTS:
        if await repo.get_user(username) is not None:
            continue
        try:
            await repo.put_user(
                user_record(username, role=role, password=DEMO_PASSWORD, roles=table), new=True
            )
        except RecordExists:
            continue  # another worker seeded it meanwhile
        created.append(username)
    return created


__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_PASSWORD",
    "ProductionRefused",
    "refuse_demo_in_production",
    "refuse_in_production",
    "seed_demo_accounts",
]
