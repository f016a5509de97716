"""The token service's server side: auth records, bearer authentication, settings glue.

`install_security(app, settings, store)` is the one call `create_app` makes; the lead's
enforcement code calls `authenticate(request)` and maps `AuthenticationFailed` to 401.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_server.security.authenticate import AuthenticationFailed, authenticate
from fhir_server.security.context import SecurityContext
from fhir_server.security.demo import (
    ProductionRefused,
    refuse_demo_in_production,
    refuse_in_production,
    seed_demo_accounts,
)
from fhir_server.security.repository import AuthRepository
from fhir_server.security.settings import SecuritySettings
from fhir_server.security.smart import security_extension, smart_configuration

if TYPE_CHECKING:
    from fastapi import FastAPI

    from auth.keys import KeyRing
    from fhir_server.settings import Settings
    from fhir_server.storage.base import Store


def install_security(
    app: FastAPI,
    settings: Settings,
    store: Store,
    *,
    security: SecuritySettings | None = None,
    keys: KeyRing | None = None,
) -> SecurityContext:
    """Put a `SecurityContext` on `app.state.security` and mount `/auth/*` + SMART discovery.

    The auth routes are moved to the front of the route list so that
    `/fhir/.well-known/smart-configuration` is not taken for `/fhir/{type}/{id}`.
    """
    from fhir_server.api import auth_endpoints

    ctx = SecurityContext.build(settings, store, security=security, keys=keys)
    app.state.security = ctx
    before = len(app.router.routes)
    app.include_router(auth_endpoints.router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    return ctx


__all__ = [
    "AuthRepository",
    "AuthenticationFailed",
    "ProductionRefused",
    "SecurityContext",
    "SecuritySettings",
    "authenticate",
    "install_security",
    "refuse_demo_in_production",
    "refuse_in_production",
    "security_extension",
    "seed_demo_accounts",
    "smart_configuration",
]
