"""Catalog self-lint (src/dpp_batches/selflint.py, splinter-style) as tests.

* Our schemas (public, dpp, dpp_meta) have zero findings, apart from the waivers listed with
  their reasons in ``selflint.WAIVED`` (each of which must still occur: no stale waiver).
* For EACH lint, a violation planted in a scratch schema of a scratch database makes exactly
  the planted objects fire, and the compliant twins planted beside them do not.
* The PL/pgSQL/SQL tokeniser behind the pg-safeupdate lint, on plain strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dpp_batches import selflint
from dpp_batches.selflint import BY_NAME, WAIVED, is_waived, run_lints, unguarded_writes

# lint name -> (plant SQL, with {s} for the scratch schema; objects that must be found).
PLANTS: dict[str, tuple[str, set[str]]] = {
    "0001_unindexed_foreign_keys": (
        """
        create table {s}.parent (id int primary key, code int unique);
        create table {s}.bare (id int primary key, parent_id int references {s}.parent);
        create table {s}.indexed (id int primary key, parent_id int references {s}.parent);
        create index on {s}.indexed (parent_id);
        create table {s}.partial (id int primary key, parent_id int references {s}.parent);
        create index on {s}.partial (parent_id) where parent_id > 0;
        create table {s}.second (a int, parent_id int references {s}.parent);
        create index on {s}.second (a, parent_id);
        create table {s}.leading (parent_id int references {s}.parent, a int);
        create index on {s}.leading (parent_id, a);
        create table {s}.pair2 (a int, b int, primary key (a, b));
        create table {s}.pair (x int, y int, foreign key (y, x) references {s}.pair2 (a, b));
        create table {s}.pair_ok (x int, y int, foreign key (y, x) references {s}.pair2 (a, b));
        create index on {s}.pair_ok (x, y);
        """,
        {
            "{s}.bare.bare_parent_id_fkey",
            "{s}.partial.partial_parent_id_fkey",
            "{s}.second.second_parent_id_fkey",
            "{s}.pair.pair_y_x_fkey",
        },
    ),
    "0003_auth_rls_initplan": (
        """
        create table {s}.t (id int, owner_id text);
        alter table {s}.t enable row level security;
        create function {s}.uid() returns text language sql stable set search_path = '' as
            $$ select pg_catalog.current_setting('request.jwt.claims', true) $$;
        create function {s}.uid2() returns text language plpgsql stable set search_path = '' as
            $$ begin return {s}.uid(); end $$;
        create function {s}.not_identity() returns text language sql stable
            set search_path = '' as
            $$ select 'current_setting(x)' -- current_setting('y')
            $$;
        create function auth.uid() returns text language sql stable set search_path = '' as
            $$ select null::text $$;
        create policy direct on {s}.t for select to authenticated
            using (owner_id = current_setting('request.jwt.claims', true));
        create policy helper on {s}.t for update to authenticated
            using (owner_id = {s}.uid()) with check (owner_id = (select {s}.uid()));
        create policy chained on {s}.t for delete to authenticated
            using (owner_id = {s}.uid2());
        create policy supabase on {s}.t for insert to anon
            with check (owner_id = auth.uid());
        create policy wrapped on {s}.t for insert to authenticated
            with check (owner_id = (select {s}.uid2()) and id in (select length({s}.uid())));
        create policy plain on {s}.t for select to anon
            using (owner_id = {s}.not_identity());
        create policy literal on {s}.t for update to anon
            using (owner_id = 'current_setting(''x'') and auth.uid()');
        """,
        {"{s}.t.direct", "{s}.t.helper", "{s}.t.chained", "{s}.t.supabase"},
    ),
    "0006_multiple_permissive_policies": (
        """
        create table {s}.t (id int);
        alter table {s}.t enable row level security;
        create policy a on {s}.t for select to authenticated using (true);
        create policy b on {s}.t for all to authenticated using (id > 0);
        create policy c on {s}.t as restrictive for select to authenticated using (true);
        create policy d on {s}.t for insert to service_role with check (true);
        create table {s}.u (id int);
        alter table {s}.u enable row level security;
        create policy e on {s}.u for update to public using (true);
        create policy f on {s}.u for update to anon using (true);
        create policy g on {s}.u for delete to anon using (true);
        """,
        {"{s}.t", "{s}.u"},
    ),
    "0007_policy_exists_rls_disabled": (
        """
        create table {s}.off (id int);
        create policy p on {s}.off for select to authenticated using (true);
        create table {s}.on (id int);
        alter table {s}.on enable row level security;
        create policy p on {s}.on for select to authenticated using (true);
        create table {s}.none (id int);
        """,
        {"{s}.off"},
    ),
    "0008_rls_enabled_no_policy": (
        """
        create table {s}.bare (id int);
        alter table {s}.bare enable row level security;
        create table {s}.covered (id int);
        alter table {s}.covered enable row level security;
        create policy p on {s}.covered for select to authenticated using (true);
        create table {s}.off (id int);
        """,
        {"{s}.bare"},
    ),
    "0010_security_definer_view": (
        """
        create view {s}.definer as select 1 as x;
        grant select on {s}.definer to authenticated;
        create view {s}.anon_definer as select 1 as x;
        grant select on {s}.anon_definer to anon;
        create view {s}.invoker with (security_invoker = on) as select 1 as x;
        grant select on {s}.invoker to anon, authenticated;
        create view {s}.private as select 1 as x;
        revoke all on {s}.private from public;
        """,
        {"{s}.definer", "{s}.anon_definer"},
    ),
    "0011_function_search_path_mutable": (
        """
        create function {s}.loose() returns int language sql as $$ select 1 $$;
        create procedure {s}.loose_proc() language sql as $$ select 1 $$;
        create function {s}.pinned() returns int language sql set search_path = ''
            as $$ select 1 $$;
        """,
        {"{s}.loose()", "{s}.loose_proc()"},
    ),
    "0013_rls_disabled_in_public": (
        """
        create table {s}.open (id int);
        grant select on {s}.open to anon;
        create table {s}.column_open (id int, secret text);
        grant select (id) on {s}.column_open to authenticated;
        create table {s}.private (id int);
        create table {s}.protected (id int);
        alter table {s}.protected enable row level security;
        grant select on {s}.protected to anon, authenticated;
        """,
        {"{s}.open", "{s}.column_open"},
    ),
    "0024_rls_policy_always_true": (
        """
        create table {s}.t (id int);
        alter table {s}.t enable row level security;
        create policy upd on {s}.t for update to authenticated using (true);
        create policy ins on {s}.t for insert to anon with check (true);
        create policy ins_no_check on {s}.t for insert to public;
        create policy everything on {s}.t for all to authenticated using (1 = 1);
        create policy del on {s}.t for delete to authenticated using (((true)));
        create policy read on {s}.t for select to anon using (true);
        create policy service on {s}.t for delete to service_role using (true);
        create policy scoped on {s}.t for update to authenticated
            using (id > 0) with check (id > 0);
        create policy narrow on {s}.t as restrictive for update to authenticated using (true);
        """,
        {
            "{s}.t.upd",
            "{s}.t.ins",
            "{s}.t.ins_no_check",
            "{s}.t.everything",
            "{s}.t.del",
        },
    ),
    "0028_anon_security_definer_function_executable": (
        """
        create function {s}.definer() returns int language sql security definer
            set search_path = '' as $$ select 1 $$;
        revoke execute on function {s}.definer() from public;
        grant execute on function {s}.definer() to anon;
        create function {s}.private_definer() returns int language sql security definer
            set search_path = '' as $$ select 1 $$;
        revoke execute on function {s}.private_definer() from public;
        grant execute on function {s}.private_definer() to authenticated;
        create function {s}.invoker() returns int language sql
            set search_path = '' as $$ select 1 $$;
        grant execute on function {s}.invoker() to anon;
        """,
        {"{s}.definer()"},
    ),
    "0029_authenticated_security_definer_function_executable": (
        """
        create function {s}.definer() returns int language sql security definer
            set search_path = '' as $$ select 1 $$;
        revoke execute on function {s}.definer() from public;
        grant execute on function {s}.definer() to authenticated;
        create function {s}.public_definer() returns int language sql security definer
            set search_path = '' as $$ select 1 $$;
        grant execute on function {s}.public_definer() to public;
        create function {s}.private_definer() returns int language sql security definer
            set search_path = '' as $$ select 1 $$;
        revoke execute on function {s}.private_definer() from public;
        """,
        {"{s}.definer()", "{s}.public_definer()"},
    ),
    "safeupdate": (
        """
        create table {s}.t (a int primary key, b int);
        create function {s}.update_all() returns void language plpgsql set search_path = '' as
            $$ begin update {s}.t set b = 1; end $$;
        create function {s}.delete_all() returns void language sql set search_path = '' as
            $$ delete from {s}.t $$;
        create function {s}.where_in_subquery() returns void language plpgsql
            set search_path = '' as
            $$ begin
                update {s}.t set b = (select max(x.b) from {s}.t as x where x.a > 0);
            end $$;
        create function {s}.in_cte() returns bigint language sql set search_path = '' as
            $$ with d as (delete from {s}.t returning 1) select count(*) from d $$;
        create function {s}.guarded() returns void language plpgsql set search_path = '' as
            $$
            declare
                v_sql text := 'delete from {s}.t';  -- a string, not a statement
            begin
                -- update {s}.t set b = 1;
                /* delete from {s}.t; /* nested */ still a comment; */
                update {s}.t as t set b = 2 where t.a = 1;
                delete from {s}.t where a in (select 1);
                insert into {s}.t (a, b) values (1, 1)
                on conflict (a) do update set b = excluded.b;
                perform 1 from {s}.t for update;
                perform $q$ update {s}.t set b = 3 $q$;
                with d as (delete from {s}.t where a = 2 returning a) select count(*) from d
                    into v_sql;
            end
            $$;
        """,
        {"{s}.update_all()", "{s}.delete_all()", "{s}.where_in_subquery()", "{s}.in_cte()"},
    ),
    "rls_disabled": (
        """
        create table {s}.off (id int);
        create table {s}.on (id int);
        alter table {s}.on enable row level security;
        create view {s}.v as select 1 as x;
        """,
        {"{s}.off"},
    ),
}


@pytest.fixture(scope="module")
def lint_dsn(make_database: Any) -> str:
    """A migrated scratch database of this module's own (superuser DSN)."""
    dsn: str = make_database(migrated=True)
    return dsn


@pytest.fixture(scope="module")
def lint_conn(lint_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(lint_dsn, autocommit=True, prepare_threshold=None) as conn:
        yield conn


def test_every_lint_has_a_plant() -> None:
    assert set(PLANTS) == set(BY_NAME)
    assert {name[:4] for name in BY_NAME if name[0].isdigit()} == {
        "0001", "0003", "0006", "0007", "0008", "0010", "0011", "0013", "0024", "0028", "0029"
    }  # fmt: skip


def test_our_schemas_have_no_findings(lint_conn: psycopg.Connection[Any]) -> None:
    findings = run_lints(lint_conn)
    failing = [str(f) for f in findings if not is_waived(f)]
    assert failing == [], "\n".join(failing)
    waived = {(f.lint, f.object) for f in findings if is_waived(f)}
    assert waived == set(WAIVED), f"stale waivers: {set(WAIVED) - waived}"


def test_lints_cover_our_objects(lint_conn: psycopg.Connection[Any]) -> None:
    """The zero above is not for want of objects: each lint's schemas hold what it inspects."""
    counts = lint_conn.execute(
        """
        select (select count(*) from pg_policy p join pg_class c on c.oid = p.polrelid
                where c.relnamespace = 'dpp'::regnamespace),
               (select count(*) from pg_constraint where contype = 'f'
                and connamespace = 'dpp'::regnamespace),
               (select count(*) from pg_proc where pronamespace = 'public'::regnamespace),
               (select count(*) from pg_class where relkind = 'r'
                and relnamespace in ('dpp'::regnamespace, 'dpp_meta'::regnamespace))
        """
    ).fetchone()
    assert counts is not None and all(n > 0 for n in counts), counts
    identity = selflint.identity_functions(lint_conn)
    assert ("dpp", "current_user_id") in identity and ("dpp", "my_brand_ids") in identity


@pytest.mark.parametrize("lint_name", sorted(PLANTS))
def test_lint_fires_on_plant(lint_conn: psycopg.Connection[Any], lint_name: str) -> None:
    plant, expected = PLANTS[lint_name]
    schema = f"plant_{lint_name.split('_')[0]}"
    lint_conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
    lint_conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    needs_auth = "auth." in plant
    try:
        if needs_auth:
            lint_conn.execute("create schema auth")
        lint_conn.execute(plant.replace("{s}", schema))  # type: ignore[arg-type]
        findings = BY_NAME[lint_name].run(lint_conn, [schema])
        assert {f.lint for f in findings} <= {lint_name}
        assert {f.object for f in findings} == {e.replace("{s}", schema) for e in expected}, [
            str(f) for f in findings
        ]
        # Pointed at our own schemas, the planted objects are not seen.
        ours = BY_NAME[lint_name].run(lint_conn, selflint.OUR_SCHEMAS[lint_name])
        assert not [f for f in ours if f.object.startswith(schema + ".")]
    finally:
        lint_conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        if needs_auth:
            lint_conn.execute("drop schema auth cascade")


def test_0003_names_the_chain_through_helpers(lint_conn: psycopg.Connection[Any]) -> None:
    """A helper's identity call is reported with the path that reaches current_setting."""
    plant, _ = PLANTS["0003_auth_rls_initplan"]
    schema = "plant_chain"
    lint_conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
    lint_conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    lint_conn.execute("create schema auth")
    try:
        lint_conn.execute(plant.replace("{s}", schema))  # type: ignore[arg-type]
        details = {
            (f.object, f.detail) for f in BY_NAME["0003_auth_rls_initplan"].run(lint_conn, [schema])
        }
    finally:
        lint_conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        lint_conn.execute("drop schema auth cascade")
    chain = f"{schema}.uid2 -> {schema}.uid -> pg_catalog.current_setting"
    assert (f"{schema}.t.chained", f"using calls {chain} per row; wrap the call as (select …)") in (
        details
    )
    helper = {d for o, d in details if o == f"{schema}.t.helper"}
    assert helper == {
        f"using calls {schema}.uid -> pg_catalog.current_setting per row; "
        "wrap the call as (select …)"
    }  # its with check wraps the call


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("update t set a = 1", [("UPDATE", 1)]),
        ("delete from t;", [("DELETE", 1)]),
        ("delete from t where true", []),
        ("\n\nUPDATE t SET a = 1 WHERE a = 2;\nDELETE FROM t;", [("DELETE", 4)]),
        ("update t set a = (select 1 from u where u.x = t.x)", [("UPDATE", 1)]),
        ("with d as (delete from t returning *) select 1 from d where true", [("DELETE", 1)]),
        ("with d as (delete from t where a > 1 returning *) select 1", []),
        ("insert into t values (1) on conflict (a) do update set b = 2", []),
        ("select 1 from t for update; select 1 from t for no key update", []),
        ("-- delete from t\nselect 1", []),
        ("/* update t set a = 1; /* nested */ */ select 1", []),
        ("select 'delete from t', E'update t set a = \\'x\\'', $x$delete from t$x$", []),
        ('select 1 from "update" where true', []),
        ("merge into t using u on t.a = u.a when matched then delete", []),
        ("update t set a = 1 where current of c", []),
        ("begin delete from t returning a into v; end", [("DELETE", 1)]),
    ],
)
def test_unguarded_writes(source: str, expected: list[tuple[str, int]]) -> None:
    assert unguarded_writes(source) == expected


def test_cli_exit_codes(
    lint_dsn: str, lint_conn: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = lint_dsn
    assert selflint.main(["--dsn", dsn]) == 0
    assert "0 findings (2 waived)" in capsys.readouterr().out
    lint_conn.execute("create schema plant_cli")
    try:
        lint_conn.execute("create table plant_cli.t (id int)")
        assert selflint.main(["--dsn", dsn, "--schema", "plant_cli"]) == 1
        assert "rls_disabled: plant_cli.t: row-level security is disabled" in (
            capsys.readouterr().out
        )
    finally:
        lint_conn.execute("drop schema plant_cli cascade")
    assert selflint.main(["--dsn", "host=/nonexistent-dir dbname=x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("selflint: ") and len(err.strip().splitlines()) == 1
