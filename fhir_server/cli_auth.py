"""Operator commands for the token service: `clients add`, `users add`, `token`,
`tokens revoke`, `keys rotate`.

They open the same store (`--store` / `MEDICORE_STORE`) and key directory
(`MEDICORE_KEYS_DIR`) as `medicore serve` run from the same directory, so a token
printed here verifies on that server, and a revocation made here is refused by it on
the token's next use. Exit codes: 0 done, 1 refused or not found, 2 invalid input.
Messages go to stderr; `token` prints the token as its last line (its jti on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from auth.errors import AuthError, InvalidScope
from auth.keys import KeyRing
from auth.tokens import MAX_ACCESS_LIFETIME
from fhir_server.security.clients import OPERATOR_CLIENT_ID, ClientConfigError, client_record
from fhir_server.security.context import SecurityContext
from fhir_server.security.demo import ProductionRefused, refuse_in_production
from fhir_server.security.operator_tokens import (
    OperatorRefused,
    issue_operator_token,
    revoke_as_operator,
)
from fhir_server.security.settings import SecuritySettings
from fhir_server.security.users import UserConfigError, user_record
from fhir_server.settings import Settings
from fhir_server.storage import Store, store_from_uri
from fhir_server.storage.base import RecordExists, StoreError

CLI_CLIENT_ID = OPERATOR_CLIENT_ID


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(store=args.store) if getattr(args, "store", None) else Settings()


def _run(
    args: argparse.Namespace,
    work: Callable[[SecurityContext], Awaitable[int]],
    *,
    signing: Literal["none", "existing", "create"] = "none",
) -> int:
    """Open the store, build the security context, run `work`, map failures to exit codes.

    Signing keys are created only by `keys rotate` (and the server's start); a command that
    signs or verifies with them needs the existing ones, and the others touch none.
    """
    settings = _settings(args)
    security = SecuritySettings()

    async def main() -> int:
        if signing == "create":
            keys = KeyRing.load_or_create(security.keys_dir, default_alg=security.signing_alg)
        elif signing == "existing":
            keys = KeyRing.load_existing(security.keys_dir, default_alg=security.signing_alg)
        else:
            keys = KeyRing([], default_alg=security.signing_alg)
        store: Store = store_from_uri(settings.store, mongo_database=settings.mongo_database)
        await store.open()
        try:
            ctx = SecurityContext.build(settings, store, security=security, keys=keys)
            return await work(ctx)
        finally:
            await store.close()

    try:
        if getattr(args, "production_refused", None):
            refuse_in_production(settings, args.production_refused)
        return asyncio.run(main())
    except (ClientConfigError, UserConfigError) as exc:
        print(f"error: {exc.expression}: {exc.reason}", file=sys.stderr)
        return 2
    except InvalidScope as exc:
        print(f"error: scope {exc.scope!r}: {exc.reason}", file=sys.stderr)
        return 2
    except (ProductionRefused, OperatorRefused, RecordExists) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (AuthError, StoreError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _store_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", help="store URI (MEDICORE_STORE; default sqlite:///data/medicore.db)"
    )


# clients add --------------------------------------------------------------------------
def _clients_add(args: argparse.Namespace) -> int:
    jwks: dict[str, Any] | None = None
    if args.jwks is not None:
        try:
            jwks = json.loads(Path(args.jwks).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            print("error: --jwks: cannot read a JSON JWKS from that file", file=sys.stderr)
            return 2
        if not isinstance(jwks, dict):
            print("error: --jwks: expected a JWKS object", file=sys.stderr)
            return 2

    async def work(ctx: SecurityContext) -> int:
        doc = client_record(
            args.id,
            scope=args.scope,
            jwks=jwks,
            jwks_url=args.jwks_url,
            redirect_uris=args.redirect_uri,
            role=args.role,
            name=args.name,
            may_introspect=args.may_introspect,
        )
        if doc["role"] not in ctx.roles:
            raise ClientConfigError("role", "not a role of the role table")
        await ctx.repo.put_client(doc, new=not args.replace)
        kind = "public app" if doc["public"] else "confidential"
        print(f"client {doc['client_id']} registered ({kind}); scope: {doc['scope']}")
        return 0

    return _run(args, work)


# users add ----------------------------------------------------------------------------
def _users_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    else:
        print("error: give --password-stdin or --password", file=sys.stderr)
        return 2

    async def work(ctx: SecurityContext) -> int:
        doc = user_record(
            args.name, role=args.role, password=password, roles=ctx.roles, fhir_user=args.fhir_user
        )
        await ctx.repo.put_user(doc, new=not args.replace)
        print(f"user {args.name} saved with role {args.role}")
        return 0

    return _run(args, work)


# token --------------------------------------------------------------------------------
def _token(args: argparse.Namespace) -> int:
    async def work(ctx: SecurityContext) -> int:
        issued = await issue_operator_token(
            ctx,
            username=args.user,
            scope=args.scope,
            patient=args.patient,
            lifetime=args.lifetime,
        )
        print(f"scope: {issued.claims['scope']}", file=sys.stderr)
        print(f"expires_in: {issued.expires_in}", file=sys.stderr)
        print(f"jti: {issued.jti}", file=sys.stderr)
        print(issued.token)
        return 0

    return _run(args, work, signing="existing")


# tokens revoke ------------------------------------------------------------------------
def _tokens_revoke(args: argparse.Namespace) -> int:
    value = sys.stdin.readline().strip() if args.token == "-" else args.token

    async def work(ctx: SecurityContext) -> int:
        done = await revoke_as_operator(ctx, value)
        whose = f" of {done.subject}" if done.subject else ""
        jti = f" (jti {done.jti})" if done.jti else ""
        until = datetime.fromtimestamp(done.expires_at, UTC).isoformat()
        print(f"revoked {done.kind}{jti}{whose}; refused until it expires, {until}")
        if done.kind == "access token" and not done.recorded:
            print(
                "warning: `medicore token` has no record of this jti (an app's token, an "
                "older one, or a typo); it is refused anyway for the next "
                f"{MAX_ACCESS_LIFETIME} s, longer than any token of this server lives",
                file=sys.stderr,
            )
        return 0

    return _run(args, work, signing="existing")


# keys rotate --------------------------------------------------------------------------
def _keys_rotate(args: argparse.Namespace) -> int:
    async def work(ctx: SecurityContext) -> int:
        kid = ctx.keys.rotate(args.alg)
        print(f"new {args.alg or ctx.keys.default_alg} signing key {kid}")
        return 0

    return _run(args, work, signing="create")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `clients`, `users`, `token`, `tokens` and `keys` to the `medicore` command."""
    clients = commands.add_parser("clients", help="manage OAuth clients")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    add = clients_sub.add_parser("add", help="register a system client or SMART app")
    add.add_argument("--id", required=True, help="client_id")
    keys = add.add_mutually_exclusive_group()
    keys.add_argument("--jwks", metavar="FILE", help="file holding the client's public JWKS")
    keys.add_argument("--jwks-url", metavar="URL", help="https URL of the client's JWKS")
    add.add_argument("--scope", default="", help='allowed scopes, e.g. "system/Patient.rs"')
    add.add_argument(
        "--redirect-uri", action="append", default=[], help="SMART app redirect URI (repeatable)"
    )
    add.add_argument("--role", default="system", help="role of its tokens (default: system)")
    add.add_argument("--name", help="display name")
    add.add_argument(
        "--may-introspect",
        action="store_true",
        help="let this confidential client introspect any token (resource servers)",
    )
    add.add_argument("--replace", action="store_true", help="overwrite an existing client")
    _store_flag(add)
    add.set_defaults(handler=_clients_add)

    users = commands.add_parser("users", help="manage staff users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    uadd = users_sub.add_parser("add", help="create a staff user (Argon2id-hashed password)")
    uadd.add_argument("name", help="user name")
    uadd.add_argument("--role", required=True, help="doctor, nurse, admin, itadmin, auditor")
    pw = uadd.add_mutually_exclusive_group()
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.add_argument("--password", help="the password (visible in the process list)")
    uadd.add_argument("--fhir-user", help="e.g. Practitioner/123")
    uadd.add_argument("--replace", action="store_true", help="overwrite an existing user")
    _store_flag(uadd)
    uadd.set_defaults(handler=_users_add)

    token = commands.add_parser(
        "token", help="print an access token for a user (development and tests only)"
    )
    token.add_argument("--user", required=True)
    token.add_argument("--scope", required=True, help='e.g. "user/*.rs" or "patient/*.rs"')
    token.add_argument("--patient", help="patient id of the launch context")
    token.add_argument("--lifetime", type=int, help=f"seconds (max {MAX_ACCESS_LIFETIME})")
    _store_flag(token)
    token.set_defaults(handler=_token, production_refused="medicore token")

    tokens = commands.add_parser("tokens", help="revoke access and refresh tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    revoke = tokens_sub.add_parser(
        "revoke", help="revoke a token at once on every server of this store (any client's)"
    )
    revoke.add_argument(
        "token",
        metavar="TOKEN_OR_JTI",
        help="an access token, a refresh token, or an access token's jti (as `medicore token` "
        "printed it); '-' reads it from stdin, which keeps it out of the process list",
    )
    _store_flag(revoke)
    revoke.set_defaults(handler=_tokens_revoke)

    keys_cmd = commands.add_parser("keys", help="manage the server's signing keys")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser("rotate", help="add a new active signing key")
    rotate.add_argument("--alg", choices=["ES256", "RS256"])
    _store_flag(rotate)
    rotate.set_defaults(handler=_keys_rotate)


__all__ = ["CLI_CLIENT_ID", "register"]
