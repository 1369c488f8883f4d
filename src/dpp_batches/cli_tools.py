"""`dpp-batches token` and `dpp-batches call`: mint a JWT, call an RPC the way PostgREST would.

Registered by cli.py from ``COMMANDS``: ``(name, add_arguments, run)`` triples, where
``run(args) -> int`` is the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

from dpp_batches import tokens
from dpp_batches.postgrest import Caller, PostgrestClient

SECRET_HELP = "HMAC secret, 32+ characters (default: env JWT_SECRET; prefer the env var)"

CALL_DESCRIPTION = """\
Call RPC FN through the PostgREST request protocol: one transaction that switches to the
caller's API role, sets request.jwt.claims and calls public.FN with named arguments.
Prints "HTTP <status>" and then the JSON body; exit 0 for 2xx, 1 otherwise.

The DSN must be the PostgREST authenticator: a NOINHERIT login role that is a member of
anon, authenticated and service_role, so it can SET ROLE to each (e.g. the `authenticator`
role created by `dpp-batches authenticator`). Do not use a superuser or a BYPASSRLS role:
they skip row-level security, so the answer would not be what PostgREST returns.

A --token is verified first, as PostgREST does (signature, exp/nbf/iat with 30 s leeway, aud);
a token PostgREST would refuse gives its 401 body without touching the database."""

TOKEN_DESCRIPTION = """\
Print an HS256 JWT for PostgREST / Supabase: claims role, sub (a user UUID), iat, exp and aud
when given. The secret must be PostgREST's jwt-secret."""


class UsageError(Exception):
    """A mistake on the command line: reported as one line, exit code 2."""


def _fail(command: str, message: str) -> int:
    print(f"dpp-batches {command}: error: {message}", file=sys.stderr)
    return 2


def _secret(args: argparse.Namespace) -> str:
    secret = args.secret if args.secret is not None else os.environ.get("JWT_SECRET")
    if not secret:
        raise UsageError("no JWT secret: pass --secret or set JWT_SECRET")
    try:
        tokens.check_secret(secret)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return secret


def _user_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {value!r}")
    return number


# --------------------------------------------------------------------------- token


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = TOKEN_DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--sub", type=_user_id, help="user id (UUID); required for role authenticated"
    )
    parser.add_argument("--role", default="authenticated", help="role claim (%(default)s)")
    parser.add_argument(
        "--ttl", type=_positive, default=3600, help="lifetime in seconds (%(default)s)"
    )
    parser.add_argument("--aud", help="aud claim, e.g. authenticated on Supabase")
    parser.add_argument("--secret", help=SECRET_HELP)


def run_token(args: argparse.Namespace) -> int:
    if args.role == "authenticated" and args.sub is None:
        return _fail("token", "role authenticated needs --sub USER_UUID")
    try:
        secret = _secret(args)
    except UsageError as exc:
        return _fail("token", str(exc))
    print(tokens.mint(sub=args.sub, role=args.role, ttl=args.ttl, secret=secret, aud=args.aud))
    return 0


# --------------------------------------------------------------------------- call


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = CALL_DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("fn", metavar="FN", help="RPC name in schema public, e.g. create_brand")
    parser.add_argument(
        "body",
        metavar="JSON",
        nargs="?",
        default="{}",
        help='named arguments as a JSON object, e.g. \'{"_name": "Acme"}\' (default: {})',
    )
    parser.add_argument(
        "--get", action="store_true", help="call with GET (read-only transaction) instead of POST"
    )
    parser.add_argument(
        "--dsn",
        help="authenticator DSN (default: env DATABASE_URL); see above for the role it needs",
    )
    who = parser.add_argument_group("caller (exactly one)").add_mutually_exclusive_group(
        required=True
    )
    who.add_argument("--token", metavar="JWT", help="a bearer token, verified like PostgREST")
    who.add_argument(
        "--as", dest="as_user", metavar="USER_UUID", type=_user_id, help="an authenticated user"
    )
    who.add_argument("--service", action="store_true", help="service_role (platform admin)")
    who.add_argument("--anon", action="store_true", help="no token: the anon role")
    token = parser.add_argument_group("with --token")
    token.add_argument("--secret", help=SECRET_HELP)
    token.add_argument("--aud", help="PostgREST's jwt-aud: the audience the token must carry")


def _verified_claims(args: argparse.Namespace) -> dict[str, Any] | None:
    """The claims of --token as PostgREST would verify them; None for the other callers.

    Raises TokenError (PostgREST's 401) or UsageError."""
    if args.token is not None:
        return tokens.verify(args.token, secret=_secret(args), aud=args.aud)
    if args.secret is not None or args.aud is not None:
        raise UsageError("--secret and --aud apply only with --token")
    return None


def _get_arguments(text: str) -> dict[str, Any]:
    """With --get the JSON object becomes query arguments (?_a=1&_b=x); POST sends it as is."""
    try:
        arguments = json.loads(text)
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise UsageError("with --get, JSON must be an object of named arguments")
    return arguments


def _caller(
    client: PostgrestClient, args: argparse.Namespace, claims: dict[str, Any] | None
) -> Caller:
    if args.as_user is not None:
        return client.as_user(args.as_user)
    if args.service:
        return client.as_service()
    if args.anon:
        return client.as_anon()
    return client.with_claims(claims)


def _print_response(status: int, body: Any) -> None:
    """`HTTP <status>`, then the (already parsed) JSON body; 204 has none."""
    print(f"HTTP {status}")
    if status != 204:
        print(json.dumps(body, indent=2, ensure_ascii=False))


def run_call(args: argparse.Namespace) -> int:
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if not dsn:
        return _fail("call", "no database: pass --dsn or set DATABASE_URL (an authenticator DSN)")
    try:
        body = _get_arguments(args.body) if args.get else args.body
        claims = _verified_claims(args)
    except UsageError as exc:
        return _fail("call", str(exc))
    except tokens.TokenError as exc:  # refused before any database work, like PostgREST
        _print_response(exc.status, exc.body())
        return 1
    with PostgrestClient(dsn) as client:
        response = _caller(client, args, claims).rpc(
            args.fn, body, method="GET" if args.get else "POST"
        )
    _print_response(response.status, response.body)
    return 0 if response.ok else 1


COMMANDS: list[
    tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = [
    ("token", add_token_arguments, run_token),
    ("call", add_call_arguments, run_call),
]
