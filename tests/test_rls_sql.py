"""Row-level security and privileges for plain SQL sessions (psql-style, no RPC).

Each attempt connects as the authenticator, switches to an API role and sets
request.jwt.claims transaction-locally, exactly like PostgREST, then runs one statement and
rolls back. A user can neither see nor change another brand's rows, nor break an invariant
of their own brand's rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from _api_helpers import (
    DPP_TABLES,
    Brand,
    World,
    fingerprint,
    make_brand,
    make_world,
    new_id,
    stored,
)


@pytest.fixture(scope="module")
def world(api: Any) -> World:
    return make_world(api)


def _claims(user: str | None, role: str = "authenticated") -> dict[str, Any]:
    claims: dict[str, Any] = {"role": role, "exp": int(time.time()) + 600}
    if user is not None:
        claims["sub"] = user
    return claims


@contextmanager
def sql_session(dsn: str, role: str, claims: dict[str, Any] | None) -> Iterator[Any]:
    """One transaction as `role` with the given claims, always rolled back."""
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (role, "" if claims is None else json.dumps(claims)),
        )
        try:
            yield conn
        finally:
            conn.rollback()


def attempt(
    dsn: str, role: str, claims: dict[str, Any] | None, statement: str, params: tuple[Any, ...] = ()
) -> str | int:
    """Run one statement; return its SQLSTATE if refused, else the number of rows it touched."""
    with sql_session(dsn, role, claims) as conn:
        try:
            cur = conn.execute(statement, params)
        except psycopg.Error as exc:
            assert exc.sqlstate is not None
            return exc.sqlstate
        return cur.rowcount


def _key(table: str) -> str:
    return "id" if table == "brands" else "brand_id"


@pytest.mark.parametrize("table", DPP_TABLES)
@pytest.mark.parametrize("role", ["viewer", "owner"])
def test_select_shows_only_own_brand(
    authenticator_dsn: str, world: World, table: str, role: str
) -> None:
    with sql_session(authenticator_dsn, "authenticated", _claims(world.a.members[role])) as conn:
        brands = {r[0] for r in conn.execute(f"select {_key(table)}::text from dpp.{table}")}
    assert brands == {world.a.id}


@pytest.mark.parametrize(
    "claims",
    [
        None,
        {"role": "authenticated"},
        {"role": "service_role"},
        {"role": "authenticated", "sub": "x"},
    ],
    ids=["none", "no-sub", "service-claims", "bad-sub"],
)
@pytest.mark.parametrize("table", DPP_TABLES)
def test_authenticated_without_identity_sees_nothing(
    authenticator_dsn: str, world: World, table: str, claims: dict[str, Any] | None
) -> None:
    with sql_session(authenticator_dsn, "authenticated", claims) as conn:
        assert conn.execute(f"select count(*) from dpp.{table}").fetchone() == (0,)


def test_expired_claims_see_nothing(authenticator_dsn: str, world: World) -> None:
    claims = _claims(world.a.members["owner"]) | {"exp": int(time.time()) - 1}
    with sql_session(authenticator_dsn, "authenticated", claims) as conn:
        assert conn.execute("select count(*) from dpp.batches").fetchone() == (0,)


FOREIGN_WRITES = [
    ("insert into dpp.brands (name) values ('Mine now')", "42501"),
    ("update dpp.brands set name = 'x' where id = %(b)s", "42501"),
    ("delete from dpp.brands where id = %(b)s", "42501"),
    (
        "insert into dpp.brand_members (brand_id, user_id, role) values (%(b)s, %(me)s, 'owner')",
        "42501",
    ),
    ("update dpp.brand_members set role = 'viewer' where brand_id = %(b)s", 0),
    ("delete from dpp.brand_members where brand_id = %(b)s", 0),
    ("insert into dpp.products (brand_id, name) values (%(b)s, 'x')", "42501"),
    ("update dpp.products set name = 'x' where brand_id = %(b)s", 0),
    ("delete from dpp.products where brand_id = %(b)s", "42501"),
    (
        "insert into dpp.batches (brand_id, product_id, batch_number) "
        "values (%(b)s, %(bp)s, 'X-1')",
        "42501",
    ),
    ("update dpp.batches set quantity = 1 where brand_id = %(b)s", 0),
    ("delete from dpp.batches where brand_id = %(b)s", "42501"),
]


@pytest.mark.parametrize(("statement", "outcome"), FOREIGN_WRITES, ids=lambda v: str(v)[:60])
def test_owner_of_a_cannot_change_brand_b(
    authenticator_dsn: str, db_dsn: str, world: World, statement: str, outcome: str | int
) -> None:
    owner = world.a.members["owner"]
    params = {"b": world.b.id, "bp": world.b.product_id, "me": owner}
    before = fingerprint(db_dsn, world.b.id)
    with sql_session(authenticator_dsn, "authenticated", _claims(owner)) as conn:
        try:
            result: str | int = conn.execute(statement, params).rowcount  # type: ignore[arg-type]
        except psycopg.Error as exc:
            result = exc.sqlstate or "?"
    assert result == outcome
    assert fingerprint(db_dsn, world.b.id) == before


def _insert_batch(columns: str, values: str) -> str:
    return (
        f"insert into dpp.batches (brand_id, product_id, batch_number{columns}) "
        f"values (%(a)s, %(ap)s, %(n)s{values})"
    )


INVARIANTS = [
    # field rules (CHECK constraints)
    (_insert_batch("", "").replace("%(n)s", "'A B'"), "23514"),
    (_insert_batch("", "").replace("%(n)s", "'..'"), "23514"),
    (_insert_batch("", "").replace("%(n)s", "'.'"), "23514"),
    (_insert_batch("", "").replace("%(n)s", "''"), "23514"),
    (_insert_batch("", "").replace("%(n)s", "repeat('A', 21)"), "23514"),
    (_insert_batch("", "").replace("%(n)s", "'é'"), "23514"),
    (_insert_batch(", quantity", ", 0"), "23514"),
    (_insert_batch(", production_date", ", 'infinity'"), "23514"),
    (_insert_batch(", facility_ref", ", ' FAC'"), "23514"),
    (_insert_batch(", facility_ref", ", E'FA\\tC'"), "23514"),
    (_insert_batch(", facility_ref", ", repeat('F', 129)"), "23514"),
    (_insert_batch(", attributes", ", '[]'"), "23514"),
    (_insert_batch(", attributes", ", jsonb_build_object('k', repeat('x', 65528))"), "23514"),
    (_insert_batch(", attributes", ", null"), "23502"),
    ("update dpp.batches set batch_number = '..' where brand_id = %(a)s", "23514"),
    ("update dpp.batches set quantity = -1 where brand_id = %(a)s", "23514"),
    (
        "insert into dpp.products (brand_id, name, gtin) values (%(a)s, 'P', '04006381333932')",
        "23514",
    ),
    (
        "insert into dpp.products (brand_id, name, gtin) values (%(a)s, 'P', '4006381333931')",
        "23514",
    ),
    ("insert into dpp.products (brand_id, name) values (%(a)s, ' P')", "23514"),
    # columns the caller may not write at all
    (_insert_batch(", created_by", ", %(me)s"), "42501"),
    (_insert_batch(", created_at", ", now() - interval '1 year'"), "42501"),
    (_insert_batch(", status", ", 'active'"), "42501"),
    (_insert_batch(", id", ", gen_random_uuid()"), "42501"),
    ("update dpp.batches set created_by = %(me)s where brand_id = %(a)s", "42501"),
    ("update dpp.batches set updated_by = %(me)s where brand_id = %(a)s", "42501"),
    ("update dpp.batches set created_at = now() where brand_id = %(a)s", "42501"),
    ("update dpp.batches set updated_at = now() where brand_id = %(a)s", "42501"),
    ("update dpp.batches set status_reason = 'x' where brand_id = %(a)s", "42501"),
    ("update dpp.batches set status_before_archive = 'active' where brand_id = %(a)s", "42501"),
    # status is writable, but only along the lifecycle (trigger): the batch is active
    ("update dpp.batches set status = 'destroyed' where brand_id = %(a)s", "42501"),  # admin+
    ("update dpp.batches set status = 'bogus' where brand_id = %(a)s", "22023"),
    ("update dpp.batches set status = null where brand_id = %(a)s", "22023"),
    ("update dpp.batches set status = 'on_hold' where brand_id = %(a)s", "22023"),  # no reason
    ("update dpp.batches set status = 'recalled' where brand_id = %(a)s", "42501"),  # admin+
    ("update dpp.batches set brand_id = %(b)s where brand_id = %(a)s", "42501"),
    ("update dpp.batches set product_id = %(bp)s where brand_id = %(a)s", "42501"),
    ("update dpp.products set brand_id = %(b)s where brand_id = %(a)s", "42501"),
    ("update dpp.brand_members set brand_id = %(b)s where brand_id = %(a)s", "42501"),
    ("delete from dpp.batches where brand_id = %(a)s", "42501"),
    # a batch of brand A cannot point at brand B's product
    (_insert_batch("", "").replace("%(ap)s", "%(bp)s"), "23503"),
]


@pytest.mark.parametrize(("statement", "sqlstate"), INVARIANTS, ids=lambda v: str(v)[-70:])
def test_editor_cannot_break_an_invariant(
    authenticator_dsn: str, db_dsn: str, world: World, statement: str, sqlstate: str
) -> None:
    editor = world.a.members["editor"]
    params = {
        "a": world.a.id,
        "ap": world.a.product_id,
        "b": world.b.id,
        "bp": world.b.product_id,
        "me": editor,
        "n": f"N-{new_id()[:8]}",
    }
    before = fingerprint(db_dsn)
    assert (
        attempt(authenticator_dsn, "authenticated", _claims(editor), statement, params) == sqlstate
    )  # type: ignore[arg-type]
    assert fingerprint(db_dsn) == before


@pytest.mark.parametrize(
    ("role", "statement", "outcome"),
    [
        ("viewer", _insert_batch("", ""), "42501"),
        ("viewer", "update dpp.batches set quantity = 5 where brand_id = %(a)s", 0),
        ("viewer", "insert into dpp.products (brand_id, name) values (%(a)s, 'P')", "42501"),
        (
            "editor",
            "insert into dpp.brand_members (brand_id, user_id, role) "
            "values (%(a)s, %(new)s, 'viewer')",
            "42501",
        ),
        ("editor", "update dpp.brand_members set role = 'owner' where user_id = %(me)s", 0),
        ("editor", "delete from dpp.brand_members where brand_id = %(a)s", 0),
        (
            "admin",
            "insert into dpp.brand_members (brand_id, user_id, role) "
            "values (%(a)s, %(new)s, 'owner')",
            "42501",
        ),
        (
            "admin",
            "insert into dpp.brand_members (brand_id, user_id, role) "
            "values (%(a)s, %(new)s, 'admin')",
            "42501",
        ),
        ("admin", "update dpp.brand_members set role = 'owner' where user_id = %(me)s", 0),
        ("admin", "update dpp.brand_members set role = 'owner' where role = 'viewer'", "42501"),
        ("admin", "update dpp.brand_members set role = 'viewer' where role = 'owner'", 0),
        ("admin", "delete from dpp.brand_members where role in ('owner', 'admin')", 0),
        # the lifecycle trigger: active -> destroyed is no transition, whoever asks
        ("admin", "update dpp.batches set status = 'destroyed' where brand_id = %(a)s", "22023"),
        ("owner", "update dpp.batches set status = 'destroyed' where brand_id = %(a)s", "22023"),
    ],
    ids=lambda v: str(v)[:50],
)
def test_brand_roles_limit_plain_sql(
    authenticator_dsn: str, db_dsn: str, world: World, role: str, statement: str, outcome: str | int
) -> None:
    me = world.a.members[role]
    params = {"a": world.a.id, "ap": world.a.product_id, "me": me, "new": new_id(), "n": "R-1"}
    before = fingerprint(db_dsn)
    assert attempt(authenticator_dsn, "authenticated", _claims(me), statement, params) == outcome  # type: ignore[arg-type]
    assert fingerprint(db_dsn) == before


def test_plain_sql_writes_that_are_allowed_keep_the_audit_columns(
    authenticator_dsn: str, world: World
) -> None:
    """An editor's own insert is stamped with their id; two updates in one transaction
    (the same now()) still move updated_at forward."""
    editor = world.a.members["editor"]
    with sql_session(authenticator_dsn, "authenticated", _claims(editor)) as conn:
        row = conn.execute(
            "insert into dpp.batches (brand_id, product_id, batch_number) values (%s, %s, 'OK-1') "
            "returning id, created_by::text, updated_by::text, created_at = updated_at, status",
            (world.a.id, world.a.product_id),
        ).fetchone()
        assert row is not None and row[1:] == (editor, editor, True, "active")
        stamps = [
            conn.execute(
                "update dpp.batches set quantity = 2 where id = %s returning updated_at", (row[0],)
            ).fetchone()
            for _ in range(3)
        ]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


@pytest.mark.parametrize(
    "statement",
    [
        "select count(*) from dpp.batches",
        "select count(*) from dpp.brand_members",
        "select * from dpp.my_brand_ids()",
        "select dpp.require_brand_role(gen_random_uuid(), 'viewer')",
        "insert into dpp.brands (name) values ('x')",
        "select count(*) from dpp_meta.migration_history",
    ],
)
def test_anon_reaches_no_data(authenticator_dsn: str, statement: str) -> None:
    assert attempt(authenticator_dsn, "anon", {"role": "anon"}, statement) == "42501"


@pytest.mark.parametrize("role", ["authenticated", "service_role"])
def test_api_roles_cannot_read_migration_history(authenticator_dsn: str, role: str) -> None:
    assert (
        attempt(
            authenticator_dsn,
            role,
            {"role": role},
            "select count(*) from dpp_meta.migration_history",
        )
        == "42501"
    )


def test_service_role_policies_work_without_bypassrls(db_dsn: str, world: World) -> None:
    """The explicit service_role policies let a member of service_role that lacks BYPASSRLS
    read and write every brand; without them it would see nothing. The temporary role lives
    only inside this rolled-back transaction."""
    with psycopg.connect(db_dsn, autocommit=False) as conn:
        role = f"dpp_test_svc_{new_id()[:8]}"
        conn.execute(f"create role {role} nologin inherit nobypassrls")
        conn.execute(f"grant service_role to {role}")
        conn.execute(
            "select set_config('role', %s, true), "
            "set_config('request.jwt.claims', '{\"role\":\"service_role\"}', true)",
            (role,),
        )
        assert conn.execute(
            "select rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone() == (False,)
        seen = {r[0] for r in conn.execute("select brand_id::text from dpp.batches")}
        assert {world.a.id, world.b.id} <= seen
        updated = conn.execute(
            "update dpp.batches set quantity = 9 where id = %s", (world.b.batch_id,)
        ).rowcount
        assert updated == 1
        conn.rollback()
    assert stored(db_dsn, "select count(*) from pg_roles where rolname = %s", role) == [(0,)]


# -- the lifecycle in plain SQL ----------------------------------------------------------------


@pytest.fixture(scope="module")
def recalled(api: Any) -> Brand:
    """A brand of its own whose batch the owner has recalled (through the API)."""
    brand = make_brand(api, "R")
    resp = api.as_user(brand.members["owner"]).rpc(
        "set_product_batch_status",
        {
            "_brand_id": brand.id,
            "_batch_id": brand.batch_id,
            "_status": "recalled",
            "_reason": "Contamination",
        },
    )
    assert resp.status == 200, resp.body
    return brand


@pytest.mark.parametrize("role", ["editor", "owner"])
@pytest.mark.parametrize(
    "statement",
    [
        "update dpp.batches set quantity = 9 where id = %(batch)s",
        "update dpp.batches set attributes = '{\"x\": 1}' where id = %(batch)s",
        "update dpp.batches set batch_number = 'NEW-1' where id = %(batch)s",
        "update dpp.batches set facility_ref = facility_ref where id = %(batch)s",  # no-op too
        # a restore-like move plus a metadata change in one statement
        "update dpp.batches set status = 'archived', quantity = 3 where id = %(batch)s",
        "update dpp.batches set status = null, quantity = 3 where id = %(batch)s",
    ],
)
def test_frozen_metadata_holds_for_plain_sql(
    authenticator_dsn: str, db_dsn: str, recalled: Brand, role: str, statement: str
) -> None:
    before = fingerprint(db_dsn, recalled.id)
    claims = _claims(recalled.members[role])
    assert (
        attempt(authenticator_dsn, "authenticated", claims, statement, {"batch": recalled.batch_id})  # type: ignore[arg-type]
        == "22023"
    )
    assert fingerprint(db_dsn, recalled.id) == before


def test_frozen_metadata_holds_for_the_table_owner(db_dsn: str, recalled: Brand) -> None:
    """The rule is the table's: a superuser session without claims meets it too."""
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("update dpp.batches set quantity = 1 where id = %s", (recalled.batch_id,))
        assert caught.value.sqlstate == "22023"
        conn.rollback()


def test_plain_sql_status_change_follows_the_lifecycle(
    authenticator_dsn: str, world: World
) -> None:
    """An admin may recall by plain SQL when the reason is set (dpp.reason); the trigger keeps
    status_reason and appends the event. Rolled back."""
    admin = world.a.members["admin"]
    with sql_session(authenticator_dsn, "authenticated", _claims(admin)) as conn:
        conn.execute("select set_config('dpp.reason', 'Customer complaint', true)")
        row = conn.execute(
            "update dpp.batches set status = 'recalled' where id = %s "
            "returning status, status_reason",
            (world.a.batch_id,),
        ).fetchone()
        assert row == ("recalled", "Customer complaint")
        event = conn.execute(
            "select action, actor_id::text, changes, reason from dpp.batch_events "
            "where batch_id = %s order by id desc limit 1",
            (world.a.batch_id,),
        ).fetchone()
        assert event == (
            "status",
            admin,
            {"status": ["active", "recalled"]},
            "Customer complaint",
        )
