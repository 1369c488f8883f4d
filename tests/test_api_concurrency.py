"""Races: duplicate batch numbers (409 / 23505) under 16 concurrent requests, and two owners
demoting each other at once. Each racer has its own connection (its own PostgrestClient) and
all are released together by a barrier.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _api_helpers import assert_error, batch_no, make_brand, new_id, ok, stored
from dpp_batches.postgrest import PostgrestClient, Response

RACERS = 16


def test_duplicate_batch_number_is_409(api: Any, db_dsn: str) -> None:
    brand = make_brand(api, "Dup", roles=("editor",))
    editor = api.as_user(brand.members["editor"])
    args = {"_brand_id": brand.id, "_product_id": brand.product_id, "_batch_number": batch_no()}
    ok(editor.rpc("create_product_batch", args))
    resp = editor.rpc("create_product_batch", args)
    assert_error(resp, 409, "23505", "Invalid input")
    assert resp.details is not None and "_batch_number" in resp.details
    assert stored(
        db_dsn,
        "select count(*) from dpp.batches where product_id = %s and batch_number = %s",
        brand.product_id,
        args["_batch_number"],
    ) == [(1,)]


def test_concurrent_creates_of_one_batch_number(
    api: Any, authenticator_dsn: str, db_dsn: str
) -> None:
    brand = make_brand(api, "Race", roles=("editor",))
    args = {"_brand_id": brand.id, "_product_id": brand.product_id, "_batch_number": batch_no()}
    clients = [
        PostgrestClient(authenticator_dsn, application_name=f"dpp-race-{i}") for i in range(RACERS)
    ]
    try:
        callers = [c.as_user(brand.members["editor"]) for c in clients]
        for c in clients:  # connect and load the schema cache before the race starts
            c.reload_schema()
        barrier = threading.Barrier(RACERS, timeout=30)

        def race(caller: Any) -> Response:
            barrier.wait()
            result: Response = caller.rpc("create_product_batch", args)
            return result

        with ThreadPoolExecutor(max_workers=RACERS) as pool:
            responses = list(pool.map(race, callers))
    finally:
        for c in clients:
            c.close()

    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * (RACERS - 1), [r.body for r in responses]
    for r in responses:
        if r.status == 409:
            assert_error(r, 409, "23505", "Invalid input")
    winner = next(r.body for r in responses if r.status == 200)
    assert stored(
        db_dsn,
        "select id::text from dpp.batches where product_id = %s and batch_number = %s",
        brand.product_id,
        args["_batch_number"],
    ) == [(winner["id"],)]


def _race(dsn: str, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Response]:
    """Run (user, rpc, args) calls at once, each on its own connection."""
    clients = [PostgrestClient(dsn, application_name=f"dpp-race-{i}") for i in range(len(calls))]
    try:
        for c in clients:
            c.reload_schema()
        barrier = threading.Barrier(len(calls), timeout=30)

        def run(i: int) -> Response:
            user, rpc, args = calls[i]
            barrier.wait()
            result: Response = clients[i].as_user(user).rpc(rpc, args)
            return result

        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, range(len(calls))))
    finally:
        for c in clients:
            c.close()


def test_two_owners_demoting_each_other_leave_one_owner(
    api: Any, authenticator_dsn: str, db_dsn: str
) -> None:
    for _ in range(8):
        brand = make_brand(api, "Owners", roles=("owner",))
        first, second = brand.members["owner"], new_id()
        ok(
            api.as_service().rpc(
                "add_brand_member", {"_brand_id": brand.id, "_user_id": second, "_role": "owner"}
            )
        )
        responses = _race(
            authenticator_dsn,
            [
                (
                    first,
                    "add_brand_member",
                    {"_brand_id": brand.id, "_user_id": second, "_role": "editor"},
                ),
                (second, "remove_brand_member", {"_brand_id": brand.id, "_user_id": first}),
            ],
        )
        assert sorted(r.status for r in responses) == [200, 403], [r.body for r in responses]
        assert stored(
            db_dsn,
            "select count(*) from dpp.brand_members where brand_id = %s and role = 'owner'",
            brand.id,
        ) == [(1,)]
