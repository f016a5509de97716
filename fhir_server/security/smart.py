"""SMART discovery: `.well-known/smart-configuration` and the CapabilityStatement security block."""

from __future__ import annotations

from typing import Any

from auth.backend_services import ASSERTION_ALGS
from auth.scopes import OTHER_SCOPES

CAPABILITIES = (
    "launch-standalone",
    "client-public",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "sso-openid-connect",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
)
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def server_root(fhir_base: str) -> str:
    """The origin (plus any path prefix) the `/auth/*` endpoints live under."""
    base = fhir_base.rstrip("/")
    return base[: -len("/fhir")] if base.endswith("/fhir") else base


def endpoints(fhir_base: str) -> dict[str, str]:
    """Absolute URLs of the OAuth endpoints for a FHIR base URL."""
    root = server_root(fhir_base)
    return {
        "authorize": f"{root}/auth/authorize",
        "token": f"{root}/auth/token",
        "revoke": f"{root}/auth/revoke",
        "introspect": f"{root}/auth/introspect",
        "jwks": f"{root}/auth/jwks.json",
    }


def smart_configuration(fhir_base: str, *, issuer: str) -> dict[str, Any]:
    """The SMART App Launch 2.x discovery document (required and recommended fields)."""
    urls = endpoints(fhir_base)
    return {
        "issuer": issuer,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "revocation_endpoint": urls["revoke"],
        "introspection_endpoint": urls["introspect"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "scopes_supported": [
            *sorted(OTHER_SCOPES - {"launch", "launch/encounter"}),
            "patient/*.cruds",
            "user/*.cruds",
            "system/*.cruds",
            "patient/*.read",
            "user/*.read",
            "system/*.read",
        ],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }


def security_extension(base_url: str) -> dict[str, Any]:
    """`CapabilityStatement.rest.security`: the SMART OAuth URIs extension and service code."""
    urls = endpoints(base_url)
    return {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [
                    {"url": name, "valueUri": urls[name]}
                    for name in ("token", "authorize", "revoke", "introspect")
                ],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "description": "SMART App Launch and Backend Services; bearer tokens required.",
    }


__all__ = ["CAPABILITIES", "endpoints", "security_extension", "server_root", "smart_configuration"]
