"""The read path (issue 6, part 4): get_product_batch, find_product_batch and list_brand_batches
with filters and keyset pagination.

The pagination tests run in a scratch database of their own holding 10,500 batches of one brand
(plus another brand's 500), generated set-based by the superuser with triggers off
(session_replication_role = replica) so that created_at can be spread out and tied on purpose;
every row satisfies the table's CHECK constraints. Every page is then read through the API as a
viewer. A page's cost is measured with the transaction's own statistics counters (and, where
the server ships auto_explain, with the plan of the query inside the function).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from _api_helpers import Brand, assert_error, assert_invalid, make_brand, new_id, ok, stored
from dpp_batches.postgrest import PostgrestClient

BIG = 10_500
Conn = psycopg.Connection[Any]


# ------------------------------------------------------------------ one batch: get and find


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "Rd", roles=("viewer", "editor"))


def test_get_returns_every_field_and_the_stored_values(api: Any, brand: Brand, db_dsn: str) -> None:
    body = ok(
        api.as_user(brand.members["viewer"]).rpc(
            "get_product_batch", {"_brand_id": brand.id, "_batch_id": brand.batch_id}, method="GET"
        )
    )
    columns = [
        r[0]
        for r in stored(
            db_dsn,
            "select attname::text from pg_attribute where attrelid = 'dpp.batches'::regclass "
            "and attnum > 0 and not attisdropped",
        )
    ]
    assert set(body) == set(columns) | {"digital_link"}
    [(row,)] = stored(
        db_dsn, "select to_jsonb(b) from dpp.batches b where b.id = %s", brand.batch_id
    )
    for key in ("id", "brand_id", "product_id", "batch_number", "status", "quantity"):
        assert body[key] == row[key], key
    assert body["created_by"] is None and body["status"] == "active"


def test_get_of_a_foreign_or_missing_batch_is_not_found(api: Any, brand: Brand) -> None:
    other = make_brand(api, "Rx", roles=())
    viewer = api.as_user(brand.members["viewer"])
    foreign = viewer.rpc("get_product_batch", {"_brand_id": brand.id, "_batch_id": other.batch_id})
    random = viewer.rpc("get_product_batch", {"_brand_id": brand.id, "_batch_id": new_id()})
    assert_invalid(foreign, "_batch_id")
    assert foreign.message == "Invalid input: batch not found in this brand"
    assert (foreign.status, foreign.body) == (random.status, random.body)
    null = viewer.rpc("get_product_batch", {"_brand_id": brand.id, "_batch_id": None})
    assert_invalid(null, "_batch_id")


def test_find_by_natural_key(api: Any, brand: Brand) -> None:
    viewer = api.as_user(brand.members["viewer"])
    got = ok(viewer.rpc("get_product_batch", {"_brand_id": brand.id, "_batch_id": brand.batch_id}))
    args = {"_brand_id": brand.id, "_product_id": brand.product_id}
    found = ok(
        viewer.rpc(
            "find_product_batch", {**args, "_batch_number": got["batch_number"]}, method="GET"
        )
    )
    assert found == got
    # exact and case-sensitive: the lower-case spelling is another batch number
    missing = viewer.rpc(
        "find_product_batch", {**args, "_batch_number": got["batch_number"].lower()}
    )
    assert_invalid(missing, "_batch_number")
    assert missing.message == "Invalid input: batch not found in this brand"
    assert_invalid(
        viewer.rpc("find_product_batch", {**args, "_batch_number": "NOT VALID"}), "_batch_number"
    )
    assert_invalid(viewer.rpc("find_product_batch", {**args, "_batch_number": None}))


def test_find_in_a_foreign_product_is_not_found(api: Any, brand: Brand) -> None:
    other = make_brand(api, "Ry", roles=())
    number = ok(
        api.as_service().rpc(
            "get_product_batch", {"_brand_id": other.id, "_batch_id": other.batch_id}
        )
    )["batch_number"]
    resp = api.as_user(brand.members["viewer"]).rpc(
        "find_product_batch",
        {"_brand_id": brand.id, "_product_id": other.product_id, "_batch_number": number},
    )
    assert_invalid(resp, "_product_id")


# ------------------------------------------------------------------ list_brand_batches: input


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"_limit": 0}, "_limit"),
        ({"_limit": 501}, "_limit"),
        ({"_limit": -1}, "_limit"),
        ({"_limit": None}, "_limit"),
        ({"_after": ""}, "_after"),
        ({"_after": "!!!"}, "_after"),
        ({"_after": "Zm9v"}, "_after"),  # "foo"
        ({"_after": _cursor("x|y")}, "_after"),
        ({"_after": _cursor(f"2026-13-01T00:00:00.000000Z|{new_id()}")}, "_after"),
        ({"_after": _cursor(f"2026-01-01T00:00:00.000000Z|{new_id()}") + "A"}, "_after"),
        ({"_after": _cursor(f"2026-01-01T00:00:00Z|{new_id()}")}, "_after"),
        ({"_after": "A" * 1000}, "_after"),
        ({"_after": base64.b64encode(b"\xff\xfe|" * 30).decode()}, "_after"),
        ({"_status": "deleted"}, "_status"),
        ({"_produced_from": "2026-02-01", "_produced_to": "2026-01-01"}, "_produced_from"),
        ({"_facility_ref": " FAC"}, "_facility_ref"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_list_validates_its_input(api: Any, brand: Brand, args: dict[str, Any], field: str) -> None:
    resp = api.as_user(brand.members["viewer"]).rpc(
        "list_brand_batches", {"_brand_id": brand.id, **args}
    )
    assert_invalid(resp, field)


def test_list_access(api: Any, brand: Brand) -> None:
    args = {"_brand_id": brand.id}
    assert_error(api.as_anon().rpc("list_brand_batches", args), 401, "PT401", "Not authenticated")
    assert_error(api.as_user(new_id()).rpc("list_brand_batches", args), 403, "42501", "Forbidden")


def test_list_rows_are_the_batch_plus_a_cursor(api: Any, brand: Brand) -> None:
    viewer = api.as_user(brand.members["viewer"])
    rows = ok(viewer.rpc("list_brand_batches", {"_brand_id": brand.id}, method="GET"))
    row = next(r for r in rows if r["id"] == brand.batch_id)
    got = ok(viewer.rpc("get_product_batch", {"_brand_id": brand.id, "_batch_id": brand.batch_id}))
    assert {k: v for k, v in row.items() if k != "cursor"} == got
    assert isinstance(row["cursor"], str) and row["cursor"]


# ------------------------------------------------------------------ 10k+ batches


@dataclass
class Big:
    dsn: str  # superuser, verification only
    api: PostgrestClient
    brand: str
    viewer: str
    editor: str
    product: str


@pytest.fixture(scope="module")
def big(
    make_database: Callable[..., str], authenticator_dsn_for: Callable[[str], str]
) -> Iterator[Big]:
    dsn = make_database(migrated=True)
    brand, other, viewer, editor = new_id(), new_id(), new_id(), new_id()
    products = [new_id(), new_id(), new_id()]
    with psycopg.connect(dsn) as conn:
        conn.execute("set session_replication_role = replica")  # no triggers: bulk fixture
        conn.execute(
            "insert into dpp.brands (id, name) values (%s, 'Big'), (%s, 'Other')", (brand, other)
        )
        conn.execute(
            "insert into dpp.brand_members (brand_id, user_id, role) "
            "values (%s, %s, 'viewer'), (%s, %s, 'editor')",
            (brand, viewer, brand, editor),
        )
        conn.execute(
            "insert into dpp.products (brand_id, id, name, gtin) values "
            "(%s, %s, 'P0', '04006381333931'), (%s, %s, 'P1', null), (%s, %s, 'Q', null)",
            (brand, products[0], brand, products[1], other, products[2]),
        )
        # Groups of three share a created_at (ties resolved by id); status, facility and
        # production date vary with g.
        conn.execute(
            """
            insert into dpp.batches (brand_id, product_id, batch_number, status,
                status_reason, status_before_archive, production_date, facility_ref,
                quantity, created_at, updated_at)
            select %(brand)s, case when mod(g, 2) = 0 then %(p0)s::uuid else %(p1)s::uuid end,
                   'N-' || g,
                   case when mod(g, 10) = 0 then 'on_hold' when mod(g, 25) = 1 then 'archived'
                        else 'active' end,
                   case when mod(g, 10) = 0 then 'QA' end,
                   case when mod(g, 25) = 1 then 'active' end,
                   case when mod(g, 13) <> 0 then date '2025-01-01' + mod(g, 365) end,
                   case when mod(g, 11) <> 0 then 'FAC-' || mod(g, 7) end,
                   g,
                   ts, ts
            from generate_series(1, %(n)s) as g,
                 lateral (select timestamptz '2026-01-01' + (g / 3) * interval '1 ms' as ts) t
            """,
            {"brand": brand, "p0": products[0], "p1": products[1], "n": BIG},
        )
        conn.execute(
            "insert into dpp.batches (brand_id, product_id, batch_number, facility_ref) "
            "select %s, %s, 'N-' || g, 'FAC-3' from generate_series(1, 500) g",
            (other, products[2]),
        )
        conn.commit()
        conn.execute("analyze dpp.batches")
    client = PostgrestClient(authenticator_dsn_for(dsn), application_name="dpp-read-path")
    try:
        yield Big(dsn, client, brand, viewer, editor, products[0])
    finally:
        client.close()


def truth(big: Big, where: str = "", params: tuple[Any, ...] = ()) -> list[str]:
    """The expected ids, newest first, straight from the table."""
    return [
        r[0]
        for r in stored(
            big.dsn,
            f"select id::text from dpp.batches where brand_id = %s {where} "  # type: ignore[str-bytes-safe]
            "order by created_at desc, id desc",
            big.brand,
            *params,
        )
    ]


def page_through(
    big: Big, limit: int, between: Callable[[], None] | None = None, **filters: Any
) -> list[dict[str, Any]]:
    viewer = big.api.as_user(big.viewer)
    rows: list[dict[str, Any]] = []
    args = {"_brand_id": big.brand, "_limit": limit, **filters}
    while True:
        # GET, as a browser would page: the query string carries the cursor
        page = ok(viewer.rpc("list_brand_batches", args, method="GET"))
        assert len(page) <= limit
        rows.extend(page)
        if len(page) < limit:
            return rows
        args["_after"] = page[-1]["cursor"]
        if between is not None:
            between()


def test_big_fixture_has_what_the_tests_need(big: Big) -> None:
    assert stored(
        big.dsn,
        "select count(*), count(distinct created_at), count(*) filter (where status = 'on_hold')"
        " from dpp.batches where brand_id = %s",
        big.brand,
    ) == [(BIG, BIG // 3 + 1, BIG // 10)]


def test_paging_returns_every_row_once_in_order(big: Big) -> None:
    rows = page_through(big, 347)  # pages end at arbitrary places, also inside ties
    assert [r["id"] for r in rows] == truth(big)
    assert {r["brand_id"] for r in rows} == {big.brand}


def test_paging_is_stable_under_concurrent_inserts(big: Big) -> None:
    """Batches created while a client pages (a writer thread, plus one insert between every two
    pages) never make a row of the original set repeat or go missing."""
    before = truth(big)
    editor = big.api.as_user(big.editor)
    stop = threading.Event()
    made: list[str] = []

    def create(client: Any, tag: str) -> None:
        body = ok(
            client.rpc(
                "create_product_batch",
                {
                    "_brand_id": big.brand,
                    "_product_id": big.product,
                    "_batch_number": f"{tag}-{len(made)}-{new_id()[:6]}",
                },
            )
        )
        made.append(body["id"])

    def writer() -> None:
        with PostgrestClient(big.api.dsn, application_name="dpp-read-writer") as client:
            caller = client.as_user(big.editor)
            while not stop.wait(0.005):
                create(caller, "W")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rows = page_through(big, 500, between=lambda: create(editor, "B"))
    finally:
        stop.set()
        thread.join(timeout=30)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a row repeated"
    original = set(before)
    assert original <= set(ids), "a row went missing"
    assert [i for i in ids if i in original] == before  # and in order
    keys = [(r["created_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)
    assert len(made) > len(before) // 500  # the writers really wrote while we paged


@pytest.mark.parametrize(
    ("filters", "where", "params"),
    [
        ({"_status": "on_hold"}, "and status = %s", ("on_hold",)),
        ({"_status": "archived"}, "and status = %s", ("archived",)),
        ({"_facility_ref": "FAC-3"}, "and facility_ref = %s", ("FAC-3",)),
        (
            {"_produced_from": "2025-03-01", "_produced_to": "2025-03-10"},
            "and production_date between %s and %s",
            ("2025-03-01", "2025-03-10"),
        ),
        ({"_produced_from": "2025-12-01"}, "and production_date >= %s", ("2025-12-01",)),
        ({"_produced_to": "2025-01-05"}, "and production_date <= %s", ("2025-01-05",)),
        (
            {"_status": "active", "_facility_ref": "FAC-1", "_produced_to": "2025-06-30"},
            "and status = %s and facility_ref = %s and production_date <= %s",
            ("active", "FAC-1", "2025-06-30"),
        ),
        ({"_status": "recalled"}, "and status = %s", ("recalled",)),
    ],
    ids=lambda v: str(v)[:50] if isinstance(v, dict) else "",
)
def test_filters_match_the_table(
    big: Big, filters: dict[str, Any], where: str, params: tuple[Any, ...]
) -> None:
    expected = truth(big, where, params)
    assert [r["id"] for r in page_through(big, 97, **filters)] == expected


def cursors_of(big: Big, column: str | None = None, value: Any = None) -> list[str]:
    """The cursor of every row (optionally where column = value), newest first, computed by
    the database's own cursor function (read as superuser)."""
    where = f"and {column} = %s" if column else ""
    return [
        r[0]
        for r in stored(
            big.dsn,
            f"select dpp.batch_cursor(created_at, id) from dpp.batches "  # type: ignore[str-bytes-safe]
            f"where brand_id = %s {where} order by created_at desc, id desc",
            big.brand,
            *((value,) if column else ()),
        )
    ]


def _caller_session(conn: Conn, user: str) -> None:
    conn.execute(
        "select set_config('role', 'authenticated', true), "
        "set_config('request.jwt.claims', %s, true)",
        (json.dumps({"role": "authenticated", "sub": user}),),
    )


def _page_cost(big: Big, cursor: str | None, limit: int, **filters: Any) -> tuple[int, int, int]:
    """(rows returned, batches index entries read, sequential scans of batches) of one call of
    list_brand_batches, from this transaction's own statistics counters, as the viewer."""
    with psycopg.connect(big.api.dsn) as conn:
        _caller_session(conn, big.viewer)
        args = {"b": big.brand, "limit": limit, "after": cursor, **filters}
        [(returned,)] = conn.execute(
            "select count(*) from public.list_brand_batches(%(b)s, _limit => %(limit)s, "
            "_after => %(after)s, _status => %(status)s, _facility_ref => %(facility)s)",
            {"status": None, "facility": None} | args,
        ).fetchall()
        [(entries, seq)] = conn.execute(
            """
            select coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)::int,
                   pg_stat_get_xact_numscans('dpp.batches'::regclass)::int
            from pg_index i where i.indrelid = 'dpp.batches'::regclass"""
        ).fetchall()
        conn.rollback()
    return returned, entries, seq


@pytest.mark.parametrize(
    "filters",
    [{}, {"status": "on_hold"}, {"facility": "FAC-3"}],
    ids=["all", "status", "facility"],
)
def test_a_page_costs_the_same_at_any_depth(big: Big, filters: dict[str, Any]) -> None:
    """Page one, a page in the middle and the last full page each read about `limit` index
    entries, never the whole brand, and no sequential scan."""
    limit = 50
    cursors = (
        cursors_of(big, "status", filters.get("status"))
        if "status" in filters
        else (
            cursors_of(big, "facility_ref", filters.get("facility"))
            if "facility" in filters
            else cursors_of(big)
        )
    )
    assert len(cursors) > 20 * limit
    depths = [None, cursors[len(cursors) // 2], cursors[-limit - 1]]
    costs = [_page_cost(big, cursor, limit, **filters) for cursor in depths]
    for returned, entries, seq in costs:
        assert returned == limit
        assert seq == 0
        assert entries <= limit + 2, costs  # the index delivers rows in page order


def test_the_plan_inside_the_function_is_an_index_scan_without_sort(big: Big) -> None:
    """EXPLAIN ANALYZE of the statement list_brand_batches runs, captured with auto_explain
    (nested statements) as the viewer, for a page deep inside the brand."""
    cursors = cursors_of(big)
    deep = cursors[len(cursors) * 2 // 3]
    plans: list[str] = []
    with psycopg.connect(big.dsn) as conn:
        try:
            conn.execute("load 'auto_explain'")
        except psycopg.Error:
            pytest.skip(
                "this server has no auto_explain library (the embedded pgserver build ships "
                "without contrib); test_a_page_costs_the_same_at_any_depth measures the cost"
            )
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        for setting, value in (
            ("log_min_duration", "0"),
            ("log_analyze", "on"),
            ("log_timing", "off"),
            ("log_nested_statements", "on"),
            ("log_level", "notice"),
        ):
            conn.execute(f"set auto_explain.{setting} = {value}")  # type: ignore[arg-type]
        _caller_session(conn, big.viewer)
        conn.execute(
            "select count(*) from public.list_brand_batches(%s, _limit => 50, _after => %s)",
            (big.brand, deep),
        )
        conn.rollback()
    [plan] = [p for p in plans if "order by b.created_at desc" in p]
    assert "batches_brand_id_created_at_idx" in plan, plan
    assert "ROW(created_at, id) < ROW(" in plan, plan  # the keyset bound is an index condition
    assert "Sort" not in plan and "Seq Scan" not in plan, plan
    scan = next(line for line in plan.splitlines() if "batches_brand_id_created_at_idx" in line)
    assert "actual rows=50 " in scan, plan
