"""Structural checks on the migrated catalog. They fail on extras, not only on omissions:
the exact RPCs, policies, privileges and definer functions (splinter-style self-lint).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

API_ROLES = ("anon", "authenticated", "service_role")
RPCS = {
    "create_brand": ("_name text", "jsonb", "v", 0),
    "add_brand_member": ("_brand_id uuid, _user_id uuid, _role text", "jsonb", "v", 0),
    "remove_brand_member": ("_brand_id uuid, _user_id uuid", "jsonb", "v", 0),
    "create_product": (
        "_brand_id uuid, _name text, _gtin text, _attributes jsonb",
        "jsonb",
        "v",
        2,
    ),
    "create_product_batch": (
        "_brand_id uuid, _product_id uuid, _batch_number text, "
        "_production_date date, _quantity integer, _facility_ref text, "
        "_attributes jsonb",
        "jsonb",
        "v",
        4,
    ),
    "list_product_batches": ("_brand_id uuid, _product_id uuid", "record", "s", 0),
    "update_product_batch": (
        "_brand_id uuid, _batch_id uuid, _patch jsonb, "
        "_expected_updated_at timestamp with time zone",
        "jsonb",
        "v",
        1,
    ),
    "set_product_batch_status": (
        "_brand_id uuid, _batch_id uuid, _status text, _reason text, "
        "_expected_updated_at timestamp with time zone",
        "jsonb",
        "v",
        2,
    ),
    "list_product_batch_history": ("_brand_id uuid, _batch_id uuid", "record", "s", 0),
    "get_product_batch": ("_brand_id uuid, _batch_id uuid", "jsonb", "s", 0),
    "find_product_batch": (
        "_brand_id uuid, _product_id uuid, _batch_number text",
        "jsonb",
        "s",
        0,
    ),
    "list_brand_batches": (
        "_brand_id uuid, _status text, _produced_from date, _produced_to date, "
        "_facility_ref text, _limit integer, _after text",
        "record",
        "s",
        6,
    ),
}
SETOF_RPCS = {"list_product_batches", "list_product_batch_history", "list_brand_batches"}
TABLES = {"brands", "brand_members", "products", "batches", "batch_events"}
# (table, policy, command, roles)
POLICIES = {
    ("brands", "select_member", "SELECT", "{authenticated}"),
    ("brands", "select_service", "SELECT", "{service_role}"),
    ("brands", "insert_service", "INSERT", "{service_role}"),
    ("brand_members", "select_member", "SELECT", "{authenticated}"),
    ("brand_members", "insert_manager", "INSERT", "{authenticated}"),
    ("brand_members", "update_manager", "UPDATE", "{authenticated}"),
    ("brand_members", "delete_manager", "DELETE", "{authenticated}"),
    ("brand_members", "select_service", "SELECT", "{service_role}"),
    ("brand_members", "insert_service", "INSERT", "{service_role}"),
    ("brand_members", "update_service", "UPDATE", "{service_role}"),
    ("brand_members", "delete_service", "DELETE", "{service_role}"),
    ("batch_events", "select_member", "SELECT", "{authenticated}"),
    ("batch_events", "select_service", "SELECT", "{service_role}"),
    *(
        (t, p, c, r)
        for t in ("products", "batches")
        for p, c, r in (
            ("select_member", "SELECT", "{authenticated}"),
            ("insert_editor", "INSERT", "{authenticated}"),
            ("update_editor", "UPDATE", "{authenticated}"),
            ("select_service", "SELECT", "{service_role}"),
            ("insert_service", "INSERT", "{service_role}"),
            ("update_service", "UPDATE", "{service_role}"),
        )
    ),
}
# Helpers anon may execute: they only read the caller's own claims.
ANON_HELPERS = {"jwt_claims", "jwt_role", "current_user_id", "is_service", "require_caller"}
# SECURITY DEFINER functions and their volatility: the membership helpers (stable) and the
# trigger that writes the audit trail (no API role may insert events itself).
DEFINERS = {"my_brand_ids": "s", "my_brand_ids_with_role": "s", "tg_batches__record_event": "v"}
# Privileges per (table, role): table-level, then column-level INSERT / UPDATE.
TABLE_PRIVILEGES = {
    ("brands", "authenticated"): {"SELECT"},
    ("brands", "service_role"): {"SELECT", "INSERT(name)"},
    **{
        ("brand_members", r): {
            "SELECT",
            "DELETE",
            "INSERT(brand_id)",
            "INSERT(user_id)",
            "INSERT(role)",
            "UPDATE(role)",
        }
        for r in API_ROLES[1:]
    },
    **{
        ("products", r): {
            "SELECT",
            "INSERT(brand_id)",
            "INSERT(name)",
            "INSERT(gtin)",
            "INSERT(attributes)",
            "UPDATE(name)",
            "UPDATE(gtin)",
            "UPDATE(attributes)",
        }
        for r in API_ROLES[1:]
    },
    **{
        ("batches", r): {"SELECT"}
        | {
            f"{p}({c})"
            for p in ("INSERT", "UPDATE")
            for c in ("batch_number", "production_date", "quantity", "facility_ref", "attributes")
        }
        | {"INSERT(brand_id)", "INSERT(product_id)", "UPDATE(status)"}
        for r in API_ROLES[1:]
    },
    # append-only, written by a trigger: read access only
    **{("batch_events", r): {"SELECT"} for r in API_ROLES[1:]},
}
# Non-internal triggers per table.
TRIGGERS = {
    "brands": {"tg_brands__audit_columns"},
    "brand_members": {"tg_brand_members__audit_columns"},
    "products": {"tg_products__audit_columns"},
    "batches": {
        "tg_batches__audit_columns",
        "tg_batches__lifecycle",
        "tg_batches__record_event",
    },
    "batch_events": {"tg_batch_events__append_only"},
}


@pytest.fixture(scope="module")
def catalog(db_dsn: str) -> Any:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


def rows(conn: Any, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(conn.execute(query, params).fetchall())


def test_public_holds_exactly_the_rpcs(catalog: Any) -> None:
    found = rows(
        catalog,
        """
        select p.proname, pg_get_function_identity_arguments(p.oid),
               case when p.proretset then 'record' else format_type(p.prorettype, null) end,
               p.provolatile, p.pronargdefaults, p.prokind, p.prosecdef, p.proretset
        from pg_proc p where p.pronamespace = 'public'::regnamespace order by 1""",
    )
    assert {r[0] for r in found} == set(RPCS), "unexpected or missing functions in public"
    assert len(found) == len(RPCS), "overloads in public"
    for name, args, returns, volatility, defaults, kind, definer, retset in found:
        assert (args, returns, volatility, defaults) == RPCS[name], name
        assert kind == "f" and not definer, name
        assert retset == (name in SETOF_RPCS), name


@pytest.mark.parametrize(
    ("rpc", "columns"),
    [
        (
            "list_product_batches",
            "id uuid, brand_id uuid, product_id uuid, batch_number text, "
            "status text, production_date date, quantity integer, facility_ref text, "
            "attributes jsonb, created_at text, updated_at text",
        ),
        (
            "list_brand_batches",
            "id uuid, brand_id uuid, product_id uuid, batch_number text, "
            "status text, status_reason text, status_before_archive text, "
            "production_date date, quantity integer, facility_ref text, attributes jsonb, "
            "created_at text, updated_at text, created_by uuid, updated_by uuid, "
            "digital_link text, cursor text",
        ),
        (
            "list_product_batch_history",
            "id bigint, batch_id uuid, occurred_at text, action text, actor_id uuid, "
            "actor_role text, changes jsonb, reason text",
        ),
    ],
)
def test_set_returning_rpcs_return_a_table(catalog: Any, rpc: str, columns: str) -> None:
    [(result,)] = rows(catalog, "select pg_get_function_result(%s::regproc)", f"public.{rpc}")
    assert result == f"TABLE({columns})"


def test_every_rpc_is_plpgsql_and_documented(catalog: Any) -> None:
    for name, lang, comment, argnames in rows(
        catalog,
        """
            select p.proname, l.lanname, obj_description(p.oid, 'pg_proc'), p.proargnames
            from pg_proc p join pg_language l on l.oid = p.prolang
            where p.pronamespace = 'public'::regnamespace""",
    ):
        assert lang == "plpgsql", name
        assert comment, f"{name} has no comment"
        summary, _, body = comment.partition("\n")
        assert summary.strip() and body.strip(), f"{name}: summary line plus a body"
        for arg in argnames:
            if arg.startswith("_"):
                assert f"{arg}:" in body, f"{name}: comment does not document {arg}"


def test_no_relation_in_public(catalog: Any) -> None:
    assert (
        rows(catalog, "select relname from pg_class where relnamespace = 'public'::regnamespace")
        == []
    )


def test_every_function_pins_search_path(catalog: Any) -> None:
    offenders = rows(
        catalog,
        """
        select p.oid::regprocedure::text from pg_proc p
        where p.pronamespace in ('public'::regnamespace, 'dpp'::regnamespace)
          and not coalesce(p.proconfig @> array['search_path=""'], false)""",
    )
    assert offenders == []


def test_security_definer_only_for_the_membership_helpers_and_audit_trigger(
    catalog: Any,
) -> None:
    found = rows(
        catalog,
        """
        select p.proname, n.nspname, p.provolatile from pg_proc p
        join pg_namespace n on n.oid = p.pronamespace
        where p.prosecdef and n.nspname in ('public', 'dpp', 'dpp_meta')""",
    )
    assert {name: (schema, v) for name, schema, v in found} == {
        d: ("dpp", v) for d, v in DEFINERS.items()
    }


def test_the_definer_trigger_function_is_callable_by_no_api_role(catalog: Any) -> None:
    """It can only fire as a trigger: it returns trigger and no API role may execute it."""
    [(rettype, *executable)] = rows(
        catalog,
        """
        select p.prorettype::regtype::text, has_function_privilege('anon', p.oid, 'EXECUTE'),
               has_function_privilege('authenticated', p.oid, 'EXECUTE'),
               has_function_privilege('service_role', p.oid, 'EXECUTE')
        from pg_proc p where p.oid = 'dpp.tg_batches__record_event'::regproc""",
    )
    assert (rettype, executable) == ("trigger", [False, False, False])


def test_no_function_executable_by_public(catalog: Any) -> None:
    offenders = rows(
        catalog,
        """
        select p.oid::regprocedure::text from pg_proc p
        where p.pronamespace in ('public'::regnamespace, 'dpp'::regnamespace)
          and (p.proacl is null
               or exists (select 1 from aclexplode(p.proacl) a
                          where a.grantee = 0 and a.privilege_type = 'EXECUTE'))""",
    )
    assert offenders == []


def test_anon_executes_only_rpcs_and_claim_helpers(catalog: Any) -> None:
    found = rows(
        catalog,
        """
        select n.nspname, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('public', 'dpp', 'dpp_meta')
          and has_function_privilege('anon', p.oid, 'EXECUTE')""",
    )
    assert set(found) == {("public", r) for r in RPCS} | {("dpp", h) for h in ANON_HELPERS}


def test_api_roles_execute_every_rpc(catalog: Any) -> None:
    for role in API_ROLES:
        missing = rows(
            catalog,
            """
            select p.proname from pg_proc p where p.pronamespace = 'public'::regnamespace
              and not has_function_privilege(%s, p.oid, 'EXECUTE')""",
            role,
        )
        assert missing == [], role


def test_dpp_tables_are_exactly_these_with_rls(catalog: Any) -> None:
    found = rows(
        catalog,
        """
        select c.relname, c.relkind, c.relrowsecurity from pg_class c
        where c.relnamespace = 'dpp'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')""",
    )
    assert {r[0] for r in found} == TABLES
    assert all(kind == "r" and rls for _, kind, rls in found), found


def test_exact_policies(catalog: Any) -> None:
    found = rows(
        catalog,
        """
        select tablename, policyname, cmd, roles::text, permissive from pg_policies
        where schemaname in ('public', 'dpp', 'dpp_meta')""",
    )
    assert {r[:4] for r in found} == POLICIES
    assert len(found) == len(POLICIES)
    assert {r[4] for r in found} == {"PERMISSIVE"}


def test_policies_evaluate_helpers_once_per_statement(catalog: Any) -> None:
    """Every dpp.* call in a user policy sits inside a sub-select (an initPlan)."""
    for table, name, qual, check in rows(
        catalog,
        """
            select tablename, policyname, coalesce(qual, ''), coalesce(with_check, '')
            from pg_policies where schemaname = 'dpp' and roles = '{authenticated}'""",
    ):
        for expr in (qual, check):
            assert expr.count("dpp.") == expr.count("SELECT dpp."), (table, name, expr)


def test_exact_table_privileges_of_api_roles(catalog: Any) -> None:
    found: dict[tuple[str, str], set[str]] = {}
    for table, role, privilege in rows(
        catalog,
        """
            select c.relname, r.rolname, a.privilege_type from pg_class c
            cross join lateral aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee
            where c.relnamespace = 'dpp'::regnamespace and r.rolname = any(%s)""",
        list(API_ROLES),
    ):
        found.setdefault((table, role), set()).add(privilege)
    for table, role, column, privilege in rows(
        catalog,
        """
            select c.relname, r.rolname, att.attname, a.privilege_type from pg_class c
            join pg_attribute att on att.attrelid = c.oid and att.attnum > 0
            cross join lateral aclexplode(att.attacl) a join pg_roles r on r.oid = a.grantee
            where c.relnamespace = 'dpp'::regnamespace and r.rolname = any(%s)""",
        list(API_ROLES),
    ):
        found.setdefault((table, role), set()).add(f"{privilege}({column})")
    assert found == TABLE_PRIVILEGES


def test_no_table_privilege_for_public_or_anon(catalog: Any) -> None:
    offenders = rows(
        catalog,
        """
        select c.oid::regclass::text from pg_class c
        where c.relnamespace in ('dpp'::regnamespace, 'dpp_meta'::regnamespace)
          and c.relkind in ('r', 'v', 'm', 'S', 'p', 'f')
          and (has_any_column_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
               or has_table_privilege('anon', c.oid, 'DELETE, TRUNCATE, TRIGGER')
               or exists (select 1 from aclexplode(c.relacl) a where a.grantee = 0))""",
    )
    assert offenders == []


def test_schemas_privileges(catalog: Any) -> None:
    for role in API_ROLES:
        assert rows(
            catalog,
            "select has_schema_privilege(%s, 'dpp', 'USAGE'), "
            "has_schema_privilege(%s, 'dpp', 'CREATE'), "
            "has_schema_privilege(%s, 'dpp_meta', 'USAGE'), "
            "has_schema_privilege(%s, 'dpp_meta', 'CREATE'), "
            "has_schema_privilege(%s, 'public', 'CREATE')",
            role,
            role,
            role,
            role,
            role,
        ) == [(True, False, False, False, False)], role


def test_nothing_in_dpp_meta_for_api_roles(catalog: Any) -> None:
    offenders = rows(
        catalog,
        """
        select c.relname, r.rolname from pg_class c
        cross join lateral aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee
        where c.relnamespace = 'dpp_meta'::regnamespace and r.rolname = any(%s)""",
        list(API_ROLES),
    )
    assert offenders == []


def test_every_foreign_key_has_a_leading_index(catalog: Any) -> None:
    fks = rows(
        catalog,
        """
        select con.conname, con.conrelid, con.conkey from pg_constraint con
        where con.contype = 'f' and con.connamespace = 'dpp'::regnamespace""",
    )
    assert len(fks) == 4
    for name, relid, conkey in fks:
        covered = rows(
            catalog,
            """
            select 1 from pg_index i where i.indrelid = %s
              and (i.indkey::int2[])[0:%s - 1] @> %s::int2[]
              and (i.indkey::int2[])[0:%s - 1] <@ %s::int2[]""",
            relid,
            len(conkey),
            conkey,
            len(conkey),
            conkey,
        )
        assert covered, f"foreign key {name} has no index led by its columns"


def test_every_dpp_table_has_its_triggers_and_brand_id(catalog: Any) -> None:
    assert set(TRIGGERS) == TABLES
    for table in TABLES:
        triggers = rows(
            catalog,
            """
            select t.tgname from pg_trigger t
            where t.tgrelid = ('dpp.' || %s)::regclass and not t.tgisinternal
              and t.tgenabled = 'O'""",
            table,
        )
        assert {t for (t,) in triggers} == TRIGGERS[table], table
        key = "id" if table == "brands" else "brand_id"
        assert rows(
            catalog,
            "select 1 from pg_attribute where attrelid = ('dpp.' || %s)::regclass "
            "and attname = %s and attnotnull",
            table,
            key,
        ), table


def test_every_field_rule_is_a_check_constraint(catalog: Any) -> None:
    checks = {
        r[0]
        for r in rows(
            catalog,
            """
        select conname from pg_constraint
        where conrelid = 'dpp.batches'::regclass and contype = 'c'""",
        )
    }
    assert checks == {
        f"batches_{f}_check"
        for f in (
            "batch_number",
            "status",
            "status_before_archive",
            "status_reason",
            "production_date",
            "quantity",
            "facility_ref",
            "attributes",
        )
    }


def test_api_roles_exist_with_supabase_attributes(catalog: Any) -> None:
    found = dict(
        (r[0], r[1:])
        for r in rows(
            catalog,
            """
        select rolname, rolcanlogin, rolsuper from pg_roles where rolname = any(%s)""",
            list(API_ROLES),
        )
    )
    assert found == {r: (False, False) for r in API_ROLES}


def _catalog_state(conn: Any) -> list[tuple[Any, ...]]:
    return rows(
        conn,
        """
        select 'fn', p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)),
               coalesce(p.proacl::text, ''), coalesce(obj_description(p.oid, 'pg_proc'), '')
        from pg_proc p where p.pronamespace in ('public'::regnamespace, 'dpp'::regnamespace)
        union all
        select 'policy', tablename || '.' || policyname, md5(coalesce(qual, '')
               || coalesce(with_check, '')), roles::text, cmd
        from pg_policies where schemaname = 'dpp'
        union all
        select 'acl', c.relname, coalesce(c.relacl::text, ''),
               coalesce((select string_agg(a.attname || '=' || a.attacl::text, ',' order by 1)
                         from pg_attribute a where a.attrelid = c.oid and a.attacl is not null),
                        ''), ''
        from pg_class c where c.relnamespace = 'dpp'::regnamespace
        order by 1, 2""",
    )


def test_repeatable_files_are_idempotent(db_dsn: str) -> None:
    """Re-applying every repeatable file (twice, in one rolled-back transaction) succeeds and
    leaves functions, policies and privileges exactly as they were."""
    from dpp_batches.migrate import default_sql_dir

    files = sorted((default_sql_dir() / "repeatable").glob("*.sql"))
    assert files
    with psycopg.connect(db_dsn) as conn:
        before = _catalog_state(conn)
        for _ in range(2):
            for path in files:
                conn.execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type]
        assert _catalog_state(conn) == before
        conn.rollback()
