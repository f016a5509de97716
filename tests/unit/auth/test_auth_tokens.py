"""The server's key directory, its access/id tokens, and hospital IdP tokens."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from auth import keys as keys_module
from auth.errors import InvalidToken, KeyFileError
from auth.keys import KeyRing
from auth.tokens import (
    ExternalIssuer,
    issue_access_token,
    issue_id_token,
    parse_token,
    unverified_parts,
    verify_access_token,
)
from tests.clock import T0
from tests.jose_calls import count_jose_calls

ISS = "https://medicore.example/auth"
AUD = "https://medicore.example/fhir"
NOW = T0  # every check gets this moment explicitly: no test reads the real clock


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate()


def issue(ring: KeyRing, **kw):
    args: dict[str, Any] = {
        "issuer": ISS,
        "audience": AUD,
        "subject": "nurse001",
        "client_id": "app",
        "scope": "launch/patient patient/Observation.rs",
        "role": "nurse",
        "patient": "p1",
        "fhir_user": "Practitioner/n1",
        "now": NOW,
    }
    args.update(kw)
    return issue_access_token(ring, **args)


def test_directory_is_created_private_and_reused(tmp_path: Path):
    keydir = tmp_path / "keys"
    first = KeyRing.load_or_create(keydir)
    assert oct(keydir.stat().st_mode & 0o777) == "0o700"
    files = sorted(p.name for p in keydir.iterdir())
    assert files == ["signing-0001-ES256.pem", "signing-0001-RS256.pem"]
    assert all((keydir / f).stat().st_mode & 0o777 == 0o600 for f in files)
    second = KeyRing.load_or_create(keydir)  # e.g. `medicore token` beside `medicore serve`
    assert second.jwks() == first.jwks()
    token = issue(first).token
    assert (
        verify_access_token(second, token, issuer=ISS, audience=AUD, now=NOW)["sub"] == "nurse001"
    )


def test_rotation_is_seen_by_another_worker(tmp_path: Path):
    a = KeyRing.load_or_create(tmp_path)
    b = KeyRing.load_or_create(tmp_path)
    new_kid = a.rotate()
    assert a.active_kid() == new_kid
    token = issue(a).token
    # b has never seen the new key: it re-reads the directory on an unknown kid
    assert verify_access_token(b, token, issuer=ISS, audience=AUD, now=NOW)["role"] == "nurse"
    assert len(b.jwks()["keys"]) == 3


def test_group_readable_key_refused(tmp_path: Path):
    KeyRing.load_or_create(tmp_path)
    os.chmod(tmp_path / "signing-0001-ES256.pem", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        KeyRing.load_or_create(tmp_path)


def test_jwk_file_and_rs256_default(tmp_path: Path):
    key = RSAKey.generate_key(2048)
    path = tmp_path / "hsm-export.jwk.json"
    path.write_text(json.dumps(key.as_dict(private=True)))
    path.chmod(0o600)
    ring = KeyRing.load_or_create(tmp_path, default_alg="RS256", algs=("RS256",))
    assert ring.active_kid("RS256") == key.thumbprint()
    token = issue(ring).token
    assert jwt.decode(token, ring.public_keyset(), algorithms=["RS256"]).header["alg"] == "RS256"


def test_jwks_is_public_only(ring: KeyRing):
    for key in ring.jwks()["keys"]:
        assert "d" not in key and "p" not in key
        assert key["use"] == "sig" and key["alg"] in ("ES256", "RS256") and key["kid"]


def test_access_token_claims(ring: KeyRing):
    issued = issue(ring)
    claims = verify_access_token(ring, issued.token, issuer=ISS, audience=AUD, now=NOW)
    assert claims["exp"] - claims["iat"] == 3600 == issued.expires_in
    assert claims["jti"] == issued.jti
    for name, value in [
        ("iss", ISS), ("aud", AUD), ("sub", "nurse001"), ("client_id", "app"), ("role", "nurse"),
        ("patient", "p1"), ("fhirUser", "Practitioner/n1"),
        ("scope", "launch/patient patient/Observation.rs"),
    ]:  # fmt: skip
        assert claims[name] == value
    assert (
        jwt.decode(issued.token, ring.public_keyset(), algorithms=["ES256"]).header["alg"]
        == "ES256"
    )


def test_lifetimes_are_capped(ring: KeyRing):
    assert issue(ring, backend_service=True).expires_in == 300
    with pytest.raises(ValueError):
        issue(ring, backend_service=True, lifetime=301)
    with pytest.raises(ValueError):
        issue(ring, lifetime=3601)
    with pytest.raises(ValueError):
        issue(ring, extra={"role": "doctor"})


@pytest.mark.parametrize(
    ("kw", "now"),
    [
        ({}, NOW + 3601),  # expired
        ({"issuer": "https://other.example"}, NOW),
        ({"audience": "https://other.example/fhir"}, NOW),
        ({}, NOW - 60),  # issued in the future
    ],
)
def test_access_token_rejections(ring: KeyRing, kw: dict[str, str], now: int):
    token = issue(ring, **kw).token
    with pytest.raises(InvalidToken):
        verify_access_token(ring, token, issuer=ISS, audience=AUD, now=now)


def test_foreign_and_forged_tokens_rejected(ring: KeyRing):
    other = KeyRing.generate(algs=("ES256",))
    with pytest.raises(InvalidToken, match="key id"):
        verify_access_token(ring, issue(other).token, issuer=ISS, audience=AUD, now=NOW)
    body = {
        "iss": ISS,
        "aud": AUD,
        "sub": "x",
        "exp": NOW + 60,
        "iat": NOW,
        "jti": "j",
        "scope": "",
    }
    kid = ring.active_kid()
    hs = jwt.encode(
        {"alg": "HS256", "kid": kid}, body, OctKey.generate_key(256), algorithms=["HS256"]
    )
    with pytest.raises(InvalidToken, match="algorithm"):
        verify_access_token(ring, hs, issuer=ISS, audience=AUD, now=NOW)
    impostor = ECKey.generate_key("P-256")
    forged = jwt.encode({"alg": "ES256", "kid": kid}, body, impostor, algorithms=["ES256"])
    with pytest.raises(InvalidToken):
        verify_access_token(ring, forged, issuer=ISS, audience=AUD, now=NOW)
    with pytest.raises(InvalidToken):
        verify_access_token(ring, "not-a-token", issuer=ISS, audience=AUD, now=NOW)


def test_id_token_is_rs256_for_the_client(ring: KeyRing):
    token = issue_id_token(
        ring, issuer=ISS, client_id="app", subject="doctor001", fhir_user="Practitioner/d1",
        nonce="n-1", now=NOW,
    )  # fmt: skip
    decoded = jwt.decode(token, ring.public_keyset(), algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.claims["aud"] == "app"
    assert (decoded.claims["fhirUser"], decoded.claims["nonce"]) == ("Practitioner/d1", "n-1")


@pytest.fixture(scope="module")
def idp_key() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


def idp_token(key: RSAKey, **claims) -> str:
    body = {
        "iss": "https://idp.hospital.example",
        "sub": "u-42",
        "aud": "medicore",
        "exp": NOW + 600,
    }
    body.update(claims)
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key, algorithms=["RS256"])


def test_external_idp_with_nested_role_claim(idp_key: RSAKey):
    issuer = ExternalIssuer(
        issuer="https://idp.hospital.example",
        jwks=KeySet([idp_key]).as_dict(private=False),
        audience="medicore",
        role_claim="realm_access.roles",
        role_map={"physician": "doctor", "rn": "nurse"},
    )
    token = idp_token(idp_key, realm_access={"roles": ["offline", "rn"]}, scope="user/*.rs openid")
    ident = issuer.verify(token, now=NOW)
    assert (ident.subject, ident.role, ident.scope) == ("u-42", "nurse", "user/*.rs openid")
    assert issuer.verify(idp_token(idp_key, realm_access={"roles": ["x"]}), now=NOW).role is None


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
        {"exp": NOW - 3600},
        {"nbf": NOW + 3600},
    ],
)
def test_external_idp_rejections(idp_key: RSAKey, claims: dict[str, object]):
    issuer = ExternalIssuer(
        issuer="https://idp.hospital.example",
        jwks=KeySet([idp_key]).as_dict(private=False),
        audience="medicore",
    )
    with pytest.raises(InvalidToken):
        issuer.verify(idp_token(idp_key, **claims), now=NOW)


def test_external_idp_unknown_key_and_flat_role(idp_key: RSAKey):
    issuer = ExternalIssuer(
        issuer="https://idp.hospital.example", jwks=KeySet([idp_key]).as_dict(private=False)
    )
    assert issuer.verify(idp_token(idp_key, role="auditor"), now=NOW).role == "auditor"
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    with pytest.raises(InvalidToken):
        issuer.verify(idp_token(stranger), now=NOW)


def test_unknown_kids_do_not_reread_an_unchanged_directory(tmp_path: Path, monkeypatch):
    ring = KeyRing.load_or_create(tmp_path)
    reads: list[Path] = []
    real = keys_module._load_dir

    def counting(path: Path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(keys_module, "_load_dir", counting)
    for i in range(20):  # a flood of made-up kids
        assert not ring.has_kid(f"made-up-{i}")
    assert reads == []
    other = KeyRing.load_or_create(tmp_path)
    new_kid = other.rotate()
    assert ring.has_kid(new_kid)
    assert len(reads) >= 1


def test_an_in_memory_ring_verifies_tokens_of_the_key_it_rotated_to() -> None:
    ring = KeyRing.generate()
    before = issue(ring).token
    assert verify_access_token(ring, before, issuer=ISS, audience=AUD, now=NOW)  # caches keys
    new_kid = ring.rotate()
    after = issue(ring).token
    assert unverified_parts(after)[0]["kid"] == new_kid
    assert verify_access_token(ring, after, issuer=ISS, audience=AUD, now=NOW)["sub"] == "nurse001"
    assert verify_access_token(ring, before, issuer=ISS, audience=AUD, now=NOW)  # old key kept


def test_verification_reuses_the_routing_parse(
    ring: KeyRing, idp_key: RSAKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = ExternalIssuer(
        issuer="https://idp.hospital.example", jwks=KeySet([idp_key]).as_dict(private=False)
    )
    ring.public_keyset()
    calls = count_jose_calls(monkeypatch)
    own = parse_token(issue(ring).token)
    assert verify_access_token(ring, own, issuer=ISS, audience=AUD, now=NOW)["sub"] == "nurse001"
    external = parse_token(idp_token(idp_key))
    assert issuer.verify(external, now=NOW).subject == "u-42"
    assert calls["parse"] == 2  # one per token: parse_token's


def test_external_issuer_imports_its_jwks_once(
    idp_key: RSAKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_jose_calls(monkeypatch)
    issuer = ExternalIssuer(
        issuer="https://idp.hospital.example", jwks=KeySet([idp_key]).as_dict(private=False)
    )
    for i in range(3):
        assert issuer.verify(idp_token(idp_key, jti=f"j{i}"), now=NOW).subject == "u-42"
    assert calls["import"] == 1
    rotated = RSAKey.generate_key(2048, auto_kid=True)
    issuer = ExternalIssuer(
        issuer="https://idp.hospital.example", jwks=KeySet([rotated]).as_dict(private=False)
    )
    assert issuer.verify(idp_token(rotated), now=NOW).subject == "u-42"
    with pytest.raises(InvalidToken):
        issuer.verify(idp_token(idp_key), now=NOW)  # its key left the JWKS
    assert calls["import"] == 2


def test_unusable_idp_jwks_is_reported_before_the_token(idp_key: RSAKey) -> None:
    issuer = ExternalIssuer(issuer="https://idp.hospital.example", jwks={"keys": [{"kty": "?"}]})
    with pytest.raises(InvalidToken, match="JWKS is unusable"):
        issuer.verify("not a token", now=NOW)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("case", "verify_error", "parse_error"),
    [
        ("garbage", "token is not a compact JWS", "token is not a signed JWT"),
        ("list payload", "token rejected (bad_signature)", "token is not a signed JWT"),
        ("bad signature", "token rejected (bad_signature)", None),
        ("expired", "token rejected (expired_token)", None),
    ],
)
def test_rejections_read_as_before(
    ring: KeyRing, case: str, verify_error: str, parse_error: str | None
) -> None:
    header, payload, sig = issue(ring).token.split(".")
    token = {
        "garbage": "abc",
        "list payload": f"{header}.{_b64(b'[1]')}.{sig}",
        "bad signature": f"{header}.{payload}.{sig[:-4]}AAAA",
        "expired": f"{header}.{payload}.{sig}",
    }[case]
    now = NOW + 7200 if case == "expired" else NOW
    with pytest.raises(InvalidToken) as direct:
        verify_access_token(ring, token, issuer=ISS, audience=AUD, now=now)
    assert direct.value.description == verify_error
    if parse_error is not None:
        with pytest.raises(InvalidToken) as parsed:
            parse_token(token)
        assert parsed.value.description == parse_error
    else:
        with pytest.raises(InvalidToken) as routed:
            verify_access_token(ring, parse_token(token), issuer=ISS, audience=AUD, now=now)
        assert routed.value.description == verify_error


def test_a_jti_is_hex_so_a_command_line_never_reads_it_as_an_option(ring: KeyRing):
    jtis = {issue(ring).jti for _ in range(64)}  # urlsafe base64 began with "-" 1 in 64
    assert len(jtis) == 64
    assert all(len(jti) == 48 and int(jti, 16) >= 0 for jti in jtis)
