"""Test harness: a real PostgreSQL per test session, reached the way PostgREST reaches it.

Server choice, in order (printed in the pytest header):
  1. ``DATABASE_URL`` — an admin DSN of an existing server (CI: the machine's PostgreSQL 15);
  2. a testcontainers ``postgres:15`` container, when a Docker engine answers;
  3. an embedded PostgreSQL (the ``pgserver`` wheel) in a temporary directory.
``DPP_TEST_SERVER=url|docker|embedded`` forces one of them.

The suite never uses the server's own databases: it creates scratch databases, migrates them
with the real runner and drops them at the end. API calls go through ``PostgrestClient`` as the
NOINHERIT login role ``dpp_authenticator`` (PostgREST's authenticator), never as a superuser.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dpp_batches import deploy

AUTHENTICATOR = "dpp_authenticator"
AUTHENTICATOR_PASSWORD = "dpp_authenticator"  # test-only; the local servers use trust auth
CONTAINER_IMAGE = "postgres:15"


# --------------------------------------------------------------------------- server choice


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping (DOCKER_HOST or the default socket)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    # The docker SDK may leave its socket to the garbage collector when the engine is
    # down; under filterwarnings=error that ResourceWarning would fail an unrelated test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False


def _choose_server() -> tuple[str, str]:
    """Return (kind, reason) without starting anything."""
    forced = os.environ.get("DPP_TEST_SERVER", "").strip().lower()
    if forced:
        if forced not in {"url", "docker", "embedded"}:
            raise pytest.UsageError("DPP_TEST_SERVER must be one of url, docker, embedded")
        if forced == "url" and not os.environ.get("DATABASE_URL"):
            raise pytest.UsageError("DPP_TEST_SERVER=url needs DATABASE_URL")
        return forced, "forced by DPP_TEST_SERVER"
    if os.environ.get("DATABASE_URL"):
        return "url", "DATABASE_URL is set"
    if _docker_answers():
        return "docker", "DATABASE_URL unset; a Docker engine answers"
    return "embedded", "DATABASE_URL unset; no Docker engine answers"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_choice_key] = _choose_server()


_choice_key = pytest.StashKey[tuple[str, str]]()


def pytest_report_header(config: pytest.Config) -> list[str]:
    kind, reason = config.stash[_choice_key]
    label = {
        "url": "DATABASE_URL",
        "docker": f"testcontainers ({CONTAINER_IMAGE})",
        "embedded": "embedded PostgreSQL (pgserver)",
    }[kind]
    return [
        "database order: DATABASE_URL -> testcontainers (Docker engine) -> embedded pgserver",
        f"database: {label} ({reason})",
    ]


@dataclass
class Server:
    admin_dsn: str
    kind: str
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self._cleanups:
            self._cleanups.pop()()


def _start_server(kind: str) -> Server:
    if kind == "url":
        return Server(os.environ["DATABASE_URL"], kind)
    if kind == "docker":
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(CONTAINER_IMAGE, driver=None)
        container.start()
        server = Server(container.get_connection_url(), kind)
        server._cleanups.append(container.stop)
        return server
    from dpp_batches import embedded

    data_dir = Path(tempfile.mkdtemp(prefix="dpp-test-pg-"))
    emb = embedded.start(data_dir / "pgdata", cleanup="delete")
    server = Server(emb.dsn, kind)
    server._cleanups.append(emb.stop)
    return server


@pytest.fixture(scope="session")
def server(pytestconfig: pytest.Config) -> Iterator[Server]:
    kind, _ = pytestconfig.stash[_choice_key]
    srv = _start_server(kind)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def admin_dsn(server: Server) -> str:
    """Superuser DSN of the chosen server (its maintenance database)."""
    return server.admin_dsn


# --------------------------------------------------------------------------- scratch databases


def dsn_for_database(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


def _authenticator_dsn(dsn: str) -> str:
    return make_conninfo(dsn, user=AUTHENTICATOR, password=AUTHENTICATOR_PASSWORD)


@pytest.fixture(scope="session")
def authenticator_dsn_for(admin_dsn: str) -> Callable[[str], str]:
    """``authenticator_dsn_for(dsn)``: the same database as the authenticator login role.

    The database must already have the API roles (i.e. be migrated).
    """

    def for_dsn(dsn: str) -> str:
        deploy.ensure_authenticator(admin_dsn, AUTHENTICATOR, password=AUTHENTICATOR_PASSWORD)
        return _authenticator_dsn(dsn)

    return for_dsn


@pytest.fixture(scope="session")
def make_database(admin_dsn: str) -> Iterator[Callable[..., str]]:
    """Factory: ``make_database(migrated=False) -> dsn`` of a fresh scratch database."""
    created: list[str] = []
    counter = itertools.count(1)
    prefix = f"dpp_test_{os.getpid()}_{secrets.token_hex(3)}"

    def make(migrated: bool = False) -> str:
        name = f"{prefix}_{next(counter)}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        created.append(name)
        dsn = dsn_for_database(admin_dsn, name)
        if migrated:
            from dpp_batches.migrate import migrate

            migrate(dsn)
        return dsn

    yield make
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def db_dsn(make_database: Callable[..., str]) -> str:
    """Superuser DSN of this session's migrated database."""
    return make_database(migrated=True)


@pytest.fixture(scope="session")
def authenticator_dsn(db_dsn: str, authenticator_dsn_for: Callable[[str], str]) -> str:
    """The migrated database as ``dpp_authenticator`` (NOINHERIT; member of the API roles)."""
    dsn = authenticator_dsn_for(db_dsn)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select rolsuper, rolbypassrls, rolinherit from pg_roles where rolname = current_user"
        ).fetchone()
    # Tests that run as a superuser or a BYPASSRLS role prove nothing about RLS.
    assert row == (False, False, False), (
        f"{AUTHENTICATOR} must be NOINHERIT, no superuser, no BYPASSRLS"
    )
    return dsn


@pytest.fixture(scope="session")
def api(authenticator_dsn: str) -> Iterator[Any]:
    from dpp_batches.postgrest import PostgrestClient

    client = PostgrestClient(authenticator_dsn)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def as_service(api: Any) -> Any:
    return api.as_service()


@pytest.fixture
def as_anon(api: Any) -> Any:
    return api.as_anon()


@pytest.fixture
def as_user(api: Any) -> Callable[..., Any]:
    def bind(user_id: Any, **extra_claims: Any) -> Any:
        return api.as_user(user_id, **extra_claims)

    return bind


def admin_dsn_parts(dsn: str) -> dict[str, Any]:
    """Host/port/user of a DSN, for messages and subprocess environments."""
    return conninfo_to_dict(dsn)
