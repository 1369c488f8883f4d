"""Response shapes and JSON types of every RPC, against spec/batches-api.txt and CONTRACT §3-4.

All calls go through PostgrestClient as the real API roles.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from _api_helpers import (
    ISO_DATE,
    RFC3339_UTC,
    SPEC_CREATE_KEYS,
    SPEC_LIST_KEYS,
    Brand,
    assert_invalid,
    batch_no,
    is_uuid,
    make_brand,
    new_id,
    ok,
    stored,
)
from dpp_batches.postgrest import PostgrestClient

# The keys the spec shows, and the extras this package adds (documented in the README).
SPEC_UPDATE_KEYS = {"id", "batch_number", "status", "quantity", "facility_ref", "updated_at"}
# list_product_batches rows: the spec's keys plus brand_id and product_id.
LIST_KEYS = SPEC_CREATE_KEYS | SPEC_LIST_KEYS | SPEC_UPDATE_KEYS | {"brand_id"}
# The batch object every other batch RPC returns: every field plus digital_link.
BATCH_KEYS = LIST_KEYS | {
    "status_reason",
    "status_before_archive",
    "created_by",
    "updated_by",
    "digital_link",
}


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "Shapes")


def _utc(text: str) -> datetime:
    assert RFC3339_UTC.match(text), text
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


def _assert_batch(body: dict[str, Any], keys: set[str] = BATCH_KEYS) -> None:
    assert set(body) == keys, sorted(body)
    assert is_uuid(body["id"]) and is_uuid(body["product_id"]) and is_uuid(body["brand_id"])
    assert isinstance(body["batch_number"], str)
    assert body["status"] == "active"
    assert body["production_date"] is None or ISO_DATE.match(body["production_date"])
    assert body["quantity"] is None or type(body["quantity"]) is int
    assert body["facility_ref"] is None or isinstance(body["facility_ref"], str)
    assert isinstance(body["attributes"], dict)
    assert _utc(body["created_at"]) <= _utc(body["updated_at"])
    if keys is BATCH_KEYS:
        assert body["status_reason"] is None and body["status_before_archive"] is None
        for key in ("created_by", "updated_by"):
            assert body[key] is None or is_uuid(body[key])
        assert body["digital_link"] is None or body["digital_link"].startswith("/01/")


def test_create_brand_shape(as_service: Any) -> None:
    body = ok(as_service.rpc("create_brand", {"_name": "Acme Textiles"}))
    assert set(body) == {"id", "name", "created_at"}
    assert is_uuid(body["id"]) and body["name"] == "Acme Textiles"
    _utc(body["created_at"])


def test_member_rpc_shapes(as_service: Any, brand: Brand) -> None:
    user = new_id()
    added = ok(
        as_service.rpc(
            "add_brand_member", {"_brand_id": brand.id, "_user_id": user, "_role": "editor"}
        )
    )
    assert added == {"brand_id": brand.id, "user_id": user, "role": "editor"}
    changed = ok(
        as_service.rpc(
            "add_brand_member", {"_brand_id": brand.id, "_user_id": user, "_role": "viewer"}
        )
    )
    assert changed == {"brand_id": brand.id, "user_id": user, "role": "viewer"}
    removed = ok(as_service.rpc("remove_brand_member", {"_brand_id": brand.id, "_user_id": user}))
    assert removed == {"brand_id": brand.id, "user_id": user}


def test_create_product_shape(as_user: Any, brand: Brand, db_dsn: str) -> None:
    editor = as_user(brand.members["editor"])
    body = ok(
        editor.rpc(
            "create_product",
            {
                "_brand_id": brand.id,
                "_name": "Jacket",
                "_gtin": "4006381333931",
                "_attributes": {"a": 1},
            },
        )
    )
    assert set(body) == {"id", "brand_id", "name", "gtin", "created_at"}
    assert is_uuid(body["id"]) and body["brand_id"] == brand.id and body["name"] == "Jacket"
    assert body["gtin"] == "04006381333931"
    _utc(body["created_at"])
    assert stored(
        db_dsn,
        "select attributes::text, created_by::text from dpp.products where id = %s",
        body["id"],
    ) == [('{"a": 1}', brand.members["editor"])]
    bare = ok(editor.rpc("create_product", {"_brand_id": brand.id, "_name": "Cap"}))
    assert bare["gtin"] is None


def test_create_batch_matches_spec_example(as_user: Any, brand: Brand) -> None:
    number = batch_no("BATCH")
    body = ok(
        as_user(brand.members["editor"]).rpc(
            "create_product_batch",
            {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": number,
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
                "_attributes": {},
            },
        )
    )
    assert set(body) >= SPEC_CREATE_KEYS
    _assert_batch(body)
    assert body["product_id"] == brand.product_id and body["brand_id"] == brand.id
    assert (
        body["batch_number"],
        body["production_date"],
        body["quantity"],
        body["facility_ref"],
        body["attributes"],
    ) == (number, "2026-01-15", 500, "FAC-EU-01", {})
    assert body["created_at"] == body["updated_at"]
    assert body["created_by"] == body["updated_by"] == brand.members["editor"]
    assert body["digital_link"] is None  # the product has no GTIN


def test_create_batch_optional_fields_omitted(as_user: Any, brand: Brand) -> None:
    body = ok(
        as_user(brand.members["editor"]).rpc(
            "create_product_batch",
            {"_brand_id": brand.id, "_product_id": brand.product_id, "_batch_number": batch_no()},
        )
    )
    _assert_batch(body)
    assert (
        body["production_date"],
        body["quantity"],
        body["facility_ref"],
        body["attributes"],
    ) == (None, None, None, {})


def test_create_batch_null_attributes_mean_empty_object(as_user: Any, brand: Brand) -> None:
    body = ok(
        as_user(brand.members["editor"]).rpc(
            "create_product_batch",
            {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": batch_no(),
                "_attributes": None,
            },
        )
    )
    assert body["attributes"] == {}


def test_update_batch_matches_spec_example(as_user: Any, brand: Brand) -> None:
    editor = as_user(brand.members["editor"])
    created = ok(
        editor.rpc(
            "create_product_batch",
            {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": batch_no(),
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
            },
        )
    )
    body = ok(
        editor.rpc(
            "update_product_batch",
            {
                "_brand_id": brand.id,
                "_batch_id": created["id"],
                "_patch": {"quantity": 600, "facility_ref": "FAC-EU-02"},
            },
        )
    )
    assert set(body) >= SPEC_UPDATE_KEYS
    _assert_batch(body)
    assert (body["id"], body["quantity"], body["facility_ref"]) == (created["id"], 600, "FAC-EU-02")
    assert (body["batch_number"], body["production_date"]) == (
        created["batch_number"],
        "2026-01-15",
    )
    assert body["created_at"] == created["created_at"]
    assert _utc(body["updated_at"]) > _utc(created["updated_at"])


def test_list_shape_and_types(as_user: Any, brand: Brand, as_service: Any) -> None:
    product = ok(as_service.rpc("create_product", {"_brand_id": brand.id, "_name": "List"}))["id"]
    created = ok(
        as_service.rpc(
            "create_product_batch",
            {
                "_brand_id": brand.id,
                "_product_id": product,
                "_batch_number": "BATCH-2026-001",
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
                "_attributes": {"colour": "red"},
            },
        )
    )
    body = ok(
        as_user(brand.members["viewer"]).rpc(
            "list_product_batches", {"_brand_id": brand.id, "_product_id": product}
        )
    )
    assert isinstance(body, list) and len(body) == 1
    row = body[0]
    assert set(row) >= SPEC_LIST_KEYS
    _assert_batch(row, LIST_KEYS)
    assert row == {k: created[k] for k in LIST_KEYS}


def test_list_of_product_without_batches_is_empty_array(
    as_user: Any, brand: Brand, as_service: Any
) -> None:
    product = ok(as_service.rpc("create_product", {"_brand_id": brand.id, "_name": "Empty"}))["id"]
    resp = as_user(brand.members["viewer"]).rpc(
        "list_product_batches", {"_brand_id": brand.id, "_product_id": product}
    )
    assert (resp.status, resp.body) == (200, [])


@pytest.fixture(scope="module")
def listed(api: Any, brand: Brand) -> Iterator[tuple[str, list[str]]]:
    """A product with five batches created one after another (oldest first)."""
    service = api.as_service()
    product = ok(service.rpc("create_product", {"_brand_id": brand.id, "_name": "Many"}))["id"]
    ids = [
        ok(
            service.rpc(
                "create_product_batch",
                {
                    "_brand_id": brand.id,
                    "_product_id": product,
                    "_batch_number": f"L-{i}",
                    "_quantity": 10 * (i + 1),
                },
            )
        )["id"]
        for i in range(5)
    ]
    yield product, ids


def test_list_is_newest_first(as_user: Any, brand: Brand, listed: tuple[str, list[str]]) -> None:
    product, ids = listed
    body = ok(
        as_user(brand.members["viewer"]).rpc(
            "list_product_batches", {"_brand_id": brand.id, "_product_id": product}
        )
    )
    assert [r["id"] for r in body] == ids[::-1]
    keys = [(r["created_at"], r["id"]) for r in body]
    assert keys == sorted(keys, reverse=True)


def test_list_is_callable_with_get(
    as_user: Any, brand: Brand, listed: tuple[str, list[str]]
) -> None:
    product, ids = listed
    resp = as_user(brand.members["viewer"]).rpc(
        "list_product_batches", {"_brand_id": brand.id, "_product_id": product}, method="GET"
    )
    assert resp.status == 200 and [r["id"] for r in resp.body] == ids[::-1]


def test_list_supports_postgrest_filters_order_limit_and_count(
    as_user: Any, brand: Brand, listed: tuple[str, list[str]]
) -> None:
    product, ids = listed
    viewer = as_user(brand.members["viewer"])
    args = {"_brand_id": brand.id, "_product_id": product}

    filtered = ok(viewer.rpc("list_product_batches", args, query=[("quantity", "gte.30")]))
    assert [r["batch_number"] for r in filtered] == ["L-4", "L-3", "L-2"]

    one = ok(viewer.rpc("list_product_batches", args, query=[("batch_number", "eq.L-1")]))
    assert [r["id"] for r in one] == [ids[1]]

    ordered = ok(viewer.rpc("list_product_batches", args, query=[("order", "quantity.asc")]))
    assert [r["quantity"] for r in ordered] == [10, 20, 30, 40, 50]

    page = viewer.rpc(
        "list_product_batches",
        args,
        prefer=["count=exact"],
        query=[("order", "created_at.desc"), ("limit", "2"), ("offset", "1")],
    )
    assert page.status == 206
    assert [r["id"] for r in page.body] == [ids[3], ids[2]]
    assert page.headers["Content-Range"] == "1-2/5"

    projected = ok(
        viewer.rpc(
            "list_product_batches",
            args,
            query=[("select", "batch_number,quantity"), ("limit", "1")],
        )
    )
    assert projected == [{"batch_number": "L-4", "quantity": 50}]


def test_timestamps_are_utc_whatever_the_session_timezone(
    authenticator_dsn: str, brand: Brand, db_dsn: str
) -> None:
    """The session TimeZone of the connection must not leak into any timestamp."""
    kolkata = make_conninfo(authenticator_dsn, options="-c TimeZone=Asia/Kolkata")
    with PostgrestClient(kolkata) as client:
        editor = client.as_user(brand.members["editor"])
        product = ok(editor.rpc("create_product", {"_brand_id": brand.id, "_name": "TZ"}))
        batch = ok(
            editor.rpc(
                "create_product_batch",
                {"_brand_id": brand.id, "_product_id": product["id"], "_batch_number": batch_no()},
            )
        )
        updated = ok(
            editor.rpc(
                "update_product_batch",
                {"_brand_id": brand.id, "_batch_id": batch["id"], "_patch": {"quantity": 7}},
            )
        )
        listed = ok(
            editor.rpc(
                "list_product_batches", {"_brand_id": brand.id, "_product_id": product["id"]}
            )
        )
        brand_body = ok(client.as_service().rpc("create_brand", {"_name": "TZ brand"}))
    [(created_at, updated_at)] = stored(
        db_dsn, "select created_at, updated_at from dpp.batches where id = %s", batch["id"]
    )
    for text in (
        product["created_at"],
        batch["created_at"],
        updated["updated_at"],
        listed[0]["created_at"],
        listed[0]["updated_at"],
        brand_body["created_at"],
    ):
        assert text.endswith("Z") and RFC3339_UTC.match(text), text
    assert _utc(batch["created_at"]) == created_at.astimezone(UTC)
    assert _utc(listed[0]["updated_at"]) == updated_at.astimezone(UTC)
    assert listed[0]["created_at"] == batch["created_at"]


def test_invalid_input_response_names_the_field(as_user: Any, brand: Brand) -> None:
    resp = as_user(brand.members["editor"]).rpc(
        "create_product_batch",
        {"_brand_id": brand.id, "_product_id": brand.product_id, "_batch_number": "BAD NUMBER"},
    )
    assert_invalid(resp, "_batch_number")
    assert set(resp.body) == {"code", "message", "details", "hint"}
    assert resp.hint
