"""PKCE (RFC 7636) with S256 only: `plain` gives no protection and SMART forbids it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding, as the client sends it."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """A fresh high-entropy code verifier (for tests and the CLI)."""
    return secrets.token_urlsafe(48)


def is_valid_challenge(challenge: str, method: str | None) -> bool:
    """Whether `/auth/authorize` may accept this code_challenge / method pair."""
    return method == "S256" and bool(_CHALLENGE.fullmatch(challenge))


def verify_s256(verifier: str, challenge: str) -> bool:
    """True when `verifier` (from the token request) matches the stored S256 challenge."""
    if not _VERIFIER.fullmatch(verifier) or not _CHALLENGE.fullmatch(challenge):
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)


__all__ = ["is_valid_challenge", "new_verifier", "s256_challenge", "verify_s256"]
