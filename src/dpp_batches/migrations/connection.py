"""The runner's database session: how it connects, what it sets, and the pooler probe."""

from __future__ import annotations

import contextlib
import secrets
import threading
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import ConfigError, PoolerError

APPLICATION_NAME = "dpp-batches-migrate"
CHECK_INTERVAL = "2s"  # PG >= 14: abort a dead client's statement instead of finishing it
_PROBE_SETTING = "dpp_batches.session_probe"
_TRANSACTION_POOLER_PORTS = {6543: "Supabase's transaction-mode pooler port 6543"}

Connection = psycopg.Connection[tuple[Any, ...]]


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def connect(dsn: str) -> Connection:
    """Autocommit connection (the runner issues BEGIN/COMMIT itself), pooler-safe settings."""
    params = conninfo_to_dict(dsn)
    extra: dict[str, Any] = {}
    defaults = {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    for key, value in defaults.items():
        if key not in params:
            extra[key] = value
    try:
        conn = psycopg.connect(
            dsn, autocommit=True, prepare_threshold=None, application_name=APPLICATION_NAME, **extra
        )
    except psycopg.Error as exc:
        raise ConfigError(f"cannot connect to the database: {one_line(exc)}") from None
    setup_session(conn)
    return conn


def setup_session(conn: Connection) -> None:
    """Session settings the runner relies on; re-applied after every ``RESET ALL``."""
    if conn.info.server_version >= 140000:
        # A hardened server may forbid it; keepalives still bound the damage then.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "select set_config('client_connection_check_interval', %s, false)",
                (CHECK_INTERVAL,),
            )


def reset_session(conn: Connection) -> None:
    """Undo whatever a migration file SET for the session. Never DISCARD ALL: it drops locks."""
    conn.execute("reset all")
    setup_session(conn)


def ensure_real_session(conn: Connection, dsn: str) -> None:
    """Refuse to run non-transactional SQL (and take a session lock) behind transaction pooling.

    A session-level setting made in one autocommit statement must still be visible in the next.
    When the backend's pid differs from the one announced at connect time, a pooler sits in
    between; then a second connection first pins a backend in an open transaction, so that a
    transaction-mode pooler (which hands out the most recently used backend first) serves the
    read-back from another backend — or, with a pool of one, cannot serve it at all.
    """
    port = conn.info.port
    advice = "use a direct or session-mode (port 5432) connection for non-transactional migrations"
    if port in _TRANSACTION_POOLER_PORTS:
        raise PoolerError(f"the DSN points at {_TRANSACTION_POOLER_PORTS[port]}; {advice}")
    token = secrets.token_hex(8)
    try:
        row = conn.execute(
            "select set_config(%s, %s, false), pg_backend_pid()", (_PROBE_SETTING, token)
        ).fetchone()
        pooled = row is None or row[1] != conn.info.backend_pid
        seen = _read_back_pinned(conn, dsn) if pooled else _read_back(conn)
        conn.execute("select set_config(%s, '', false)", (_PROBE_SETTING,))
    except psycopg.Error as exc:
        raise PoolerError(f"session probe failed ({one_line(exc)}); {advice}") from None
    if seen != token:
        raise PoolerError(
            f"the connection does not keep session state (a transaction-mode pooler?); {advice}"
        )


def _read_back(conn: Connection) -> str | None:
    row = conn.execute("select current_setting(%s, true)", (_PROBE_SETTING,)).fetchone()
    return None if row is None else row[0]


def _read_back_pinned(conn: Connection, dsn: str, wait: float = 2.0) -> str | None:
    """Read the probe setting back while another connection holds a backend in a transaction."""
    seen: list[str | None] = []
    with psycopg.connect(dsn, prepare_threshold=None, connect_timeout=10) as other:
        other.execute("select 1")  # opens a transaction: the pooler keeps that backend for it
        reader = threading.Thread(target=lambda: seen.append(_read_back(conn)), daemon=True)
        reader.start()
        reader.join(wait)
        pool_exhausted = reader.is_alive()
        other.rollback()  # frees the backend, so a queued read-back can finish
    reader.join()
    return None if pool_exhausted or not seen else seen[0]


def describe(conn: Connection) -> str:
    info = conn.info
    version = info.server_version
    return (
        f"database {info.dbname} on {info.host}:{info.port} "
        f"(PostgreSQL {version // 10000}.{version % 10000})"
    )
