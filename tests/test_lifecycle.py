"""The batch lifecycle (issue 6, part 1): every transition allowed and refused, through the API
and through plain SQL (the rule is a trigger on the table), the reason rule, the role rule
(recalled / destroyed need admin or owner) and frozen metadata.

Expectations come from tests/_lifecycle.py, written from the issue text, not from the SQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from _api_helpers import Brand, assert_error, assert_invalid, make_brand, new_id, ok
from _lifecycle import (
    FROZEN,
    STATES,
    STATUSES,
    allowed,
    batch_in_state,
    needs_reason,
    new_batch,
    set_status,
    status_of,
)

Conn = psycopg.Connection[Any]
CASES = [(state, target) for state in STATES for target in STATUSES]
ALLOWED = [(s, t) for s, t in CASES if allowed(s, t)]


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "Life")


@pytest.fixture(scope="module")
def parked(api: Any, brand: Brand) -> dict[str, dict[str, Any]]:
    """One batch per state, for calls that must change nothing (refusals, rolled-back SQL)."""
    return {state: batch_in_state(api, brand, state) for state in STATES}


@pytest.fixture(scope="module")
def su(db_dsn: str) -> Iterator[Conn]:
    """One superuser connection for reading back stored state (verification only)."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def plain(authenticator_dsn: str) -> Iterator[Conn]:
    """One authenticator connection for plain SQL attempts (each rolled back)."""
    with psycopg.connect(authenticator_dsn) as conn:
        yield conn


def snapshot(su: Conn, batch_id: str) -> tuple[Any, ...] | None:
    """The stored batch row and its number of events."""
    return su.execute(
        "select b::text, (select count(*) from dpp.batch_events e where e.batch_id = b.id) "
        "from dpp.batches b where b.id = %s",
        (batch_id,),
    ).fetchone()


def latest_event(su: Conn, batch_id: str) -> tuple[Any, ...] | None:
    return su.execute(
        "select action, changes, reason from dpp.batch_events where batch_id = %s "
        "order by id desc limit 1",
        (batch_id,),
    ).fetchone()


def test_the_table_of_the_issue_is_what_we_test() -> None:
    """Guard the oracle: 17 allowed moves, each archived state restores only to its origin."""
    assert len(ALLOWED) == 17
    assert [t for s, t in ALLOWED if s.startswith("archived")] == [
        "active",
        "closed",
        "recalled",
        "destroyed",
    ]


@pytest.mark.parametrize(("state", "target"), CASES, ids=[f"{s}->{t}" for s, t in CASES])
def test_transition_through_the_api(
    api: Any,
    brand: Brand,
    parked: dict[str, dict[str, Any]],
    su: Conn,
    state: str,
    target: str,
) -> None:
    owner = api.as_user(brand.members["owner"])
    if not allowed(state, target):
        batch = parked[state]
        before = snapshot(su, batch["id"])
        resp = set_status(owner, brand.id, batch["id"], target, _reason="Lifecycle test")
        assert_invalid(resp, "_status")
        assert snapshot(su, batch["id"]) == before
        return
    batch = batch_in_state(api, brand, state)
    body = ok(set_status(owner, brand.id, batch["id"], target, _reason="Lifecycle test"))
    assert body["status"] == target
    assert body["status_reason"] == "Lifecycle test"
    expected_before = status_of(state) if target == "archived" else None
    assert body["status_before_archive"] == expected_before
    assert body["updated_at"] > batch["updated_at"] and body["updated_by"] == owner.claims["sub"]
    assert su.execute(
        "select status, status_before_archive from dpp.batches where id = %s", (batch["id"],)
    ).fetchone() == (target, expected_before)
    assert latest_event(su, batch["id"]) == (
        "status",
        {"status": [status_of(state), target]},
        "Lifecycle test",
    )


def _sql_outcome(
    plain: Conn, user: str, batch_id: str, target: str, reason: str = "SQL"
) -> str | int:
    """Set the status by plain SQL as `user` (dpp.reason set), in a rolled-back transaction."""
    claims = {"role": "authenticated", "sub": user, "exp": int(time.time()) + 600}
    try:
        plain.execute(
            "select set_config('role', 'authenticated', true), "
            "set_config('request.jwt.claims', %s, true), set_config('dpp.reason', %s, true)",
            (json.dumps(claims), reason),
        )
        cur = plain.execute("update dpp.batches set status = %s where id = %s", (target, batch_id))
        return cur.rowcount
    except psycopg.Error as exc:
        return exc.sqlstate or "?"
    finally:
        plain.rollback()


@pytest.mark.parametrize(("state", "target"), CASES, ids=[f"{s}->{t}" for s, t in CASES])
def test_transition_through_plain_sql(
    plain: Conn,
    brand: Brand,
    parked: dict[str, dict[str, Any]],
    su: Conn,
    state: str,
    target: str,
) -> None:
    """The same table as the API, enforced by the trigger; staying put is a no-op unless the
    batch is frozen (then it may only change its status)."""
    batch = parked[state]
    before = snapshot(su, batch["id"])
    outcome = _sql_outcome(plain, brand.members["owner"], batch["id"], target)
    if target == status_of(state):
        expected: str | int = "22023" if target in FROZEN else 1
    else:
        expected = 1 if allowed(state, target) else "22023"
    assert outcome == expected
    assert snapshot(su, batch["id"]) == before


@pytest.mark.parametrize(("state", "target"), ALLOWED, ids=[f"{s}->{t}" for s, t in ALLOWED])
def test_reason_rule(
    api: Any,
    brand: Brand,
    parked: dict[str, dict[str, Any]],
    su: Conn,
    state: str,
    target: str,
) -> None:
    """Without a reason: refused exactly for on_hold, recalled, destroyed and reopen."""
    owner = api.as_user(brand.members["owner"])
    if needs_reason(state, target):
        batch = parked[state]
        before = snapshot(su, batch["id"])
        assert_invalid(set_status(owner, brand.id, batch["id"], target), "_reason")
        assert snapshot(su, batch["id"]) == before
        return
    batch = batch_in_state(api, brand, state)
    body = ok(set_status(owner, brand.id, batch["id"], target))
    assert body["status"] == target
    # archive and restore without a reason keep the reason of the status (a restored recall
    # still says why); other moves without a reason clear it
    kept = "archived" in (status_of(state), target)
    assert body["status_reason"] == (batch["status_reason"] if kept else None)
    assert latest_event(su, batch["id"])[2] is None


def test_reason_travels_with_plain_sql_too(
    plain: Conn, brand: Brand, parked: dict[str, dict[str, Any]]
) -> None:
    """Without dpp.reason the trigger refuses active -> on_hold; with it, it passes."""
    batch_id, editor = parked["active"]["id"], brand.members["editor"]
    assert _sql_outcome(plain, editor, batch_id, "on_hold", reason="") == "22023"
    assert _sql_outcome(plain, editor, batch_id, "on_hold", reason="Quarantine") == 1


@pytest.mark.parametrize(
    "reason", ["", " leading", "trailing ", "tab\there", "line\nbreak", "x" * 501]
)
def test_invalid_reasons_are_refused(
    api: Any,
    brand: Brand,
    parked: dict[str, dict[str, Any]],
    su: Conn,
    reason: str,
) -> None:
    batch = parked["active"]
    before = snapshot(su, batch["id"])
    resp = set_status(api.as_service(), brand.id, batch["id"], "on_hold", _reason=reason)
    assert_invalid(resp, "_reason")
    assert snapshot(su, batch["id"]) == before


def test_a_500_character_reason_is_kept(api: Any, brand: Brand) -> None:
    batch = new_batch(api, brand)
    reason = "R" * 500
    body = ok(set_status(api.as_service(), brand.id, batch["id"], "on_hold", _reason=reason))
    assert body["status_reason"] == reason


# (target, state it is reached from)
ROLE_MOVES = [
    ("on_hold", "active"),
    ("closed", "active"),
    ("archived", "active"),
    ("active", "closed"),  # reopen
    ("recalled", "active"),
    ("destroyed", "on_hold"),
    ("recalled", "archived<recalled"),  # restoring to recalled is setting recalled
]
RANK = {"non_member": 0, "viewer": 1, "editor": 2, "admin": 3, "owner": 4, "service": 5}


@pytest.mark.parametrize("caller", list(RANK))
@pytest.mark.parametrize(("target", "state"), ROLE_MOVES, ids=[f"{s}->{t}" for t, s in ROLE_MOVES])
def test_role_rule(
    api: Any,
    brand: Brand,
    parked: dict[str, dict[str, Any]],
    su: Conn,
    caller: str,
    target: str,
    state: str,
) -> None:
    """editor+ for every move; admin, owner or the service role for recalled and destroyed."""
    if caller == "service":
        client = api.as_service()
    elif caller == "non_member":
        client = api.as_user(new_id())
    else:
        client = api.as_user(brand.members[caller])
    needed = RANK["admin"] if target in {"recalled", "destroyed"} else RANK["editor"]
    if RANK[caller] < needed:
        batch = parked[state]
        before = snapshot(su, batch["id"])
        resp = set_status(client, brand.id, batch["id"], target, _reason="Role test")
        assert_error(resp, 403, "42501", "Forbidden")
        assert snapshot(su, batch["id"]) == before
        return
    batch = batch_in_state(api, brand, state)
    assert ok(set_status(client, brand.id, batch["id"], target, _reason="Role test"))["status"] == (
        target
    )


def test_role_is_checked_before_the_batch(api: Any, brand: Brand) -> None:
    """An editor asking for a recall learns nothing about batch ids: 403 for a random one too;
    anonymous callers get 401 first."""
    editor = api.as_user(brand.members["editor"])
    for batch_id in (new_id(), brand.batch_id):
        resp = set_status(editor, brand.id, batch_id, "recalled", _reason="x")
        assert_error(resp, 403, "42501", "Forbidden")
    assert_error(
        set_status(api.as_anon(), brand.id, brand.batch_id, "recalled", _reason="x"),
        401,
        "PT401",
        "Not authenticated",
    )


@pytest.mark.parametrize("status", ["deleted", "ACTIVE", "", " active", None])
def test_unknown_status_is_invalid(
    api: Any, brand: Brand, parked: dict[str, dict[str, Any]], status: str | None
) -> None:
    resp = set_status(api.as_service(), brand.id, parked["active"]["id"], status, _reason="x")  # type: ignore[arg-type]
    assert_invalid(resp, "_status")


def test_foreign_or_missing_batch_is_not_found(api: Any, brand: Brand, su: Conn) -> None:
    other = make_brand(api, "Oth")
    owner = api.as_user(brand.members["owner"])
    before = snapshot(su, other.batch_id)
    foreign = set_status(owner, brand.id, other.batch_id, "closed")
    random = set_status(owner, brand.id, new_id(), "closed")
    assert_invalid(foreign, "_batch_id")
    assert foreign.message == "Invalid input: batch not found in this brand"
    assert (foreign.status, foreign.body) == (random.status, random.body)
    assert snapshot(su, other.batch_id) == before


@pytest.mark.parametrize("state", [s for s in STATES if status_of(s) in FROZEN])
def test_frozen_metadata_through_the_api(
    api: Any,
    brand: Brand,
    parked: dict[str, dict[str, Any]],
    su: Conn,
    state: str,
) -> None:
    batch = parked[state]
    before = snapshot(su, batch["id"])
    for patch in ({"quantity": 1}, {"batch_number": "NEW-1"}, {"attributes": {}}):
        resp = api.as_user(brand.members["owner"]).rpc(
            "update_product_batch",
            {"_brand_id": brand.id, "_batch_id": batch["id"], "_patch": patch},
        )
        assert_invalid(resp, "_batch_id")
        assert "frozen" in (resp.message or "")
    assert snapshot(su, batch["id"]) == before


def test_restore_unfreezes(api: Any, brand: Brand) -> None:
    """archived<active -> active, then the metadata is editable again."""
    batch = batch_in_state(api, brand, "archived<active")
    service = api.as_service()
    ok(set_status(service, brand.id, batch["id"], "active"))
    body = ok(
        service.rpc(
            "update_product_batch",
            {"_brand_id": brand.id, "_batch_id": batch["id"], "_patch": {"quantity": 42}},
        )
    )
    assert (body["status"], body["quantity"], body["status_before_archive"]) == (
        "active",
        42,
        None,
    )


def test_new_batches_start_active_even_for_the_table_owner(db_dsn: str, brand: Brand) -> None:
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(
                "insert into dpp.batches (brand_id, product_id, batch_number, status) "
                "values (%s, %s, 'BORN-RECALLED', 'recalled')",
                (brand.id, brand.product_id),
            )
        assert caught.value.sqlstate == "22023"
        conn.rollback()
