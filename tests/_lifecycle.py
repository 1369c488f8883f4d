"""Shared facts for the lifecycle, audit and conflict tests, written down from issue 6 (not
read from the SQL): the transition table, which moves need a reason, which need admin+, and
how to drive a fresh batch into any state through the API.
"""

from __future__ import annotations

from typing import Any

from _api_helpers import Brand, batch_no, ok

STATUSES = ("active", "on_hold", "closed", "recalled", "destroyed", "archived")
TRANSITIONS = {
    "active": {"on_hold", "closed", "recalled", "archived"},
    "on_hold": {"active", "recalled", "destroyed"},
    "closed": {"active", "recalled", "archived"},
    "recalled": {"destroyed", "archived"},
    "destroyed": {"archived"},
    # archived -> the status it had before: see allowed()
}
FROZEN = {"recalled", "destroyed", "archived"}
ADMIN_ONLY = {"recalled", "destroyed"}

# Every state a batch can be in; an archived batch remembers what it was. on_hold cannot be
# archived directly, so "archived<on_hold" does not exist.
STATES = (
    "active",
    "on_hold",
    "closed",
    "recalled",
    "destroyed",
    "archived<active",
    "archived<closed",
    "archived<recalled",
    "archived<destroyed",
)
# The moves that lead from active to each state.
PATHS = {
    "active": [],
    "on_hold": ["on_hold"],
    "closed": ["closed"],
    "recalled": ["recalled"],
    "destroyed": ["recalled", "destroyed"],
    "archived<active": ["archived"],
    "archived<closed": ["closed", "archived"],
    "archived<recalled": ["recalled", "archived"],
    "archived<destroyed": ["recalled", "destroyed", "archived"],
}


def status_of(state: str) -> str:
    return state.split("<")[0]


def allowed(state: str, target: str) -> bool:
    if state.startswith("archived<"):
        return target == state.split("<")[1]
    return target in TRANSITIONS[state]


def needs_reason(state: str, target: str) -> bool:
    return target in {"on_hold", "recalled", "destroyed"} or (
        state == "closed" and target == "active"
    )


def set_status(caller: Any, brand_id: str, batch_id: str, status: str, **extra: Any) -> Any:
    return caller.rpc(
        "set_product_batch_status",
        {"_brand_id": brand_id, "_batch_id": batch_id, "_status": status, **extra},
    )


def new_batch(api: Any, brand: Brand, **fields: Any) -> dict[str, Any]:
    """A fresh active batch of the brand's product, created by the service role."""
    body: dict[str, Any] = ok(
        api.as_service().rpc(
            "create_product_batch",
            {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": batch_no("L"),
                **fields,
            },
        )
    )
    return body


def batch_in_state(api: Any, brand: Brand, state: str) -> dict[str, Any]:
    """A fresh batch driven into `state` by the service role (always giving a reason)."""
    batch = new_batch(api, brand)
    for status in PATHS[state]:
        batch = ok(
            set_status(api.as_service(), brand.id, batch["id"], status, _reason=f"to {status}")
        )
    assert batch["status"] == status_of(state)
    return batch
