"""Helpers for the migration-runner tests: small SQL trees and looks into the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from dpp_batches.migrate import MigrateResult, migrate
from dpp_batches.migrations.locking import LockKey
from dpp_batches.migrations.runner import LOCK

SRC = Path(__file__).resolve().parent.parent / "src"


def v(n: int) -> str:
    """The n-th test version: 14 digits, ordered by n."""
    return f"2025010100{n:04d}"


class Tree:
    """A SQL tree in a temporary directory; files are written as bytes, exactly as given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "migrations").mkdir(parents=True, exist_ok=True)
        (root / "repeatable").mkdir(exist_ok=True)

    def versioned(self, n: int, slug: str, text: str | bytes) -> Path:
        return self._write(self.root / "migrations" / f"{v(n)}_{slug}.sql", text)

    def repeatable(self, name: str, text: str | bytes) -> Path:
        return self._write(self.root / "repeatable" / name, text)

    @staticmethod
    def _write(path: Path, text: str | bytes) -> Path:
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path


def run(dsn: str, tree: Tree, **kwargs: Any) -> tuple[MigrateResult, list[str]]:
    """``migrate`` with a short lock wait; returns the result and the log lines."""
    lines: list[str] = []
    kwargs.setdefault("lock_wait", 5.0)
    result = migrate(dsn, sql_dir=tree.root, log=lines.append, **kwargs)
    return result, lines


def execute(dsn: str, script: str) -> None:
    """Run a parameterless (possibly multi-statement) script in autocommit."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script)


def scalar(dsn: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def rows(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def exists(dsn: str, relation: str) -> bool:
    return bool(scalar(dsn, "select to_regclass(%s) is not null", (relation,)))


def history(dsn: str) -> list[tuple[Any, ...]]:
    """(kind, version, name, status) of every history row, in apply order; [] if no table."""
    if not exists(dsn, "dpp_meta.migration_history"):
        return []
    return rows(
        dsn, "select kind, version, name, status from dpp_meta.migration_history order by id"
    )


def advisory_locks(dsn: str, key: LockKey = LOCK) -> int:
    """Advisory locks on the runner's key in ``dsn``'s database, granted or waiting."""
    return int(
        scalar(
            dsn,
            "select count(*) from pg_locks where locktype = 'advisory' and objsubid = 2"
            " and database = (select oid from pg_database where datname = current_database())"
            " and classid::bigint = %s and objid::bigint = %s",
            (key.ns & 0xFFFFFFFF, key.key & 0xFFFFFFFF),
        )
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Bounded wait: poll ``condition`` until it holds, fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m dpp_batches.cli ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "dpp_batches.cli", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
