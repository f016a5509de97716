"""The server's own signing keys: one directory shared by every worker and the CLI.

Layout: `<dir>/signing-<NNNN>-<ALG>.pem` (PKCS#8 private keys, mode 0600, dir 0700) and
optionally `*.jwk.json` (a private JWK). The `kid` is the RFC 7638 thumbprint, so every
process derives the same kid from the same file. The highest-numbered key of an algorithm
signs; all keys are published in the JWKS (rotation: add a key, delete old ones later).
New keys are written to a temporary file and hard-linked into place, so two workers
starting on an empty directory end up with one key, not two.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey, import_key

from auth.errors import KeyFileError

SIGNING_ALGS: tuple[str, ...] = ("ES256", "RS256")
_PEM_NAME = re.compile(r"^signing-(?P<n>\d{4,})-(?P<alg>ES256|RS256)\.pem$")

SigningKey = ECKey | RSAKey


def _generate(alg: str) -> SigningKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {SIGNING_ALGS}")


def _alg_of(key: SigningKey) -> str:
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ES256"
    if isinstance(key, RSAKey) and key.public_key.key_size >= 2048:
        return "RS256"
    raise KeyFileError("signing keys must be EC P-256 or RSA >= 2048 bits")


def _with_params(key: SigningKey, alg: str) -> SigningKey:
    params: KeyParameters = {"use": "sig", "alg": alg, "kid": key.thumbprint()}
    if isinstance(key, ECKey):
        return ECKey.import_key(key.as_dict(private=True), params)
    return RSAKey.import_key(key.as_dict(private=True), params)


def _import_pem(data: bytes) -> SigningKey:
    try:
        return ECKey.import_key(data)
    except (JoseError, ValueError, TypeError):
        return RSAKey.import_key(data)


def _read_private(path: Path) -> SigningKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path.name} is readable by group/others; chmod 600 it")
    data = path.read_bytes()
    try:
        if path.suffix == ".pem":
            key = _import_pem(data)
        else:
            jwk_dict = json.loads(data)
            key = import_key(jwk_dict, jwk_dict.get("kty"))
    except Exception as exc:  # joserfc/cryptography raise many types for bad key files
        raise KeyFileError(f"{path.name} is not a usable private key") from exc
    if not isinstance(key, ECKey | RSAKey) or not key.is_private:
        raise KeyFileError(f"{path.name} must hold an EC or RSA private key")
    return key


class KeyRing:
    """Signing keys by kid, with one active key per algorithm."""

    def __init__(
        self, keys: list[SigningKey], *, directory: Path | None = None, default_alg: str = "ES256"
    ) -> None:
        if default_alg not in SIGNING_ALGS:
            raise ValueError(f"unsupported signing algorithm {default_alg!r}")
        self.directory = directory
        self.default_alg = default_alg
        self._keys: dict[str, SigningKey] = {}
        self._active: dict[str, str] = {}
        self._public: KeySet | None = None
        self._seen_mtime = directory.stat().st_mtime_ns if directory is not None else 0
        for key in keys:  # later keys win the "active" slot of their algorithm
            alg = _alg_of(key)
            key = _with_params(key, alg)
            self._keys[key.thumbprint()] = key
            self._active[alg] = key.thumbprint()

    @classmethod
    def generate(
        cls, *, algs: tuple[str, ...] = SIGNING_ALGS, default_alg: str = "ES256"
    ) -> KeyRing:
        """An in-memory ring (tests, ephemeral dev servers)."""
        return cls([_generate(alg) for alg in algs], default_alg=default_alg)

    @classmethod
    def load_or_create(
        cls,
        directory: str | Path,
        *,
        default_alg: str = "ES256",
        algs: tuple[str, ...] = SIGNING_ALGS,
    ) -> KeyRing:
        """Load `directory`, creating it and a key for each of `algs` that has none."""
        if default_alg not in algs:
            raise ValueError("default_alg must be one of algs")
        path = Path(directory)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        ring = cls(_load_dir(path), directory=path, default_alg=default_alg)
        for alg in algs:
            if alg not in ring._active:
                ring._add_file(alg)
        return ring

    @classmethod
    def load_existing(cls, directory: str | Path, *, default_alg: str = "ES256") -> KeyRing:
        """Load `directory` as it is; `KeyFileError` naming it when it holds no key.

        For commands that only use the server's keys: a key made here would sign tokens
        no server knows, so a wrong directory is an error, never a new key.
        """
        path = Path(directory)
        keys = _load_dir(path) if path.is_dir() else []
        if not keys:
            raise KeyFileError(
                f"no signing keys in {path.absolute()} (MEDICORE_KEYS_DIR, relative to the "
                "working directory): run this where the server runs or set "
                "MEDICORE_KEYS_DIR to its key directory (`medicore keys rotate` creates one)"
            )
        return cls(keys, directory=path, default_alg=default_alg)

    def rotate(self, alg: str | None = None) -> str:
        """Create a new active key for `alg` (default: the default algorithm); return its kid."""
        alg = alg or self.default_alg
        if self.directory is None:
            key = _with_params(_generate(alg), alg)
            self._keys[key.thumbprint()] = key
            self._active[alg] = key.thumbprint()
            self._public = None  # the published key set must show the new key
            return key.thumbprint()
        self._add_file(alg, rotate=True)
        return self._active[alg]

    def reload(self) -> None:
        """Re-read the directory (another worker may have rotated)."""
        if self.directory is not None:
            mtime = self.directory.stat().st_mtime_ns
            fresh = KeyRing(_load_dir(self.directory), default_alg=self.default_alg)
            self._keys, self._active, self._public = fresh._keys, fresh._active, None
            self._seen_mtime = mtime

    def refresh(self) -> None:
        """Reload only when the directory changed since the last read (one stat call)."""
        if self.directory is not None and self.directory.stat().st_mtime_ns != self._seen_mtime:
            self.reload()

    def _add_file(self, alg: str, *, rotate: bool = False) -> None:
        assert self.directory is not None
        while True:
            numbers = [
                int(m.group("n"))
                for p in self.directory.iterdir()
                if (m := _PEM_NAME.match(p.name)) and (rotate or m.group("alg") == alg)
            ]
            if not rotate and numbers:
                break  # another process created the key meanwhile
            target = self.directory / f"signing-{max(numbers, default=0) + 1:04d}-{alg}.pem"
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".new-", suffix=".pem")
            try:
                with os.fdopen(fd, "wb") as fh:  # mkstemp already made it 0600
                    fh.write(_generate(alg).as_pem(private=True))
                os.link(tmp, target)
                break
            except FileExistsError:
                if not rotate:
                    break
            finally:
                os.unlink(tmp)
        self.reload()

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def active_kid(self, alg: str | None = None) -> str:
        try:
            return self._active[alg or self.default_alg]
        except KeyError:
            raise KeyFileError(f"no {alg or self.default_alg} signing key") from None

    def jwks(self) -> dict[str, Any]:
        """The public JWKS to serve at `/auth/jwks.json` (re-read if another worker rotated)."""
        self.refresh()
        return {"keys": [k.as_dict(private=False) for k in self._keys.values()]}

    def public_keyset(self) -> KeySet:
        """The public keys as a joserfc KeySet, built once per reload."""
        if self._public is None:
            self._public = KeySet.import_key_set(self.jwks())  # type: ignore[arg-type]
        return self._public

    def has_kid(self, kid: str) -> bool:
        """Whether `kid` is ours; an unknown kid re-reads the directory only if it changed."""
        if kid not in self._keys:
            self.refresh()
        return kid in self._keys

    def sign(self, claims: Mapping[str, Any], *, alg: str | None = None, typ: str = "JWT") -> str:
        """Sign `claims` with the active key of `alg` (default algorithm if None)."""
        use = alg or self.default_alg
        key = self._keys[self.active_kid(use)]
        header = {"alg": use, "kid": key.thumbprint(), "typ": typ}
        return jwt.encode(header, dict(claims), key, algorithms=[use])


def _load_dir(path: Path) -> list[SigningKey]:
    files = sorted(
        (p for p in path.iterdir() if _PEM_NAME.match(p.name)),
        key=lambda p: int(_PEM_NAME.match(p.name).group("n")),  # type: ignore[union-attr]
    )
    files += sorted(p for p in path.iterdir() if p.name.endswith(".jwk.json"))
    return [_read_private(p) for p in files]


__all__ = ["SIGNING_ALGS", "KeyRing"]
