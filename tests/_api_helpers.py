"""Shared helpers for the API tests: a small two-brand world built through the API itself,
a fingerprint of every dpp table (read back as superuser, for verification only), and
assertions on PostgREST error responses.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ROLES = ("owner", "admin", "editor", "viewer")
DPP_TABLES = ("brands", "brand_members", "products", "batches")


def new_id() -> str:
    return str(uuid.uuid4())


def batch_no(prefix: str = "B") -> str:
    """A fresh, valid batch number (CSET 82, at most 20 characters)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def ok(resp: Any) -> Any:
    """The body of a successful response; fails with the error body otherwise."""
    assert resp.status == 200, (resp.status, resp.body)
    return resp.body


def assert_error(resp: Any, status: int, code: str, prefix: str) -> None:
    assert (resp.status, resp.code) == (status, code), (resp.status, resp.body)
    assert resp.message is not None and resp.message.startswith(prefix), resp.body


def assert_invalid(resp: Any, field_name: str | None = None) -> None:
    """400 / 22023 'Invalid input…' whose details start with the field ("_quantity: …")."""
    assert_error(resp, 400, "22023", "Invalid input")
    if field_name is not None:
        assert resp.details is not None and resp.details.startswith(f"{field_name}:"), resp.body


@dataclass
class Brand:
    id: str
    product_id: str
    batch_id: str
    members: dict[str, str] = field(default_factory=dict)  # role -> user id


@dataclass
class World:
    a: Brand
    b: Brand


def make_brand(api: Any, label: str, roles: tuple[str, ...] = ROLES) -> Brand:
    """A brand with one member per role, one product and one batch, made by the service role."""
    service = api.as_service()
    brand_id = ok(service.rpc("create_brand", {"_name": f"{label} {secrets.token_hex(3)}"}))["id"]
    members: dict[str, str] = {}
    for role in roles:
        members[role] = new_id()
        ok(
            service.rpc(
                "add_brand_member",
                {"_brand_id": brand_id, "_user_id": members[role], "_role": role},
            )
        )
    product_id = ok(service.rpc("create_product", {"_brand_id": brand_id, "_name": "Widget"}))["id"]
    batch_id = ok(
        service.rpc(
            "create_product_batch",
            {"_brand_id": brand_id, "_product_id": product_id, "_batch_number": batch_no(label)},
        )
    )["id"]
    return Brand(brand_id, product_id, batch_id, members)


def make_world(api: Any) -> World:
    return World(make_brand(api, "A"), make_brand(api, "B"))


def fingerprint(dsn: str, brand_id: str | None = None) -> str:
    """Digest of every row of every dpp table (optionally only one brand's rows).

    Read as superuser: verification of stored state only, never a way to call the API.
    """
    digest = hashlib.sha256()
    with psycopg.connect(dsn) as conn:
        for table in DPP_TABLES:
            key = "id" if table == "brands" else "brand_id"
            where = f"where t.{key} = %s" if brand_id else ""
            rows = conn.execute(
                f"select t::text from dpp.{table} as t {where} order by 1",  # type: ignore[arg-type]
                (brand_id,) if brand_id else (),
            ).fetchall()
            digest.update(f"{table}:{len(rows)}\n".encode())
            for (row,) in rows:
                digest.update(row.encode() + b"\n")
    return digest.hexdigest()


def stored(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read back stored state as superuser (verification only)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def gtin_check_digit(data: str) -> str:
    """GS1 mod-10 check digit for the data digits of a GTIN (independent of the SQL)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(data)))
    return str((10 - total % 10) % 10)


# The keys the spec shows for a created batch and for a listed row.
SPEC_CREATE_KEYS = {
    "id",
    "product_id",
    "batch_number",
    "status",
    "production_date",
    "quantity",
    "facility_ref",
    "created_at",
}
SPEC_LIST_KEYS = {
    "id",
    "batch_number",
    "status",
    "production_date",
    "quantity",
    "facility_ref",
    "attributes",
    "created_at",
    "updated_at",
}
