"""A cheap fingerprint of every table in schema ``dpp``: row count and md5 per table.

Read as the superuser (verification of stored state only, never a way to call the API).
Tables are discovered from the catalog on every call, so a new ``dpp`` table is covered
without editing this file. One round trip per fingerprint::

    with Fingerprinter(db_dsn) as fp:
        before = fp()
        ...                      # a call that must change nothing
        assert fp() == before, diff(before, fp())
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

SCHEMA = "dpp"

_TABLES_SQL = """
select c.relname::text
from pg_catalog.pg_class as c
where c.relnamespace = %s::regnamespace and c.relkind in ('r', 'p')
order by 1
"""

Fingerprint = dict[str, str]  # table -> "<rows>:<md5 of the rows' text, sorted>"


def _statement(tables: list[str]) -> sql.Composed:
    parts = [
        sql.SQL(
            "select {name}::text, count(*)::text || ':' || "
            "md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
            "from {schema}.{table} as t"
        ).format(
            name=sql.Literal(table), schema=sql.Identifier(SCHEMA), table=sql.Identifier(table)
        )
        for table in tables
    ]
    return sql.SQL(" union all ").join(parts)


def fingerprint(conn: psycopg.Connection[Any]) -> Fingerprint:
    """Fingerprint of every ``dpp`` table, read on ``conn`` (a superuser connection)."""
    tables = [row[0] for row in conn.execute(_TABLES_SQL, (SCHEMA,)).fetchall()]
    if not tables:
        return {}
    return {row[0]: row[1] for row in conn.execute(_statement(tables)).fetchall()}


def diff(before: Fingerprint, after: Fingerprint) -> list[str]:
    """Names of the tables whose fingerprint differs (or that appeared / disappeared)."""
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


class Fingerprinter:
    """One autocommit superuser connection that fingerprints ``dpp`` on each call.

    The table list is read once, at construction: for a fixed schema (a test's own database)
    each fingerprint is then a single statement.
    """

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
        tables = [row[0] for row in self.conn.execute(_TABLES_SQL, (SCHEMA,)).fetchall()]
        self.tables = tuple(tables)
        self._statement = _statement(tables) if tables else None

    def __call__(self) -> Fingerprint:
        if self._statement is None:
            return {}
        return {row[0]: row[1] for row in self.conn.execute(self._statement).fetchall()}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Fingerprinter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
