"""Applying files: lock → re-check under the lock → run → record → commit, one file at a time.

Transactional file (nearly all)::

    BEGIN; set_config(lock_timeout/statement_timeout, local); pg_try_advisory_xact_lock(key)
    -- false: ROLLBACK, sleep with jitter, try again until lock_wait is spent
    re-read history for this file (another runner may have applied it) → skip or go on
    <the file, one parameterless execute>; INSERT history row; [NOTIFY pgrst]; COMMIT
    RESET ALL

Autocommit file (``-- migrate:no-transaction``, one statement): pooler probe, session try-lock
on the same key, ``running`` claim row committed, the statement, row → ``applied``/``failed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import errors as pgerr
from psycopg.pq import TransactionStatus

from . import history
from .connection import Connection, connect, ensure_real_session, one_line, reset_session
from .errors import (
    ApplyError,
    DriftError,
    MigrationError,
    OutOfOrderError,
)
from .files import SqlFile
from .locking import LockKey, holder, wait_for
from .validate import Analysis, unfinished_error

LOCK = LockKey.for_name(history.TABLE)
NOTIFY_SQL = "notify pgrst, 'reload schema'"
_RETRYABLE = (pgerr.LockNotAvailable, pgerr.DeadlockDetected)

Log = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    lock_wait: float = 60.0
    lock_timeout: str = "5s"
    statement_timeout: str = "0"
    retries: int = 5
    notify: bool = True


@dataclass(frozen=True)
class Applied:
    kind: str
    version: str | None
    name: str
    script: str
    transactional: bool
    duration_ms: int


@dataclass
class MigrateResult:
    applied: list[Applied] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # applied meanwhile by another runner
    bootstrapped: bool = False
    notified: bool = False
    database_version: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.applied)

    def summary(self) -> str:
        at = f"database at version {self.database_version or 'none'}"
        if not self.applied:
            return f"nothing to apply; {at}"
        versioned = sum(a.kind == "versioned" for a in self.applied)
        total = sum(a.duration_ms for a in self.applied)
        return (
            f"applied {len(self.applied)} file(s) ({versioned} versioned, "
            f"{len(self.applied) - versioned} repeatable) in {total} ms; {at}"
        )


def error_line(file: SqlFile, exc: psycopg.Error) -> str:
    """'<script>: line N: <message> (SQLSTATE x)' from a server error."""
    diag = exc.diag
    where = ""
    if diag.statement_position:
        offset = int(diag.statement_position) - 1
        where = f"line {file.sql.count(chr(10), 0, max(offset, 0)) + 1}: "
    message = diag.message_primary or str(exc)
    state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
    return one_line(f"{file.script}: {where}{message}{state}")


class Runner:
    def __init__(self, dsn: str, conn: Connection, options: Options, log: Log) -> None:
        self.dsn, self.conn, self.options, self.log = dsn, conn, options, log
        self.result = MigrateResult()
        self._unannounced = False  # a change committed without NOTIFY

    # ----------------------------------------------------------------- transactions

    def begin_locked(self) -> datetime:
        """BEGIN and hold the xact lock (polling); returns the server time it was taken."""
        started: list[datetime] = []

        def attempt() -> bool:
            self.conn.execute("begin")
            row = self.conn.execute(
                "select set_config('lock_timeout', %s, true),"
                " set_config('statement_timeout', %s, true),"
                " pg_try_advisory_xact_lock(%s, %s), clock_timestamp()",
                (self.options.lock_timeout, self.options.statement_timeout, LOCK.ns, LOCK.key),
            ).fetchone()
            if row is not None and row[2]:
                started.append(row[3])
                return True
            self.conn.execute("rollback")
            return False

        self._wait_for_lock(attempt)
        return started[-1]

    def _wait_for_lock(self, attempt: Callable[[], bool]) -> None:
        """Poll ``attempt`` (a try-lock) within --lock-wait; say so when it had to wait."""
        waited = wait_for(
            attempt,
            lock_wait=self.options.lock_wait,
            holder=lambda: holder(self.conn, LOCK),
            what=history.TABLE,
        )
        if waited > 0:
            self.log(f"waited {waited:.1f} s for the migration lock")

    def _rollback(self) -> None:
        if not self.conn.broken and self.conn.info.transaction_status != TransactionStatus.IDLE:
            self.conn.execute("rollback")

    def commit_transaction(self) -> None:
        """COMMIT; a separate method so tests can inject a lost connection here."""
        self.conn.execute("commit")

    def _commit(self, file: SqlFile) -> bool:
        """COMMIT; on a lost connection reconnect and look. False: not committed, run again."""
        try:
            self.commit_transaction()
            return True
        except psycopg.Error as exc:
            if not self.conn.broken:
                raise ApplyError(
                    f"{error_line(file, exc)}; rolled back at COMMIT, nothing recorded"
                ) from None
            reason = one_line(exc)
        self.log(
            f"connection lost during COMMIT of {file.script} ({reason}); "
            "reconnecting to check whether it committed"
        )
        self.conn.close()
        self.conn = connect(self.dsn)
        row = history.latest(self.conn, file)
        if row is not None and row.status == "applied" and row.checksum == file.checksum:
            self.log(f"{file.script}: the commit went through")
            return True
        self.log(f"{file.script}: the commit did not happen; running it again")
        return False

    # ----------------------------------------------------------------- checks under the lock

    def _already_applied(self, file: SqlFile) -> bool:
        """Re-read history under the lock. True: someone applied it meanwhile."""
        row = history.unfinished(self.conn)
        if row is not None:
            raise unfinished_error(row)
        latest = history.latest(self.conn, file)
        if file.kind == "repeatable":
            return latest is not None and latest.checksum == file.checksum
        if latest is not None and latest.status == "applied":
            if latest.kind == "versioned" and latest.checksum != file.checksum:
                raise DriftError(
                    f"{file.script}: another runner applied a different text of "
                    f"version {file.version}"
                )
            return True
        newest = history.newest_applied_version(self.conn)
        if newest is not None and file.version is not None and newest > file.version:
            raise OutOfOrderError(
                f"{file.script}: version {newest} was applied meanwhile; "
                f"{file.version} would now be out of order"
            )
        return False

    def _skip(self, file: SqlFile) -> None:
        self.log(f"{file.script}: already applied by another runner")
        self.result.skipped.append(file.script)

    def _done(self, file: SqlFile, duration_ms: int, notified: bool) -> None:
        self.result.applied.append(
            Applied(
                file.kind, file.version, file.name, file.script, file.transactional, duration_ms
            )
        )
        self.result.notified |= notified
        self._unannounced = not notified
        self.log(f"applied {file.script} in {duration_ms} ms")

    # ----------------------------------------------------------------- the steps

    def bootstrap(self) -> None:
        self.begin_locked()
        try:
            if not history.table_exists_now(self.conn):
                history.bootstrap(self.conn)
                self.result.bootstrapped = True
            self.conn.execute("commit")
        finally:
            self._rollback()
        if self.result.bootstrapped:
            self.log(f"created {history.TABLE}")

    def apply_transactional(self, file: SqlFile, notify: bool) -> None:
        attempts = max(0, self.options.retries) + 1
        for attempt in range(1, attempts + 1):
            started_at = self.begin_locked()
            try:
                if self._already_applied(file):
                    self.conn.execute("rollback")
                    self._skip(file)
                    return
                t0 = time.monotonic()
                self.conn.execute(file.sql)  # one parameterless execute: simple protocol
                duration_ms = round((time.monotonic() - t0) * 1000)
                history.insert(
                    self.conn,
                    file,
                    status="applied",
                    started_at=started_at,
                    duration_ms=duration_ms,
                )
                history.lock_down(self.conn)
                if notify:
                    self.conn.execute(NOTIFY_SQL)
            except _RETRYABLE as exc:
                self._rollback()
                if attempt == attempts:
                    raise ApplyError(
                        f"{error_line(file, exc)}; gave up after {attempts} "
                        "attempts, rolled back, nothing recorded"
                    ) from None
                self.log(f"{error_line(file, exc)}; rolled back, retry {attempt}/{attempts - 1}")
                time.sleep(min(5.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0))
                reset_session(self.conn)
                continue
            except pgerr.UniqueViolation as exc:
                self._rollback()
                if exc.diag.constraint_name == history.LIVE_VERSION_INDEX:
                    self._skip(file)  # the backstop: someone recorded it despite the lock
                    return
                raise ApplyError(
                    f"{error_line(file, exc)}; rolled back, nothing recorded"
                ) from None
            except psycopg.Error as exc:
                self._rollback()
                if self.conn.broken:
                    raise ApplyError(
                        f"{file.script}: lost the database connection "
                        f"({one_line(exc)}); rolled back, nothing recorded"
                    ) from None
                raise ApplyError(
                    f"{error_line(file, exc)}; rolled back, nothing recorded"
                ) from None
            except BaseException:
                self._rollback()
                raise
            committed = self._commit(file)
            reset_session(self.conn)
            if committed:
                self._done(file, duration_ms, notify)
                return
        raise ApplyError(f"{file.script}: could not confirm a commit after {attempts} attempts")

    def apply_autocommit(self, file: SqlFile, notify: bool) -> None:
        ensure_real_session(self.conn, self.dsn)  # before any session lock is taken

        def attempt() -> bool:
            row = self.conn.execute(
                "select pg_try_advisory_lock(%s, %s)", (LOCK.ns, LOCK.key)
            ).fetchone()
            return bool(row and row[0])

        self._wait_for_lock(attempt)
        try:
            if self._already_applied(file):
                self._skip(file)
                return
            row_id = history.insert(self.conn, file, status="running")  # committed claim
            self.conn.execute(
                "select set_config('lock_timeout', %s, false),"
                " set_config('statement_timeout', %s, false)",
                (self.options.lock_timeout, self.options.statement_timeout),
            )
            t0 = time.monotonic()
            try:
                self.conn.execute(file.sql)
            except psycopg.Error as exc:
                duration_ms = round((time.monotonic() - t0) * 1000)
                if self.conn.broken:
                    raise ApplyError(
                        f"{file.script}: lost the database connection ({one_line(exc)}); its "
                        f"row stays 'running': check the database, then `dpp-batches repair "
                        f"{file.version} --retry` or `--mark-applied`"
                    ) from None
                history.finish(
                    self.conn,
                    row_id,
                    status="failed",
                    duration_ms=duration_ms,
                    error=error_line(file, exc).removeprefix(f"{file.script}: "),
                )
                raise ApplyError(
                    f"{error_line(file, exc)}; recorded as failed (it ran outside a "
                    "transaction): clean up (`dpp-batches status` lists INVALID indexes), then "
                    f"`dpp-batches repair {file.version} --retry`"
                ) from None
            duration_ms = round((time.monotonic() - t0) * 1000)
            self.conn.execute("begin")
            history.finish(self.conn, row_id, status="applied", duration_ms=duration_ms)
            if notify:
                self.conn.execute(NOTIFY_SQL)
            self.conn.execute("commit")
            self._done(file, duration_ms, notify)
        finally:
            if not self.conn.broken:
                self._rollback()
                self.conn.execute("select pg_advisory_unlock(%s, %s)", (LOCK.ns, LOCK.key))
                reset_session(self.conn)

    def announce(self) -> None:
        """NOTIFY on its own when changes were committed but the last planned one was not."""
        if self._unannounced and self.options.notify and not self.conn.broken:
            self.conn.execute(NOTIFY_SQL)
            self.result.notified = True
            self._unannounced = False

    def run(self, analysis: Analysis, table_exists: bool) -> MigrateResult:
        if not table_exists:
            self.bootstrap()
        files = analysis.to_apply
        try:
            for index, file in enumerate(files):
                notify = self.options.notify and index == len(files) - 1
                if file.transactional:
                    self.apply_transactional(file, notify)
                else:
                    self.apply_autocommit(file, notify)
        except MigrationError:
            self.announce()
            raise
        self.announce()
        self.result.database_version = history.newest_applied_version(self.conn)
        return self.result
