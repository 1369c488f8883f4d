"""The runner's database session: how it connects, what it sets, and the pooler probe."""

from __future__ import annotations

import contextlib
import secrets
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


def ensure_real_session(conn: Connection) -> None:
    """Refuse to run non-transactional SQL (and take a session lock) behind transaction pooling.

    Two autocommit statements are sent; a session-level setting made by the first must still be
    visible in the second. Behind a transaction-mode pooler they may reach different backends.
    """
    port = conn.info.port
    advice = "use a direct or session-mode (port 5432) connection for non-transactional migrations"
    if port in _TRANSACTION_POOLER_PORTS:
        raise PoolerError(f"the DSN points at {_TRANSACTION_POOLER_PORTS[port]}; {advice}")
    token = secrets.token_hex(8)
    try:
        conn.execute("select set_config(%s, %s, false)", (_PROBE_SETTING, token))
        row = conn.execute("select current_setting(%s, true)", (_PROBE_SETTING,)).fetchone()
        conn.execute("select set_config(%s, '', false)", (_PROBE_SETTING,))
    except psycopg.Error as exc:
        raise PoolerError(f"session probe failed ({one_line(exc)}); {advice}") from None
    if row is None or row[0] != token:
        raise PoolerError(
            f"the connection does not keep session state (a transaction-mode pooler?); {advice}"
        )


def describe(conn: Connection) -> str:
    info = conn.info
    version = info.server_version
    return (
        f"database {info.dbname} on {info.host}:{info.port} "
        f"(PostgreSQL {version // 10000}.{version % 10000})"
    )
