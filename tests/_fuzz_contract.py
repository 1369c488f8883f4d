"""Checks on a 2xx result for tests/test_fuzz.py: CONTRACT §3-§4 shapes, field rules and
brand, each result compared with what the call sent and with what is stored afterwards."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from _api_helpers import SPEC_CREATE_KEYS, SPEC_LIST_KEYS
from _fuzz_oracle import (
    FROZEN,
    ROLES,
    STATUSES,
    Before,
    exact_json,
    pg_uuid,
    role_of,
    stored_batch,
)

PATCH_KEYS = ("batch_number", "production_date", "quantity", "facility_ref", "attributes")
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
BATCH_NUMBER = re.compile(r"[A-Za-z0-9!\"%&'()*+,./:;<=>?_-]{1,20}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
INT_MAX = 2**31 - 1

Conn = psycopg.Connection[Any]


def is_label(value: Any, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= limit
        and not CONTROL.search(value)
        and not value[0].isspace()
        and not value[-1].isspace()
    )


def is_batch_number(value: Any) -> bool:
    return (
        isinstance(value, str)
        and BATCH_NUMBER.fullmatch(value) is not None
        and value not in (".", "..")
    )


def is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and RFC3339_UTC.fullmatch(value) is not None


def same_uuid(value: Any, sent: Any) -> bool:
    return isinstance(value, str) and pg_uuid(value) == pg_uuid(sent) and value == value.lower()


def sent_text(args: dict[str, Any], key: str) -> str | None:
    value = args.get(key)
    return value if isinstance(value, str) else None


def approx(value: Any) -> Any:
    """A JSON value with numbers as floats (inf for huge ones): the response is parsed with
    floats, the stored value exactly."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return float(Decimal(value))  # huge values saturate to +-inf
    if isinstance(value, list):
        return [approx(v) for v in value]
    assert isinstance(value, dict), value
    return {k: approx(v) for k, v in value.items()}


def check_batch_fields(row: dict[str, Any]) -> None:
    """CONTRACT §4 field rules on a returned batch."""
    assert is_uuid_text(row["id"]), row
    assert is_uuid_text(row["product_id"]), row
    assert is_batch_number(row["batch_number"]), row
    assert row["status"] in STATUSES, row
    pd = row["production_date"]
    assert pd is None or (isinstance(pd, str) and ISO_DATE.fullmatch(pd)), row
    q = row["quantity"]
    assert q is None or (type(q) is int and 1 <= q <= INT_MAX), row
    assert row["facility_ref"] is None or is_label(row["facility_ref"], 128), row
    if "attributes" in row:
        attrs = row["attributes"]
        assert isinstance(attrs, dict), row
    assert is_timestamp(row["created_at"]), row
    if "updated_at" in row:
        assert is_timestamp(row["updated_at"]), row
        assert parse_ts(row["updated_at"]) >= parse_ts(row["created_at"]), row


def is_uuid_text(value: Any) -> bool:
    return isinstance(value, str) and pg_uuid(value) is not None and value == value.lower()


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def same_as_stored(resp_row: dict[str, Any], stored: dict[str, Any]) -> None:
    """A returned batch equals the stored row (timestamps compared as instants)."""
    for key in ("id", "product_id", "batch_number", "status", "facility_ref"):
        assert resp_row[key] == stored[key], (key, resp_row, stored)
    assert resp_row["production_date"] == stored["production_date"], (resp_row, stored)
    assert approx(resp_row["quantity"]) == approx(stored["quantity"]), (resp_row, stored)
    if "attributes" in resp_row:
        assert approx(resp_row["attributes"]) == approx(stored["attributes"]), "attributes"
    assert parse_ts(resp_row["created_at"]) == parse_ts(stored["created_at"]), (resp_row, stored)
    if "updated_at" in resp_row:
        assert parse_ts(resp_row["updated_at"]) == parse_ts(stored["updated_at"]), resp_row


# --------------------------------------------------------------------------- per RPC


def check_success(
    conn: Conn,
    fn: str,
    kind: str,
    args: dict[str, Any],
    before: Before,
    body: Any,
    *,
    filtered: bool = False,
) -> None:
    """Everything CONTRACT §3-§4 promises about a 2xx result of ``fn`` for this call."""
    checks = {
        "create_brand": _create_brand,
        "add_brand_member": _add_brand_member,
        "remove_brand_member": _remove_brand_member,
        "create_product": _create_product,
        "create_product_batch": _create_product_batch,
        "update_product_batch": _update_product_batch,
        "set_product_batch_status": _set_product_batch_status,
        "get_product_batch": _get_product_batch,
        "find_product_batch": _find_product_batch,
    }
    if fn == "list_product_batches":
        _list_product_batches(conn, args, body, filtered=filtered)
        return
    if fn == "list_product_batch_history":
        _list_product_batch_history(conn, args, body, filtered=filtered)
        return
    if fn == "list_brand_batches":
        _list_brand_batches(conn, args, body, filtered=filtered)
        return
    assert isinstance(body, dict), body
    checks[fn](conn, kind, args, before, body)


def _create_brand(conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any) -> None:
    assert kind == "service", kind
    assert {"id", "name", "created_at"} <= body.keys(), body
    assert is_uuid_text(body["id"]) and is_timestamp(body["created_at"]), body
    assert is_label(body["name"], 200), body
    if (sent := sent_text(args, "_name")) is not None:
        assert body["name"] == sent, body
    row = conn.execute("select name from dpp.brands where id = %s", (body["id"],)).fetchone()
    assert row is not None and row[0] == body["name"], (row, body)


def _owners(conn: Conn, brand: Any) -> int:
    row = conn.execute(
        "select count(*) from dpp.brand_members where brand_id = %s and role = 'owner'", (brand,)
    ).fetchone()
    return int(row[0]) if row else 0


def _add_brand_member(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    assert set(body) >= {"brand_id", "user_id", "role"}, body
    assert same_uuid(body["brand_id"], args["_brand_id"]), body
    assert same_uuid(body["user_id"], args["_user_id"]), body
    assert body["role"] in ROLES and body["role"] == args["_role"], body
    if before.caller_role == "admin":
        assert body["role"] in ("editor", "viewer"), (before, body)
        assert before.target_role not in ("owner", "admin"), (before, body)
    brand, user = pg_uuid(body["brand_id"]), body["user_id"]
    assert brand is not None and role_of(conn, brand, user) == body["role"], body
    if kind != "service" and before.owners:
        assert _owners(conn, brand) >= 1, "a brand lost its last owner"


def _remove_brand_member(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    assert set(body) >= {"brand_id", "user_id"}, body
    assert same_uuid(body["brand_id"], args["_brand_id"]), body
    assert same_uuid(body["user_id"], args["_user_id"]), body
    assert before.target_role is not None, "removed a user who was not a member"
    if before.caller_role == "admin":
        assert before.target_role in ("editor", "viewer"), before
    brand = pg_uuid(body["brand_id"])
    assert brand is not None and role_of(conn, brand, body["user_id"]) is None, body
    if kind != "service" and before.owners:
        assert _owners(conn, brand) >= 1, "a brand lost its last owner"


def _gtin_ok(gtin: str) -> bool:
    digits = [int(d) for d in gtin]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits[:13]))
    return (10 - total % 10) % 10 == digits[13]


def _create_product(conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any) -> None:
    assert {"id", "brand_id", "name", "gtin", "created_at"} <= body.keys(), body
    assert is_uuid_text(body["id"]) and is_timestamp(body["created_at"]), body
    assert same_uuid(body["brand_id"], args["_brand_id"]), body
    assert is_label(body["name"], 200), body
    if (sent := sent_text(args, "_name")) is not None:
        assert body["name"] == sent, body
    gtin = body["gtin"]
    if args.get("_gtin") is None:
        assert gtin is None, body
    else:
        assert isinstance(gtin, str) and re.fullmatch(r"\d{14}", gtin) and _gtin_ok(gtin), body
        if (sent := sent_text(args, "_gtin")) is not None:
            assert gtin == sent.zfill(14), body
    row = conn.execute(
        "select brand_id::text, name, gtin from dpp.products where id = %s", (body["id"],)
    ).fetchone()
    assert row == (body["brand_id"], body["name"], gtin), (row, body)


def _sent_json(value: Any) -> Any:
    return exact_json(json.dumps(value))


def _create_product_batch(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    assert body.keys() >= SPEC_CREATE_KEYS, body
    check_batch_fields(body)
    assert same_uuid(body["brand_id"], args["_brand_id"]), body
    assert same_uuid(body["product_id"], args["_product_id"]), body
    if (sent := sent_text(args, "_batch_number")) is not None:
        assert body["batch_number"] == sent, body
    date = args.get("_production_date")
    if date is None:
        assert body["production_date"] is None, body
    elif isinstance(date, str) and ISO_DATE.fullmatch(date):
        assert body["production_date"] == date, body
    quantity = args.get("_quantity")
    if quantity is None or (type(quantity) is int):
        assert body["quantity"] == quantity, body
    facility = args.get("_facility_ref")
    if facility is None or isinstance(facility, str):
        assert body["facility_ref"] == facility, body
    assert body["status"] == "active", body
    brand, batch_id = pg_uuid(body["brand_id"]), pg_uuid(body["id"])
    assert brand is not None and batch_id is not None
    stored = stored_batch(conn, brand, batch_id)
    assert stored is not None, "the created batch is not stored"
    same_as_stored(body, stored)
    attributes = args.get("_attributes")
    expected = {} if attributes is None else _sent_json(attributes)
    assert stored["attributes"] == expected, "stored attributes differ from the ones sent"


def _update_product_batch(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    assert body.keys() >= SPEC_CREATE_KEYS and "updated_at" in body, body
    check_batch_fields(body)
    assert same_uuid(body["brand_id"], args["_brand_id"]), body
    assert same_uuid(body["id"], args["_batch_id"]), body
    old = before.batch
    assert old is not None, "updated a batch that is not in the brand"
    assert old["status"] not in FROZEN, ("updated a frozen batch", old["status"])
    _expected_updated_at(args, old)
    patch = args["_patch"]
    assert isinstance(patch, dict) and patch and set(patch) <= set(PATCH_KEYS), patch
    brand, batch_id = pg_uuid(body["brand_id"]), pg_uuid(body["id"])
    assert brand is not None and batch_id is not None
    stored = stored_batch(conn, brand, batch_id)
    assert stored is not None
    same_as_stored(body, stored)
    for key in PATCH_KEYS:
        if key not in patch:
            assert stored[key] == old[key], (key, "changed without being in the patch")
        elif key == "attributes":
            assert stored[key] == _sent_json(patch[key]), "attributes differ from the patch"
        elif key == "quantity":
            assert approx(stored[key]) == approx(patch[key]), (key, stored[key], patch[key])
        else:
            assert stored[key] == patch[key], (key, stored[key], patch[key])
    for key in ("id", "brand_id", "product_id", "status", "created_at", "created_by"):
        assert stored[key] == old[key], (key, "must never change")
    assert parse_ts(stored["updated_at"]) > parse_ts(old["updated_at"]), "updated_at did not move"


def _list_product_batches(conn: Conn, args: dict[str, Any], body: Any, *, filtered: bool) -> None:
    assert isinstance(body, list), body
    brand, product = pg_uuid(args.get("_brand_id")), pg_uuid(args.get("_product_id"))
    assert brand is not None and product is not None, args
    rows = conn.execute(
        "select to_jsonb(b)::text from dpp.batches as b where brand_id = %s and product_id = %s",
        (brand, product),
    ).fetchall()
    stored = {r["id"]: r for r in (exact_json(text) for (text,) in rows)}
    for row in body:
        assert isinstance(row, dict) and row.get("id") in stored, ("not this product's", row)
        if not filtered:
            assert row.keys() >= SPEC_LIST_KEYS, row
            check_batch_fields(row)
            same_as_stored(row, stored[row["id"]])
        for key in ("brand_id", "product_id"):
            if key in row:
                assert same_uuid(row[key], args[f"_{key}"]), row
    if not filtered:
        assert len(body) == len(stored), "rows of the product are missing"
        keys = [(parse_ts(r["created_at"]), r["id"]) for r in body]
        assert keys == sorted(keys, reverse=True), "not newest first (created_at, id desc)"


# --------------------------------------------------------------------------- issue 6 RPCs


def _expected_updated_at(args: dict[str, Any], old: dict[str, Any]) -> None:
    """A success with _expected_updated_at given means it matched the stored updated_at."""
    expected = args.get("_expected_updated_at")
    if isinstance(expected, str):
        try:
            sent = datetime.fromisoformat(expected)
        except ValueError:
            return  # a form PostgreSQL reads but Python does not
        if sent.tzinfo is not None:
            assert sent == parse_ts(old["updated_at"]), ("stale update succeeded", expected, old)


def _one_batch(conn: Conn, args: dict[str, Any], body: Any) -> dict[str, Any]:
    """The batch a single-batch RPC returned (an object, or a set of one row), checked
    against the field rules, the brand and the stored row."""
    row = body[0] if isinstance(body, list) and len(body) == 1 else body
    assert isinstance(row, dict), body
    check_batch_fields(row)
    assert same_uuid(row["brand_id"], args["_brand_id"]), row
    brand, batch_id = pg_uuid(row["brand_id"]), pg_uuid(row["id"])
    assert brand is not None and batch_id is not None
    stored = stored_batch(conn, brand, batch_id)
    assert stored is not None, "returned a batch that is not stored in the brand"
    same_as_stored(row, stored)
    return row


def _set_product_batch_status(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    row = _one_batch(conn, args, body)
    assert same_uuid(row["id"], args["_batch_id"]), row
    assert before.batch is not None, "changed the status of a batch not in the brand"
    assert row["status"] == args["_status"], (row, args)
    if row["status"] in ("recalled", "destroyed"):
        assert kind == "service" or before.caller_role in ("admin", "owner"), before
    _expected_updated_at(args, before.batch)


def _digital_link(row: dict[str, Any]) -> None:
    link = row["digital_link"]
    assert link is None or (isinstance(link, str) and link.startswith("/01/")), row


def _get_product_batch(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    row = _one_batch(conn, args, body)
    assert same_uuid(row["id"], args["_batch_id"]), row
    _digital_link(row)


def _find_product_batch(
    conn: Conn, kind: str, args: dict[str, Any], before: Before, body: Any
) -> None:
    row = _one_batch(conn, args, body)
    assert same_uuid(row["product_id"], args["_product_id"]), row
    if (sent := sent_text(args, "_batch_number")) is not None:
        assert row["batch_number"] == sent, row
    _digital_link(row)


def _list_product_batch_history(
    conn: Conn, args: dict[str, Any], body: Any, *, filtered: bool
) -> None:
    assert isinstance(body, list), body
    brand, batch_id = pg_uuid(args.get("_brand_id")), pg_uuid(args.get("_batch_id"))
    assert brand is not None and batch_id is not None, args
    for row in body:
        assert isinstance(row, dict), row
        if "batch_id" in row:
            assert same_uuid(row["batch_id"], args["_batch_id"]), row
    if not filtered:
        found = conn.execute(
            "select count(*) from dpp.batch_events where brand_id = %s and batch_id = %s",
            (brand, batch_id),
        ).fetchone()
        assert found is not None and len(body) == found[0], ("history rows missing", found)


def _list_brand_batches(conn: Conn, args: dict[str, Any], body: Any, *, filtered: bool) -> None:
    assert isinstance(body, list), body
    limit = args.get("_limit", 50)
    if type(limit) is int:
        assert len(body) <= limit, (len(body), limit)
    for row in body:
        assert isinstance(row, dict), row
        assert same_uuid(row["brand_id"], args["_brand_id"]), row
        for key in ("status", "facility_ref"):
            if isinstance(args.get(f"_{key}"), str):
                assert row[key] == args[f"_{key}"], (key, row)
        if not filtered:
            check_batch_fields(row)
            assert isinstance(row["cursor"], str) and row["cursor"], row
    if not filtered:
        keys = [(parse_ts(r["created_at"]), r["id"]) for r in body]
        assert keys == sorted(keys, reverse=True), "not newest first (created_at, id desc)"
