"""PKCE S256 (RFC 7636 appendix B vector) and Argon2id password hashing."""

from __future__ import annotations

import pytest

from auth.passwords import hash_password, needs_rehash, verify_password
from auth.pkce import is_valid_challenge, new_verifier, s256_challenge, verify_s256

# RFC 7636, Appendix B
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_vector():
    assert s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE
    assert verify_s256(RFC_VERIFIER, RFC_CHALLENGE)


@pytest.mark.parametrize(
    ("verifier", "challenge"),
    [
        (RFC_VERIFIER[:-1] + "F", RFC_CHALLENGE),  # wrong verifier
        ("short", s256_challenge("short")),  # under 43 characters
        ("a" * 129, s256_challenge("a" * 129)),  # over 128 characters
        (RFC_VERIFIER, RFC_VERIFIER),  # "plain" method
        (RFC_VERIFIER + " ", RFC_CHALLENGE),  # bad character
    ],
)
def test_bad_verifiers(verifier: str, challenge: str):
    assert not verify_s256(verifier, challenge)


def test_fresh_verifier_round_trip():
    v = new_verifier()
    assert verify_s256(v, s256_challenge(v))


@pytest.mark.parametrize(
    ("challenge", "method", "ok"),
    [
        (RFC_CHALLENGE, "S256", True),
        (RFC_CHALLENGE, "plain", False),
        (RFC_CHALLENGE, None, False),
        ("too-short", "S256", False),
    ],
)
def test_challenge_acceptance(challenge: str, method: str | None, ok: bool):
    assert is_valid_challenge(challenge, method) is ok


def test_passwords():
    stored = hash_password("test1234!")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "test1234!")
    assert not verify_password(stored, "test1234")
    assert not verify_password(None, "test1234!")  # unknown user
    assert not verify_password("not-a-hash", "test1234!")
    assert not needs_rehash(stored)
    assert needs_rehash("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
    with pytest.raises(ValueError):
        hash_password("")


def test_trailing_newline_is_not_a_valid_challenge_or_verifier():
    # `$` in a pattern also matches before a final newline; such a challenge could be
    # accepted at /auth/authorize and leave a code nobody can ever redeem.
    assert not is_valid_challenge(RFC_CHALLENGE + "\n", "S256")
    assert not verify_s256(RFC_VERIFIER + "\n", RFC_CHALLENGE)
