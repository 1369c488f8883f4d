"""The audit trail (issue 6, part 2): every create, update and status change, through an RPC
or plain SQL, appends one event to dpp.batch_events with the actor, the time, the action, the
changed fields as {field: [old, new]} and the reason; nobody can change or delete events; the
history RPC reads them newest first, for members only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from _api_helpers import (
    Brand,
    assert_error,
    assert_invalid,
    batch_no,
    make_brand,
    new_id,
    ok,
)
from _lifecycle import new_batch, set_status

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "Aud")


@pytest.fixture(scope="module")
def su(db_dsn: str) -> Iterator[Conn]:
    """Superuser connection: verification reads, and the 'psql session' of some tests."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


def history(api: Any, brand: Brand, batch_id: str, who: str = "viewer") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ok(
        api.as_user(brand.members[who]).rpc(
            "list_product_batch_history",
            {"_brand_id": brand.id, "_batch_id": batch_id},
            method="GET",
        )
    )
    return rows


def events_digest(su: Conn) -> tuple[Any, ...] | None:
    return su.execute(
        "select count(*), md5(coalesce(string_agg(e::text, '|' order by e.id), '')) "
        "from dpp.batch_events e"
    ).fetchone()


def _claims(user: str) -> str:
    return json.dumps({"role": "authenticated", "sub": user, "exp": int(time.time()) + 600})


def test_rpc_create_update_and_status_change_are_recorded(api: Any, brand: Brand) -> None:
    editor, owner = brand.members["editor"], brand.members["owner"]
    number = batch_no("AU")
    created = ok(
        api.as_user(editor).rpc(
            "create_product_batch",
            {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": number,
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
                "_attributes": {"colour": "red"},
            },
        )
    )
    updated = ok(
        api.as_user(editor).rpc(
            "update_product_batch",
            {
                "_brand_id": brand.id,
                "_batch_id": created["id"],
                # production_date is sent unchanged: it must not appear in the changes
                "_patch": {"quantity": 600, "facility_ref": None, "production_date": "2026-01-15"},
            },
        )
    )
    held = ok(set_status(api.as_user(owner), brand.id, created["id"], "on_hold", _reason="QA"))

    rows = history(api, brand, created["id"])
    assert [r["action"] for r in rows] == ["status", "update", "create"]
    assert [r["occurred_at"] for r in rows] == [
        held["updated_at"],
        updated["updated_at"],
        created["created_at"],
    ]
    assert rows[0]["id"] > rows[1]["id"] > rows[2]["id"]
    assert {r["batch_id"] for r in rows} == {created["id"]}
    assert [(r["actor_id"], r["actor_role"]) for r in rows] == [
        (owner, "authenticated"),
        (editor, "authenticated"),
        (editor, "authenticated"),
    ]
    assert [r["changes"] for r in rows] == [
        {"status": ["active", "on_hold"]},
        {"quantity": [500, 600], "facility_ref": ["FAC-EU-01", None]},
        {
            "product_id": [None, brand.product_id],
            "batch_number": [None, number],
            "status": [None, "active"],
            "production_date": [None, "2026-01-15"],
            "quantity": [None, 500],
            "facility_ref": [None, "FAC-EU-01"],
            "attributes": [None, {"colour": "red"}],
        },
    ]
    assert [r["reason"] for r in rows] == ["QA", None, None]


def test_service_role_is_the_actor_role(api: Any, brand: Brand) -> None:
    batch = new_batch(api, brand)
    [row] = history(api, brand, batch["id"])
    assert (row["action"], row["actor_id"], row["actor_role"]) == ("create", None, "service_role")
    assert row["changes"]["attributes"] == [None, {}]
    assert "quantity" not in row["changes"]  # null on create: not a change


def test_plain_sql_changes_are_recorded_with_the_claims_actor(
    api: Any, brand: Brand, authenticator_dsn: str
) -> None:
    """An editor's psql-style insert and update (committed) appear in the history."""
    editor = brand.members["editor"]
    with psycopg.connect(authenticator_dsn) as conn:
        conn.execute(
            "select set_config('role', 'authenticated', true), "
            "set_config('request.jwt.claims', %s, true), "
            "set_config('dpp.reason', 'Stock count', true)",
            (_claims(editor),),
        )
        row = conn.execute(
            "insert into dpp.batches (brand_id, product_id, batch_number) "
            "values (%s, %s, %s) returning id::text",
            (brand.id, brand.product_id, batch_no("SQL")),
        ).fetchone()
        assert row is not None
        conn.execute("update dpp.batches set quantity = 7 where id = %s", (row[0],))
        conn.commit()
    rows = history(api, brand, row[0])
    assert [(r["action"], r["actor_id"], r["actor_role"], r["reason"]) for r in rows] == [
        ("update", editor, "authenticated", "Stock count"),
        ("create", editor, "authenticated", "Stock count"),
    ]
    assert rows[0]["changes"] == {"quantity": [None, 7]}


def test_plain_sql_without_claims_records_the_database_role(
    api: Any, brand: Brand, su: Conn
) -> None:
    """A superuser psql session (no claims): the actor is the database role it acts as."""
    batch = new_batch(api, brand)
    [(me,)] = su.execute("select current_user::text").fetchall()
    su.execute("update dpp.batches set facility_ref = 'FAC-9' where id = %s", (batch["id"],))
    with su.transaction():
        su.execute("set local role service_role")
        su.execute("update dpp.batches set quantity = 3 where id = %s", (batch["id"],))
    rows = history(api, brand, batch["id"])
    assert [(r["action"], r["actor_id"], r["actor_role"], r["changes"]) for r in rows[:2]] == [
        ("update", None, "service_role", {"quantity": [None, 3]}),
        ("update", None, me, {"facility_ref": [None, "FAC-9"]}),
    ]


def test_history_is_newest_first_and_complete(api: Any, brand: Brand, su: Conn) -> None:
    batch = new_batch(api, brand)
    service = api.as_service()
    for q in range(1, 6):
        ok(
            service.rpc(
                "update_product_batch",
                {"_brand_id": brand.id, "_batch_id": batch["id"], "_patch": {"quantity": q}},
            )
        )
    rows = history(api, brand, batch["id"])
    assert [r["changes"].get("quantity") for r in rows] == [
        [4, 5],
        [3, 4],
        [2, 3],
        [1, 2],
        [None, 1],
        None,
    ]
    keys = [(r["occurred_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)
    assert su.execute(
        "select count(*) from dpp.batch_events where batch_id = %s", (batch["id"],)
    ).fetchone() == (len(rows),)


def test_refused_calls_write_no_event(api: Any, brand: Brand, su: Conn) -> None:
    batch = new_batch(api, brand)
    before = events_digest(su)
    viewer, editor = api.as_user(brand.members["viewer"]), api.as_user(brand.members["editor"])
    args = {"_brand_id": brand.id, "_batch_id": batch["id"]}
    assert_error(
        viewer.rpc("update_product_batch", {**args, "_patch": {"quantity": 1}}),
        403,
        "42501",
        "Forbidden",
    )
    assert_invalid(editor.rpc("update_product_batch", {**args, "_patch": {"quantity": 0}}))
    assert_error(
        editor.rpc(
            "update_product_batch",
            {**args, "_patch": {"quantity": 1}, "_expected_updated_at": "2000-01-01T00:00:00Z"},
        ),
        409,
        "PT409",
        "Conflict",
    )
    assert_invalid(set_status(editor, brand.id, batch["id"], "on_hold"))  # no reason
    assert events_digest(su) == before


APPEND_ONLY = [
    "update dpp.batch_events set reason = 'rewritten'",
    "update dpp.batch_events set reason = 'x' where false",
    "delete from dpp.batch_events",
    "delete from dpp.batch_events where false",
    "truncate dpp.batch_events",
]


@pytest.mark.parametrize("statement", APPEND_ONLY)
def test_not_even_the_table_owner_can_change_events(db_dsn: str, su: Conn, statement: str) -> None:
    before = events_digest(su)
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.rollback()
    assert caught.value.sqlstate == "42501"
    assert "append-only" in str(caught.value)
    assert events_digest(su) == before


@pytest.mark.parametrize("role", ["owner", "service"])
@pytest.mark.parametrize(
    "statement",
    [
        *APPEND_ONLY,
        "insert into dpp.batch_events (brand_id, batch_id, occurred_at, action, actor_role, "
        "changes) values (%(b)s, %(batch)s, now(), 'update', 'authenticated', '{}')",
    ],
)
def test_api_roles_cannot_write_events(
    authenticator_dsn: str, brand: Brand, su: Conn, role: str, statement: str
) -> None:
    before = events_digest(su)
    db_role = "service_role" if role == "service" else "authenticated"
    claims = (
        json.dumps({"role": "service_role"}) if role == "service" else _claims(brand.members[role])
    )
    with psycopg.connect(authenticator_dsn) as conn:
        conn.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (db_role, claims),
        )
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(statement, {"b": brand.id, "batch": brand.batch_id})  # type: ignore[arg-type]
        conn.rollback()
    assert caught.value.sqlstate == "42501"
    assert events_digest(su) == before


def test_a_batch_with_history_cannot_be_deleted(su: Conn, brand: Brand) -> None:
    with pytest.raises(psycopg.Error) as caught, su.transaction():
        su.execute("delete from dpp.batches where id = %s", (brand.batch_id,))
    assert caught.value.sqlstate == "23503"


def test_members_read_only_their_brands_events(
    api: Any, brand: Brand, authenticator_dsn: str
) -> None:
    other = make_brand(api, "Au2", roles=("viewer",))
    with psycopg.connect(authenticator_dsn) as conn:
        for user, expected in (
            (brand.members["viewer"], {brand.id}),
            (other.members["viewer"], {other.id}),
            (new_id(), set()),
        ):
            conn.execute(
                "select set_config('role', 'authenticated', true), "
                "set_config('request.jwt.claims', %s, true)",
                (_claims(user),),
            )
            seen = {r[0] for r in conn.execute("select brand_id::text from dpp.batch_events")}
            conn.rollback()
            assert seen == expected
        conn.execute("select set_config('role', 'anon', true)")
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("select count(*) from dpp.batch_events")
        assert caught.value.sqlstate == "42501"


def test_history_rpc_access(api: Any, brand: Brand) -> None:
    other = make_brand(api, "Au3", roles=())
    args = {"_brand_id": brand.id, "_batch_id": brand.batch_id}
    assert_error(
        api.as_anon().rpc("list_product_batch_history", args), 401, "PT401", "Not authenticated"
    )
    assert_error(
        api.as_user(new_id()).rpc("list_product_batch_history", args), 403, "42501", "Forbidden"
    )
    viewer = api.as_user(brand.members["viewer"])
    foreign = viewer.rpc(
        "list_product_batch_history", {"_brand_id": brand.id, "_batch_id": other.batch_id}
    )
    random = viewer.rpc(
        "list_product_batch_history", {"_brand_id": brand.id, "_batch_id": new_id()}
    )
    assert_invalid(foreign, "_batch_id")
    assert foreign.message == "Invalid input: batch not found in this brand"
    assert (foreign.status, foreign.body) == (random.status, random.body)
    assert len(ok(api.as_service().rpc("list_product_batch_history", args))) >= 1
