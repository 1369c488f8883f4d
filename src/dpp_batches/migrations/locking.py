"""The migration lock: one advisory key, polled with try-locks, never waited on in a statement.

Transactional files take ``pg_try_advisory_xact_lock`` inside their own transaction; a file
that must run in autocommit takes ``pg_try_advisory_lock`` on the same key. Between attempts
no transaction is open, so a concurrent ``CREATE INDEX CONCURRENTLY`` never waits for us.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .connection import Connection, one_line
from .errors import LockTimeoutError


@dataclass(frozen=True)
class LockKey:
    ns: int
    key: int

    @classmethod
    def for_name(cls, name: str) -> LockKey:
        """Two signed int4 values derived from ``name`` (stable across versions)."""
        digest = hashlib.sha256(name.encode()).digest()
        return cls(
            int.from_bytes(digest[:4], "big", signed=True),
            int.from_bytes(digest[4:8], "big", signed=True),
        )


def wait_for(
    attempt: Callable[[], bool], *, lock_wait: float, holder: Callable[[], str], what: str
) -> float:
    """Call ``attempt`` until it returns True; seconds waited. Jittered exponential backoff.

    A first attempt that succeeds waited 0 s, however long the round trip took.
    """
    start = time.monotonic()
    if attempt():
        return 0.0
    delay = 0.05
    while True:
        remaining = start + lock_wait - time.monotonic()
        if remaining <= 0:
            raise LockTimeoutError(
                f"gave up after {lock_wait:g} s waiting for the migration lock ({what}); "
                f"it is held by {holder()}"
            )
        time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
        delay = min(1.0, delay * 2)
        if attempt():
            return time.monotonic() - start


def holder(conn: Connection, key: LockKey) -> str:
    """Who holds ``key`` in this database, from pg_locks joined to pg_stat_activity."""
    row = conn.execute(
        """
        select a.pid, a.application_name, a.state,
               to_char(a.query_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               left(a.query, 80)
        from pg_catalog.pg_locks l
        join pg_catalog.pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 2
          and l.database = (select oid from pg_catalog.pg_database
                            where datname = pg_catalog.current_database())
          and l.classid::bigint = %s and l.objid::bigint = %s
        limit 1
        """,
        (key.ns & 0xFFFFFFFF, key.key & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "a session that has just released it or cannot be seen (check pg_locks)"
    pid, app, state, started, query = row
    return (
        f"pid {pid} (application_name '{app}', state '{state}', "
        f"query_start {started}, query: {one_line(query)!r})"
    )
