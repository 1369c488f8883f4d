"""Conflict-safe updates (issue 6, part 3): `_expected_updated_at` on update_product_batch and
set_product_batch_status. Stale -> 409 PT409 "Conflict…" and nothing changes; of editors racing
with the same expected value exactly one wins (each racer on its own connection, released
together by a barrier).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from _api_helpers import Brand, assert_error, assert_invalid, make_brand, new_id, ok, stored
from _lifecycle import new_batch
from dpp_batches.postgrest import PostgrestClient, Response

RACERS = 8
ROUNDS = 4


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "Cfl")


def state(dsn: str, batch_id: str) -> list[tuple[Any, ...]]:
    return stored(
        dsn,
        "select b::text, (select count(*) from dpp.batch_events e where e.batch_id = b.id) "
        "from dpp.batches b where b.id = %s",
        batch_id,
    )


def _update(caller: Any, brand: Brand, batch_id: str, patch: Any, expected: Any) -> Response:
    args = {"_brand_id": brand.id, "_batch_id": batch_id, "_patch": patch}
    if expected is not ...:
        args["_expected_updated_at"] = expected
    resp: Response = caller.rpc("update_product_batch", args)
    return resp


def test_current_expectation_succeeds_and_chains(api: Any, brand: Brand) -> None:
    editor = api.as_user(brand.members["editor"])
    batch = new_batch(api, brand)
    first = ok(_update(editor, brand, batch["id"], {"quantity": 1}, batch["updated_at"]))
    second = ok(_update(editor, brand, batch["id"], {"quantity": 2}, first["updated_at"]))
    assert second["quantity"] == 2 and second["updated_at"] > first["updated_at"]


@pytest.mark.parametrize(
    "stale",
    [
        "created",  # the value before the last change
        "2000-01-01T00:00:00Z",
        "future",
        "infinity",
        "-infinity",
    ],
)
def test_stale_expectation_is_409_and_changes_nothing(
    api: Any, brand: Brand, db_dsn: str, stale: str
) -> None:
    editor = api.as_user(brand.members["editor"])
    batch = new_batch(api, brand)
    current = ok(_update(editor, brand, batch["id"], {"quantity": 5}, ...))
    expected = {"created": batch["updated_at"], "future": "2999-01-01T00:00:00.000001Z"}.get(
        stale, stale
    )
    before = state(db_dsn, batch["id"])
    resp = _update(editor, brand, batch["id"], {"quantity": 6}, expected)
    assert_error(resp, 409, "PT409", "Conflict")
    assert resp.details is not None and resp.details.startswith("_expected_updated_at:")
    assert current["updated_at"] in resp.details  # tells the caller what is current
    assert state(db_dsn, batch["id"]) == before
    status = api.as_user(brand.members["owner"]).rpc(
        "set_product_batch_status",
        {
            "_brand_id": brand.id,
            "_batch_id": batch["id"],
            "_status": "closed",
            "_expected_updated_at": expected,
        },
    )
    assert_error(status, 409, "PT409", "Conflict")
    assert state(db_dsn, batch["id"]) == before


def test_a_microsecond_matters(api: Any, brand: Brand, db_dsn: str) -> None:
    """The comparison is exact: the returned text round-trips, one microsecond off does not."""
    editor = api.as_user(brand.members["editor"])
    batch = new_batch(api, brand)
    stamp = batch["updated_at"]
    micro = int(stamp[20:26])
    off = f"{stamp[:20]}{(micro + 1) % 1_000_000:06d}Z"
    assert_error(
        _update(editor, brand, batch["id"], {"quantity": 1}, off), 409, "PT409", "Conflict"
    )
    ok(_update(editor, brand, batch["id"], {"quantity": 1}, stamp))


def test_without_expectation_last_writer_wins(api: Any, brand: Brand) -> None:
    editor = api.as_user(brand.members["editor"])
    batch = new_batch(api, brand)
    ok(_update(editor, brand, batch["id"], {"quantity": 1}, ...))
    assert ok(_update(editor, brand, batch["id"], {"quantity": 2}, None))["quantity"] == 2


def test_not_found_and_invalid_input_come_before_conflict(api: Any, brand: Brand) -> None:
    editor = api.as_user(brand.members["editor"])
    stale = "2000-01-01T00:00:00Z"
    assert_invalid(_update(editor, brand, new_id(), {"quantity": 1}, stale), "_batch_id")
    assert_invalid(
        _update(editor, brand, brand.batch_id, {"quantity": 0}, stale), "_patch.quantity"
    )
    assert_error(
        _update(
            api.as_user(brand.members["viewer"]), brand, brand.batch_id, {"quantity": 1}, stale
        ),
        403,
        "42501",
        "Forbidden",
    )


def _race(dsn: str, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Response]:
    """Run (user, rpc, args) at once, each on its own PostgrestClient (its own connection)."""
    clients = [
        PostgrestClient(dsn, application_name=f"dpp-conflict-{i}") for i in range(len(calls))
    ]
    try:
        for c in clients:  # connect and load the schema cache before the race
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


def test_racing_editors_with_the_same_expectation_exactly_one_wins(
    api: Any, brand: Brand, authenticator_dsn: str, db_dsn: str
) -> None:
    editor = brand.members["editor"]
    for _ in range(ROUNDS):
        batch = new_batch(api, brand)
        calls = [
            (
                editor,
                "update_product_batch",
                {
                    "_brand_id": brand.id,
                    "_batch_id": batch["id"],
                    "_patch": {"quantity": 100 + i},
                    "_expected_updated_at": batch["updated_at"],
                },
            )
            for i in range(RACERS)
        ]
        responses = _race(authenticator_dsn, calls)
        statuses = sorted(r.status for r in responses)
        assert statuses == [200] + [409] * (RACERS - 1), [r.body for r in responses]
        for r in responses:
            if r.status == 409:
                assert_error(r, 409, "PT409", "Conflict")
        winner = next(r.body for r in responses if r.status == 200)
        assert stored(
            db_dsn,
            "select quantity, (select count(*) from dpp.batch_events e "
            "where e.batch_id = b.id and e.action = 'update') from dpp.batches b where id = %s",
            batch["id"],
        ) == [(winner["quantity"], 1)]


def test_racing_status_changes_with_the_same_expectation_exactly_one_wins(
    api: Any, brand: Brand, authenticator_dsn: str, db_dsn: str
) -> None:
    """An owner recalling and an editor closing the same batch version: one wins."""
    batch = new_batch(api, brand)
    common = {"_brand_id": brand.id, "_batch_id": batch["id"]}
    expected = {"_expected_updated_at": batch["updated_at"]}
    responses = _race(
        authenticator_dsn,
        [
            (
                brand.members["owner"],
                "set_product_batch_status",
                {**common, **expected, "_status": "recalled", "_reason": "Recall"},
            ),
            (
                brand.members["editor"],
                "set_product_batch_status",
                {**common, **expected, "_status": "closed"},
            ),
            (
                brand.members["editor"],
                "update_product_batch",
                {**common, **expected, "_patch": {"quantity": 9}},
            ),
        ],
    )
    assert sorted(r.status for r in responses) == [200, 409, 409], [r.body for r in responses]
    winner = next(r.body for r in responses if r.status == 200)
    assert stored(
        db_dsn, "select status, quantity from dpp.batches where id = %s", batch["id"]
    ) == [(winner["status"], winner["quantity"])]
