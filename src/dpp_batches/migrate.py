"""The migration runner: discover → validate → lock → apply → record.

Public API (used by the CLI, the test harness and other tools)::

    migrate(dsn, ...) -> MigrateResult        apply pending files (idempotent)
    status(dsn) -> StatusReport               applied / pending / drifted / …, exit code 0/1/2
    plan(dsn) -> list[PlanItem]               what migrate would run; writes nothing
    baseline(dsn, version)                    record a hand-installed starting point
    repair(dsn, version, "retry" | "mark_applied")   settle a running/failed autocommit file
    default_sql_dir() -> Path                 the SQL tree shipped with the package

Everything that stops a run raises a :class:`MigrationError` whose ``str()`` is one line.
The internals live in :mod:`dpp_batches.migrations`; ``reference/migrations.md`` §3 is the
design this follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg.pq import TransactionStatus

import dpp_batches

from .migrations import history
from .migrations.connection import Connection, connect, describe, ensure_real_session, one_line
from .migrations.errors import (
    ApplyError,
    BadFileError,
    ConfigError,
    LockTimeoutError,
    MigrationError,
    ValidationError,
)
from .migrations.files import VERSION_RE, SqlFile, Tree, discover
from .migrations.report import StatusReport
from .migrations.runner import Applied, MigrateResult, Options, Runner
from .migrations.validate import Analysis, analyse, first_problem

__all__ = [
    "Applied",
    "ApplyError",
    "ConfigError",
    "LockTimeoutError",
    "MigrateResult",
    "MigrationError",
    "PlanItem",
    "StatusReport",
    "ValidationError",
    "baseline",
    "default_sql_dir",
    "migrate",
    "plan",
    "repair",
    "status",
]

Log = Callable[[str], None]
_DURATION = re.compile(r"\d+(\.\d+)?\s*(us|ms|s|min|h|d)?")


def default_sql_dir() -> Path:
    """The SQL tree: ``dpp_batches/sql`` in a wheel, else ``<checkout>/sql``."""
    package_dir = Path(dpp_batches.__file__).resolve().parent
    for candidate in (package_dir / "sql", package_dir.parent.parent / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise ConfigError(
        f"no SQL tree found (looked for {package_dir / 'sql'} and "
        f"{package_dir.parent.parent / 'sql'}); pass --sql-dir"
    )


def _options(
    lock_wait: float, lock_timeout: str, statement_timeout: str, retries: int, notify: bool
) -> Options:
    if lock_wait < 0:
        raise ConfigError(f"lock wait must be >= 0 seconds, got {lock_wait:g}")
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    for label, value in (("lock timeout", lock_timeout), ("statement timeout", statement_timeout)):
        if not _DURATION.fullmatch(value.strip()):
            raise ConfigError(
                f"{label} {value!r} is not a PostgreSQL duration such as '5s', '500ms' or '0'"
            )
    return Options(lock_wait, lock_timeout.strip(), statement_timeout.strip(), retries, notify)


def _tree(sql_dir: Path | None) -> Tree:
    return discover(Path(sql_dir) if sql_dir is not None else default_sql_dir())


@contextmanager
def _session(dsn: str) -> Iterator[Connection]:
    """A runner connection; database errors that escape become one-line MigrationErrors."""
    conn = connect(dsn)
    try:
        yield conn
    except psycopg.Error as exc:
        raise ApplyError(f"database error: {one_line(exc)}") from None
    finally:
        conn.close()


def _validated(conn: Connection, dsn: str, tree: Tree) -> tuple[history.State, Analysis]:
    state = history.read_state(conn)
    analysis = analyse(tree, state)
    if analysis.problems:
        raise first_problem(analysis.problems)
    if any(not f.transactional for f in analysis.pending):
        ensure_real_session(conn, dsn)
    return state, analysis


def migrate(
    dsn: str,
    *,
    sql_dir: Path | None = None,
    lock_wait: float = 60.0,
    lock_timeout: str = "5s",
    statement_timeout: str = "0",
    retries: int = 5,
    notify: bool = True,
    log: Log | None = None,
) -> MigrateResult:
    """Apply every pending versioned file, then every new or changed repeatable file.

    Validation (drift, missing files, newer database, out-of-order, bad names, unfinished
    autocommit files, static guard) runs first; on any problem nothing is applied.
    ``notify`` sends ``NOTIFY pgrst, 'reload schema'`` once when something changed.
    """
    options = _options(lock_wait, lock_timeout, statement_timeout, retries, notify)
    tree = _tree(sql_dir)
    say = log or (lambda _line: None)
    with _session(dsn) as conn:
        state, analysis = _validated(conn, dsn, tree)
        runner = Runner(dsn, conn, options, say)
        try:
            return runner.run(analysis, state.table_exists)
        except psycopg.Error as exc:
            raise ApplyError(f"database error: {one_line(exc)}") from None
        finally:
            if runner.conn is not conn:
                runner.conn.close()


def status(dsn: str, *, sql_dir: Path | None = None) -> StatusReport:
    """Applied, pending, drifted, missing, newer, running/failed entries and INVALID indexes."""
    tree = _tree(sql_dir)
    with _session(dsn) as conn:
        state = history.read_state(conn)
        analysis = analyse(tree, state)
        return StatusReport(
            database=f"{describe(conn)}, history {history.TABLE}",
            history_exists=state.table_exists,
            entries=tuple(analysis.entries),
            problems=tuple(analysis.problems),
            invalid_indexes=state.invalid_indexes,
        )


@dataclass(frozen=True)
class PlanItem:
    kind: str  # versioned | repeatable
    version: str | None
    script: str
    transactional: bool
    reason: str  # pending | new | changed
    sql: str

    @classmethod
    def of(cls, file: SqlFile, reason: str) -> PlanItem:
        return cls(file.kind, file.version, file.script, file.transactional, reason, file.sql)


def plan(dsn: str, *, sql_dir: Path | None = None) -> list[PlanItem]:
    """What ``migrate`` would run, in order, after the same validation; writes nothing."""
    tree = _tree(sql_dir)
    with _session(dsn) as conn:
        _, analysis = _validated(conn, dsn, tree)
    known = {e.script: e.detail for e in analysis.entries}
    items = [PlanItem.of(f, "pending") for f in analysis.pending]
    items += [
        PlanItem.of(f, "new" if known.get(f.script) == "new" else "changed")
        for f in analysis.repeatables
    ]
    return items


def baseline(
    dsn: str,
    version: str,
    *,
    sql_dir: Path | None = None,
    lock_wait: float = 60.0,
    lock_timeout: str = "5s",
    log: Log | None = None,
) -> None:
    """Record that files up to ``version`` were installed by other means (empty history only)."""
    if not VERSION_RE.fullmatch(version):
        raise ConfigError(f"baseline version {version!r} is not 14 digits (YYYYMMDDHHMMSS)")
    tree = _tree(sql_dir)
    if tree.problems:
        raise first_problem(tree.problems)
    file = tree.by_version().get(version)
    if file is None:
        raise BadFileError(
            f"no file migrations/{version}_*.sql in {tree.root}; baseline must "
            "name a version this package ships"
        )
    say = log or (lambda _line: None)
    with _session(dsn) as conn:
        runner = Runner(dsn, conn, _options(lock_wait, lock_timeout, "0", 0, False), say)
        if not history.table_exists_now(conn):
            runner.bootstrap()
        runner.begin_locked()
        try:
            rows = [r for r in history.read_rows(conn) if r.kind != "repeatable"]
            if rows:
                raise ValidationError(
                    f"baseline needs an empty history, but {history.TABLE} already records "
                    f"{len(rows)} migration(s) (newest {max(r.version or '' for r in rows)})"
                )
            history.insert_baseline(conn, version, file.script)
            conn.execute("commit")
        finally:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("rollback")
    say(f"baseline {version}: files up to {file.script} count as applied")


def repair(
    dsn: str,
    version: str,
    action: Literal["retry", "mark_applied"],
    *,
    sql_dir: Path | None = None,
    lock_wait: float = 60.0,
    lock_timeout: str = "5s",
    log: Log | None = None,
) -> None:
    """Settle a ``running``/``failed`` autocommit migration.

    ``retry`` forgets the attempt, so the next ``migrate`` runs the file again (drop any
    INVALID index it left first). ``mark_applied`` records it as applied with the file's
    current checksum (after you finished it by hand).
    """
    if action not in ("retry", "mark_applied"):
        raise ConfigError(f"repair action must be 'retry' or 'mark_applied', not {action!r}")
    file: SqlFile | None = None
    if action == "mark_applied":
        file = _tree(sql_dir).by_version().get(version)
        if file is None:
            raise BadFileError(f"no file migrations/{version}_*.sql to mark as applied")
    say = log or (lambda _line: None)
    with _session(dsn) as conn:
        if not history.table_exists_now(conn):
            raise ConfigError(f"nothing to repair: {history.TABLE} does not exist")
        runner = Runner(dsn, conn, _options(lock_wait, lock_timeout, "0", 0, False), say)
        runner.begin_locked()  # also waits for a runner still executing that file
        try:
            row = history.latest_for_version(conn, version)
            if row is None or row.status not in ("running", "failed"):
                state = "not recorded" if row is None else row.status
                raise ConfigError(
                    f"nothing to repair: version {version} is {state}, not running or failed"
                )
            if file is not None:
                history.mark_applied(conn, row.id, file.checksum)
            else:
                history.delete_row(conn, row.id)
            conn.execute("commit")
        finally:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("rollback")
    if action == "retry":
        say(f"{row.script}: attempt forgotten; `dpp-batches migrate` will run it again")
    else:
        say(f"{row.script}: marked as applied")
