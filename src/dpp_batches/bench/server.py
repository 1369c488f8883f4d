"""Where the benchmark runs: the server (DATABASE_URL or an embedded one) and its scratch database.

Everything the run creates is its own and is removed at the end: a scratch database with a
unique name, and a NOINHERIT login role (PostgREST's authenticator) with a unique name and a
random password. The server's configuration is never changed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dpp_batches import deploy
from dpp_batches.bench.errors import BenchError

Say = Callable[[str], None]


@dataclass(frozen=True)
class Server:
    admin_dsn: str
    label: str  # where it came from
    version: str  # server_version
    major: int


@dataclass(frozen=True)
class Database:
    name: str
    admin_dsn: str  # superuser, this database
    api_dsn: str  # the authenticator login role, this database
    authenticator: str
    owner: str  # owner of the dpp tables (the baselines run as this role)


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _inspect(dsn: str, label: str) -> Server:
    try:
        with psycopg.connect(dsn, prepare_threshold=None, connect_timeout=10) as conn:
            superuser = _one(conn, "select rolsuper from pg_roles where rolname = current_user")
            version = _one(conn, "show server_version")
            num = int(_one(conn, "show server_version_num"))
    except psycopg.Error as exc:
        raise BenchError(f"cannot connect to {label}: {_first_line(exc)}") from None
    if not superuser:
        raise BenchError(
            f"{label} must name a superuser: the bench creates and drops a scratch "
            "database and role, and bulk-loads with session_replication_role"
        )
    return Server(dsn, label, str(version).split()[0], num // 10000)


@contextmanager
def open_server(dsn: str | None, say: Say, label: str = "the given DSN") -> Iterator[Server]:
    """The given server, or an embedded one in a temporary directory (deleted afterwards)."""
    if dsn:
        yield _inspect(dsn, label)
        return
    from dpp_batches import embedded

    say("no DATABASE_URL: starting an embedded PostgreSQL")
    work = Path(tempfile.mkdtemp(prefix="dpp-bench-pg-"))
    try:
        try:
            emb = embedded.start(work / "pgdata", cleanup="delete")
        except embedded.EmbeddedUnavailable as exc:
            raise BenchError(str(exc)) from None
        try:
            yield _inspect(emb.dsn, "embedded PostgreSQL")
        finally:
            emb.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def scratch_database(server: Server, say: Say, sql_dir: Path | None = None) -> Iterator[Database]:
    """A freshly migrated database and an authenticator role; both dropped afterwards."""
    from dpp_batches.migrate import migrate

    token = f"{os.getpid()}_{secrets.token_hex(3)}"
    name, role = f"dpp_bench_{token}", f"dpp_bench_auth_{token}"
    password = secrets.token_urlsafe(18)
    dsn = make_conninfo(server.admin_dsn, dbname=name)
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        try:
            migrate(dsn, sql_dir=sql_dir)
        except Exception as exc:  # the runner's errors are one-line messages
            raise BenchError(f"migrating the scratch database failed: {exc}") from None
        deploy.ensure_authenticator(dsn, role, password)
        with psycopg.connect(dsn) as conn:
            owner = _one(
                conn,
                "select tableowner from pg_tables"
                " where schemaname = 'dpp' and tablename = 'batches'",
            )
        say(f"scratch database {name} migrated; authenticator role {role}")
        yield Database(
            name, dsn, make_conninfo(dsn, user=role, password=password), role, str(owner)
        )
    finally:
        with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
        say(f"dropped scratch database {name} and role {role}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
