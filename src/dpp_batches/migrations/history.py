"""The history table ``dpp_meta.migration_history``: its DDL, reading it, writing rows.

One row per application. Transactional files only ever produce ``applied`` rows, written in
the migration's own transaction; autocommit files go ``running`` → ``applied``/``failed``;
repeatables append a row each time they are applied; ``baseline`` marks a hand-installed
starting point. The schema is never granted to anyone: API roles must not reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from .. import __version__
from .connection import Connection
from .files import SqlFile

SCHEMA = "dpp_meta"
TABLE = f"{SCHEMA}.migration_history"
FORMAT = "history-format:1"
OWNED_SCHEMAS = ("dpp",)  # their presence without history means "installed by hand"
API_ROLES = ("anon", "authenticated", "service_role")
LIVE_VERSION_INDEX = "migration_history_live_version"

BOOTSTRAP_SQL = f"""
create schema if not exists {SCHEMA};
create table if not exists {TABLE} (
    id              bigint generated always as identity primary key,
    kind            text not null check (kind in ('versioned', 'repeatable', 'baseline')),
    version         text,
    name            text not null,
    script          text not null,
    checksum        text,
    status          text not null check (status in ('running', 'applied', 'failed')),
    transactional   boolean not null,
    package_version text not null,
    applied_by      text not null default current_user,
    client          text not null default current_setting('application_name'),
    started_at      timestamptz not null default clock_timestamp(),
    finished_at     timestamptz,
    duration_ms     integer,
    error           text,
    check ((kind = 'repeatable') = (version is null))
);
create unique index if not exists {LIVE_VERSION_INDEX}
    on {TABLE} (version)
    where kind in ('versioned', 'baseline') and status in ('running', 'applied');
create index if not exists migration_history_repeatable
    on {TABLE} (name, id desc) where kind = 'repeatable';
comment on table {TABLE} is '{FORMAT}';
revoke all on schema {SCHEMA} from public;
revoke all on all tables in schema {SCHEMA} from public;
revoke all on all sequences in schema {SCHEMA} from public;
"""

_COLUMNS = (
    "id, kind, version, name, script, checksum, status, transactional, package_version,"
    " applied_by, started_at, finished_at, duration_ms, error"
)


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    version: str | None
    name: str
    script: str
    checksum: str | None
    status: str
    transactional: bool
    package_version: str
    applied_by: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None


@dataclass(frozen=True)
class State:
    """What the database looked like in one snapshot."""

    server_version: int
    table_exists: bool
    format: str | None
    rows: tuple[Row, ...]
    owned_schemas: tuple[str, ...]  # those of OWNED_SCHEMAS that exist
    invalid_indexes: tuple[str, ...]

    @property
    def versioned_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.kind != "repeatable")


def read_state(conn: Connection) -> State:
    """Read everything validation needs in one REPEATABLE READ, READ ONLY snapshot."""
    conn.execute("begin isolation level repeatable read read only")
    try:
        row = conn.execute(
            """
            select exists (select from pg_catalog.pg_class c
                           join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                           where n.nspname = %s and c.relname = 'migration_history'),
                   array(select nspname::text from pg_catalog.pg_namespace
                         where nspname = any(%s) order by 1),
                   array(select format('%%I.%%I', n.nspname, c.relname)
                         from pg_catalog.pg_index i
                         join pg_catalog.pg_class c on c.oid = i.indexrelid
                         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                         where not i.indisvalid and n.nspname = any(%s) order by 1)
            """,
            (SCHEMA, list(OWNED_SCHEMAS), ["public", SCHEMA, *OWNED_SCHEMAS]),
        ).fetchone()
        assert row is not None
        exists, owned, invalid = row
        rows: list[Row] = []
        fmt: str | None = None
        if exists:
            fmt_row = conn.execute(
                "select obj_description(%s::regclass, 'pg_class')", (TABLE,)
            ).fetchone()
            fmt = fmt_row[0] if fmt_row else None
            rows = read_rows(conn)
    finally:
        conn.execute("rollback")
    return State(
        conn.info.server_version, bool(exists), fmt, tuple(rows), tuple(owned), tuple(invalid)
    )


def read_rows(conn: Connection) -> list[Row]:
    query = sql.SQL("select {} from {} order by id").format(sql.SQL(_COLUMNS), sql.SQL(TABLE))
    return [Row(*r) for r in conn.execute(query).fetchall()]


def table_exists_now(conn: Connection) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (TABLE,)).fetchone()
    return bool(row and row[0])


def bootstrap(conn: Connection) -> None:
    """Create the history schema and table (call inside a transaction holding the lock)."""
    conn.execute(BOOTSTRAP_SQL)
    lock_down(conn)


def lock_down(conn: Connection) -> None:
    """Revoke anything PUBLIC or an API role holds on dpp_meta; executes no DDL when clean."""
    rows = conn.execute(
        """
        select distinct coalesce(r.rolname::text, 'public')
        from (select nspacl as acl from pg_catalog.pg_namespace where nspname = %s
              union all
              select c.relacl from pg_catalog.pg_class c
              join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where n.nspname = %s) o
        cross join lateral aclexplode(o.acl) a
        left join pg_catalog.pg_roles r on r.oid = a.grantee
        where a.grantee = 0 or r.rolname = any(%s)
        """,
        (SCHEMA, SCHEMA, list(API_ROLES)),
    ).fetchall()
    if not rows:
        return
    grantees = sql.SQL(", ").join(
        sql.SQL("public") if name == "public" else sql.Identifier(name) for (name,) in rows
    )
    schema = sql.Identifier(SCHEMA)
    for target in ("schema {}", "all tables in schema {}", "all sequences in schema {}"):
        conn.execute(sql.SQL("revoke all on " + target + " from {}").format(schema, grantees))


def latest(conn: Connection, file: SqlFile) -> Row | None:
    """The newest row for this file's version (versioned/baseline) or key (repeatable)."""
    if file.version is not None:
        return latest_for_version(conn, file.version)
    row = conn.execute(
        sql.SQL(
            "select {} from {} where kind = 'repeatable' and name = %s order by id desc limit 1"
        ).format(sql.SQL(_COLUMNS), sql.SQL(TABLE)),
        (file.name,),
    ).fetchone()
    return Row(*row) if row else None


def latest_for_version(conn: Connection, version: str) -> Row | None:
    row = conn.execute(
        sql.SQL(
            "select {} from {} where kind <> 'repeatable' and version = %s order by id desc limit 1"
        ).format(sql.SQL(_COLUMNS), sql.SQL(TABLE)),
        (version,),
    ).fetchone()
    return Row(*row) if row else None


def unfinished(conn: Connection) -> Row | None:
    row = conn.execute(
        sql.SQL(
            "select {} from {} where status in ('running', 'failed') order by id limit 1"
        ).format(sql.SQL(_COLUMNS), sql.SQL(TABLE))
    ).fetchone()
    return Row(*row) if row else None


def newest_applied_version(conn: Connection) -> str | None:
    row = conn.execute(
        sql.SQL(
            "select max(version) from {} where kind <> 'repeatable' and status = 'applied'"
        ).format(sql.SQL(TABLE))
    ).fetchone()
    return row[0] if row else None


def insert(
    conn: Connection,
    file: SqlFile,
    *,
    status: str,
    started_at: datetime | None = None,
    duration_ms: int | None = None,
) -> int:
    """Append a row for ``file``; ``applied`` rows get ``finished_at`` now."""
    values: dict[str, Any] = {
        "kind": file.kind,
        "version": file.version,
        "name": file.name,
        "script": file.script,
        "checksum": file.checksum,
        "status": status,
        "transactional": file.transactional,
        "package_version": __version__,
        "duration_ms": duration_ms,
    }
    columns = list(values)
    exprs: list[sql.Composable] = [sql.Placeholder(c) for c in columns]
    if started_at is not None:
        columns.append("started_at")
        exprs.append(sql.Placeholder("started_at"))
        values["started_at"] = started_at
    if status == "applied":
        columns.append("finished_at")
        exprs.append(sql.SQL("clock_timestamp()"))
    row = conn.execute(
        sql.SQL("insert into {} ({}) values ({}) returning id").format(
            sql.SQL(TABLE),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(exprs),
        ),
        values,
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish(
    conn: Connection, row_id: int, *, status: str, duration_ms: int, error: str | None = None
) -> None:
    conn.execute(
        sql.SQL(
            "update {} set status = %s, finished_at = clock_timestamp(), duration_ms = %s,"
            " error = %s where id = %s"
        ).format(sql.SQL(TABLE)),
        (status, duration_ms, error, row_id),
    )


def insert_baseline(conn: Connection, version: str, script: str) -> None:
    conn.execute(
        sql.SQL(
            "insert into {} (kind, version, name, script, checksum, status, transactional,"
            " package_version, finished_at, duration_ms)"
            " values ('baseline', %s, 'baseline', %s, null, 'applied', true, %s,"
            " clock_timestamp(), 0)"
        ).format(sql.SQL(TABLE)),
        (version, script, __version__),
    )


def delete_row(conn: Connection, row_id: int) -> None:
    conn.execute(sql.SQL("delete from {} where id = %s").format(sql.SQL(TABLE)), (row_id,))


def mark_applied(conn: Connection, row_id: int, checksum: str) -> None:
    conn.execute(
        sql.SQL(
            "update {} set status = 'applied', checksum = %s,"
            " finished_at = coalesce(finished_at, clock_timestamp()),"
            " error = concat_ws('; ', error, 'marked applied by repair')"
            " where id = %s"
        ).format(sql.SQL(TABLE)),
        (checksum, row_id),
    )
