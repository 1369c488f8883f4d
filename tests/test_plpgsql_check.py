"""plpgsql_check over every PL/pgSQL function in ``public`` and ``dpp``.

Runs ``plpgsql_check_function_tb`` with every warning class on (other, performance, extra,
security, compatibility; fatal errors off so that all of them are listed) in a migrated scratch
database; trigger functions are checked against each table they are attached to. Zero errors and
zero warnings, except the waivers below, each with its reason (and each must still occur).

The extension is a server package (CI: ``apt-get install -y postgresql-15-plpgsql-check`` for the
machine's PostgreSQL 15). Where the server lacks it (the embedded PostgreSQL 16) the tests skip,
unless ``DPP_REQUIRE_PLPGSQL_CHECK=1`` makes a missing extension a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

# (function, pattern the whole finding text must match) -> why it stays.
WAIVED: dict[tuple[str, str], str] = {
    (
        "dpp.raise_invalid(text,text,text)",
        r"routine is marked as VOLATILE, should be IMMUTABLE \(.*",
    ): (
        "raise_invalid only raises. Marked IMMUTABLE, a call with constant arguments could be "
        "folded by the planner and raise at plan time, even on a branch that never runs; "
        "VOLATILE keeps every raise where the code puts it."
    ),
    (
        "public.list_brand_batches(uuid,text,date,date,text,integer,text)",
        r'OUT variable "\w+" is maybe unmodified \(.*\); cannot to determine result of dynamic SQL',
    ): (
        "RETURN QUERY EXECUTE: the keyset query is built per filter combination so that an "
        "index serves each one (sql/migrations/*_batch_read_path.sql); plpgsql_check cannot "
        "see which columns dynamic SQL fills. The SQL it runs is covered by the API tests."
    ),
}

_FUNCTIONS = """
select p.oid, p.oid::regprocedure::text, coalesce(t.tgrelid, 0), t.tgrelid::regclass::text,
       p.prorettype = 'pg_catalog.trigger'::regtype
from pg_catalog.pg_proc as p
join pg_catalog.pg_language as l on l.oid = p.prolang and l.lanname = 'plpgsql'
left join pg_catalog.pg_trigger as t on t.tgfoid = p.oid and not t.tgisinternal
where p.pronamespace = any(%s::regnamespace[])
order by 2, 4
"""
_CHECK = """
select level, coalesce(sqlstate, ''), lineno, message, detail, hint
from plpgsql_check.plpgsql_check_function_tb(
    %s, %s,
    fatal_errors => false,
    other_warnings => true,
    performance_warnings => true,
    extra_warnings => true,
    security_warnings => true,
    compatibility_warnings => true
)
"""

Finding = tuple[str, str, str]  # (function [on table], level, "message (line n): detail")


def check_functions(conn: psycopg.Connection[Any], schemas: list[str]) -> tuple[int, list[Finding]]:
    """(number of (function, table) pairs checked, every finding)."""
    checked, findings = 0, []
    for oid, signature, relid, table, is_trigger in conn.execute(_FUNCTIONS, (schemas,)):
        where = f"{signature} on {table}" if is_trigger else signature
        if is_trigger and not relid:
            findings.append((where, "error", "trigger function attached to no table: unchecked"))
            continue
        checked += 1
        for level, sqlstate, lineno, message, detail, hint in conn.execute(_CHECK, (oid, relid)):
            text = f"{message} (line {lineno or '-'}, sqlstate {sqlstate})"
            text += "".join(f"; {x}" for x in (detail, hint) if x)
            findings.append((where, level, text))
    return checked, findings


def _waiver(finding: Finding) -> tuple[str, str] | None:
    name = finding[0].split(" on ")[0]
    for fn, pattern in WAIVED:
        if name == fn and re.fullmatch(pattern, finding[2]):
            return fn, pattern
    return None


@pytest.fixture(scope="module")
def checked_db(make_database: Any) -> Iterator[psycopg.Connection[Any]]:
    dsn = make_database(migrated=True)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        available = conn.execute(
            "select 1 from pg_available_extensions where name = 'plpgsql_check'"
        ).fetchone()
        if available is None:
            version = conn.info.server_version // 10000
            reason = (
                f"plpgsql_check is not installed on this server (PostgreSQL {version}); "
                "CI installs postgresql-15-plpgsql-check for the machine's PostgreSQL 15"
            )
            if os.environ.get("DPP_REQUIRE_PLPGSQL_CHECK") == "1":
                pytest.fail(reason + ", and DPP_REQUIRE_PLPGSQL_CHECK=1 requires it")
            pytest.skip(reason)
        # Its own schema (not public: splinter 0014), and only pg_catalog on the path, so
        # every function name below comes out schema-qualified.
        conn.execute("create schema plpgsql_check")
        conn.execute("create extension plpgsql_check schema plpgsql_check")
        conn.execute("set search_path = pg_catalog")
        yield conn


def test_plpgsql_functions_are_clean(checked_db: psycopg.Connection[Any]) -> None:
    checked, findings = check_functions(checked_db, ["public", "dpp"])
    functions = checked_db.execute(
        "select count(*) from pg_proc p join pg_language l on l.oid = p.prolang"
        " where l.lanname = 'plpgsql' and p.pronamespace in ('public'::regnamespace,"
        " 'dpp'::regnamespace)"
    ).fetchone()
    assert functions is not None and checked >= functions[0] > 10, (checked, functions)
    failing = [f for f in findings if _waiver(f) is None]
    assert failing == [], "\n".join(" | ".join(f) for f in failing)
    used = {_waiver(f) for f in findings}
    assert used >= set(WAIVED), f"stale waivers: {set(WAIVED) - used}"


def test_plpgsql_check_reports_planted_faults(checked_db: psycopg.Connection[Any]) -> None:
    """The same run finds an error, a performance, an extra and a security warning."""
    checked_db.execute("drop schema if exists plant_plpgsql cascade")
    checked_db.execute("create schema plant_plpgsql")
    try:
        checked_db.execute(
            """
            create table plant_plpgsql.t (id int primary key, name text);
            create function plant_plpgsql.broken(_name text) returns int
            language plpgsql volatile set search_path = '' as $$
            declare
                v_unused int;
                v_id int;
            begin
                select t.no_such_column into v_id from plant_plpgsql.t as t;
                execute 'select id from plant_plpgsql.t where name = ''' || _name || '''';
                return v_id;
            end $$;
            create function plant_plpgsql.pure() returns int
            language plpgsql volatile set search_path = '' as $$ begin return 1; end $$;
            """
        )
        _, findings = check_functions(checked_db, ["plant_plpgsql"])
    finally:
        checked_db.execute("drop schema plant_plpgsql cascade")
    text = "\n".join(" | ".join(f) for f in findings)
    assert ("plant_plpgsql.broken(text)", "error") in {f[:2] for f in findings}, text
    assert "no_such_column" in text, text
    assert "unused variable" in text, text  # extra warning
    assert "SQL injection" in text, text  # security warning
    assert ("plant_plpgsql.pure()", "performance") in {f[:2] for f in findings}, text
