"""Deployment steps that are not migrations: the PostgREST authenticator login role.

PostgREST (and Supabase) connect as a NOINHERIT login role that is a member of the API roles
and switches to one of them per request with ``set_config('role', …, true)``. The role is
cluster-wide and carries a password, so it belongs to the deployment, not to the versioned
migrations (which only create the NOLOGIN API roles).
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg import sql

API_ROLES = ("anon", "authenticated", "service_role")


def ensure_authenticator(
    dsn: str, name: str = "authenticator", password: str | None = None
) -> bool:
    """Create the NOINHERIT login role ``name`` if missing and grant it the API roles.

    An existing role is left as it is (attributes and password untouched); only missing
    memberships are granted. Returns True when the role was created. Needs a role with
    CREATEROLE (and admin rights on the API roles), e.g. the migration owner.
    """
    with (
        psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn,
        conn.transaction(),
    ):
        # Serialise concurrent deploys against the same cluster (roles are global).
        conn.execute("select pg_advisory_xact_lock(hashtext('dpp-batches:authenticator'))")
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone()
        if not exists:
            statement = sql.SQL("create role {} noinherit login").format(sql.Identifier(name))
            if password is not None:
                statement += sql.SQL(" password {}").format(sql.Literal(password))
            conn.execute(statement)
        for role in API_ROLES:
            if not _is_member(conn, name, role):
                conn.execute(
                    sql.SQL("grant {} to {}").format(sql.Identifier(role), sql.Identifier(name))
                )
    return not exists


def _is_member(conn: psycopg.Connection[tuple[object, ...]], member: str, role: str) -> bool:
    row = conn.execute(
        """
        select exists (
            select 1 from pg_auth_members m
            join pg_roles r on r.oid = m.roleid
            join pg_roles u on u.oid = m.member
            where r.rolname = %s and u.rolname = %s
        )
        """,
        (role, member),
    ).fetchone()
    return bool(row and row[0])


# --------------------------------------------------------------------------- CLI


def add_authenticator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Create PostgREST's NOINHERIT login role (default 'authenticator') if it is missing "
        "and grant it anon, authenticated and service_role. An existing role keeps its "
        "attributes and password."
    )
    parser.add_argument("--dsn", help="admin connection string (default: env DATABASE_URL)")
    parser.add_argument("--name", default="authenticator", help="role name (default: %(default)s)")
    parser.add_argument(
        "--password-env",
        default="AUTHENTICATOR_PASSWORD",
        metavar="VAR",
        help="environment variable holding the new role's password (default: %(default)s)",
    )


def run_authenticator(args: argparse.Namespace) -> int:
    """Create PostgREST's authenticator login role and grant it the API roles."""
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if not dsn:
        print(
            "dpp-batches authenticator: error: no database: pass --dsn or set DATABASE_URL",
            file=sys.stderr,
        )
        return 2
    password = os.environ.get(args.password_env) or None
    try:
        created = ensure_authenticator(dsn, args.name, password=password)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"dpp-batches authenticator: error: {first}", file=sys.stderr)
        return 1
    state = "created" if created else "already exists; memberships checked"
    print(f"authenticator: role {args.name} {state}")
    return 0


COMMANDS = [("authenticator", add_authenticator_arguments, run_authenticator)]
