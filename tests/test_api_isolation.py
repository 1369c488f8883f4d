"""Tenant isolation through the API: brand A's editor, pointing A's brand id at B's product or
batch, gets exactly the answer a random UUID gets, B stays untouched, and lists never show
another brand's rows.
"""

from __future__ import annotations

from typing import Any

import pytest

from _api_helpers import World, assert_invalid, batch_no, fingerprint, make_world, new_id, ok


@pytest.fixture(scope="module")
def world(api: Any) -> World:
    return make_world(api)


def _same_answer(foreign: Any, random: Any) -> None:
    assert_invalid(foreign)
    assert (foreign.status, foreign.body) == (random.status, random.body)


@pytest.mark.parametrize("caller", ["editor", "owner", "service"])
def test_create_batch_for_foreign_product(api: Any, world: World, db_dsn: str, caller: str) -> None:
    client = api.as_service() if caller == "service" else api.as_user(world.a.members[caller])
    before = fingerprint(db_dsn, world.b.id)
    number = batch_no()
    foreign = client.rpc(
        "create_product_batch",
        {"_brand_id": world.a.id, "_product_id": world.b.product_id, "_batch_number": number},
    )
    random = client.rpc(
        "create_product_batch",
        {"_brand_id": world.a.id, "_product_id": new_id(), "_batch_number": number},
    )
    _same_answer(foreign, random)
    assert foreign.message == "Invalid input: product not found in this brand"
    assert fingerprint(db_dsn, world.b.id) == before


@pytest.mark.parametrize("caller", ["viewer", "service"])
def test_list_foreign_product(api: Any, world: World, caller: str) -> None:
    client = api.as_service() if caller == "service" else api.as_user(world.a.members[caller])
    foreign = client.rpc(
        "list_product_batches", {"_brand_id": world.a.id, "_product_id": world.b.product_id}
    )
    random = client.rpc("list_product_batches", {"_brand_id": world.a.id, "_product_id": new_id()})
    _same_answer(foreign, random)


@pytest.mark.parametrize("caller", ["editor", "service"])
def test_update_foreign_batch(api: Any, world: World, db_dsn: str, caller: str) -> None:
    client = api.as_service() if caller == "service" else api.as_user(world.a.members[caller])
    before = fingerprint(db_dsn, world.b.id)
    patch = {"quantity": 999, "batch_number": batch_no()}
    foreign = client.rpc(
        "update_product_batch",
        {"_brand_id": world.a.id, "_batch_id": world.b.batch_id, "_patch": patch},
    )
    random = client.rpc(
        "update_product_batch", {"_brand_id": world.a.id, "_batch_id": new_id(), "_patch": patch}
    )
    _same_answer(foreign, random)
    assert foreign.message == "Invalid input: batch not found in this brand"
    assert fingerprint(db_dsn, world.b.id) == before


def test_batch_of_another_product_of_the_same_brand_is_fine_but_scoped(
    api: Any, world: World
) -> None:
    """Product scoping inside one brand: a list shows only that product's batches."""
    editor = api.as_user(world.a.members["editor"])
    other = ok(editor.rpc("create_product", {"_brand_id": world.a.id, "_name": "Other"}))["id"]
    made = ok(
        editor.rpc(
            "create_product_batch",
            {"_brand_id": world.a.id, "_product_id": other, "_batch_number": "SAME-1"},
        )
    )
    again = ok(
        editor.rpc(
            "create_product_batch",
            {"_brand_id": world.a.id, "_product_id": world.a.product_id, "_batch_number": "SAME-1"},
        )
    )
    listed = ok(editor.rpc("list_product_batches", {"_brand_id": world.a.id, "_product_id": other}))
    assert [r["id"] for r in listed] == [made["id"]]
    assert again["id"] != made["id"]


def test_lists_never_show_foreign_rows(api: Any, world: World) -> None:
    """Same batch number in both brands; each list shows only its own brand's batch."""
    service = api.as_service()
    for brand in (world.a, world.b):
        ok(
            service.rpc(
                "create_product_batch",
                {"_brand_id": brand.id, "_product_id": brand.product_id, "_batch_number": "SHARED"},
            )
        )
    for brand in (world.a, world.b):
        for caller in (api.as_user(brand.members["viewer"]), service):
            rows = ok(
                caller.rpc(
                    "list_product_batches", {"_brand_id": brand.id, "_product_id": brand.product_id}
                )
            )
            assert rows and {r["brand_id"] for r in rows} == {brand.id}
            assert {r["product_id"] for r in rows} == {brand.product_id}
            shared = [r for r in rows if r["batch_number"] == "SHARED"]
            assert len(shared) == 1


def test_member_of_two_brands_still_gets_brand_scoped_answers(api: Any, world: World) -> None:
    """Membership in B does not let A's brand id reach B's product."""
    user = new_id()
    service = api.as_service()
    for brand in (world.a, world.b):
        ok(
            service.rpc(
                "add_brand_member", {"_brand_id": brand.id, "_user_id": user, "_role": "editor"}
            )
        )
    both = api.as_user(user)
    assert_invalid(
        both.rpc(
            "list_product_batches", {"_brand_id": world.a.id, "_product_id": world.b.product_id}
        )
    )
    assert_invalid(
        both.rpc(
            "update_product_batch",
            {"_brand_id": world.a.id, "_batch_id": world.b.batch_id, "_patch": {"quantity": 5}},
        )
    )
    own = ok(
        both.rpc(
            "list_product_batches", {"_brand_id": world.b.id, "_product_id": world.b.product_id}
        )
    )
    assert {r["brand_id"] for r in own} == {world.b.id}


def test_removed_member_loses_access(api: Any, world: World) -> None:
    user = new_id()
    service = api.as_service()
    args = {"_brand_id": world.a.id, "_product_id": world.a.product_id}
    ok(
        service.rpc(
            "add_brand_member", {"_brand_id": world.a.id, "_user_id": user, "_role": "viewer"}
        )
    )
    assert api.as_user(user).rpc("list_product_batches", args).status == 200
    ok(service.rpc("remove_brand_member", {"_brand_id": world.a.id, "_user_id": user}))
    assert api.as_user(user).rpc("list_product_batches", args).status == 403
