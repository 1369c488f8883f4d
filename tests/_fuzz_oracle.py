"""The contract as an oracle for tests/test_fuzz.py.

The fuzz world (two brands, their members, products and batches), the caller kinds of
CONTRACT §2, the state read as superuser before a call, and the checks every response gets:
the error body (§5) and the gate, identity -> brand access -> input. The checks on a 2xx
result are in tests/_fuzz_contract.py.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

ROLES = ("owner", "admin", "editor", "viewer")
RANK = {"viewer": 1, "editor": 2, "admin": 3, "owner": 4}
# The brand role each brand-scoped RPC needs (CONTRACT §3, §4); create_brand is service-only.
NEEDS = {
    "add_brand_member": "admin",
    "remove_brand_member": "admin",
    "create_product": "editor",
    "create_product_batch": "editor",
    "update_product_batch": "editor",
    "list_product_batches": "viewer",
    # issue 6 (batch lifecycle, audit trail, read path)
    "set_product_batch_status": "editor",
    "list_product_batch_history": "viewer",
    "get_product_batch": "viewer",
    "find_product_batch": "viewer",
    "list_brand_batches": "viewer",
}
STATUSES = ("active", "on_hold", "closed", "recalled", "destroyed", "archived")
FROZEN = ("recalled", "destroyed", "archived")  # metadata can no longer be updated
MEMBER_RPCS = ("add_brand_member", "remove_brand_member")
CONTRACT_ERRORS = {  # SQLSTATE -> (HTTP status, message prefix); CONTRACT §5
    "PT401": (401, "Not authenticated"),
    "42501": (403, "Forbidden"),
    "22023": (400, "Invalid input"),
    "23505": (409, "Invalid input"),
    "PT409": (409, "Conflict"),  # a stale _expected_updated_at (issue 6)
}
# Caller kinds: every identity a request can carry (CONTRACT §2).
UNAUTHENTICATED = (
    "no-claims",
    "anon",
    "bad-sub",
    "no-sub",
    "sub-number",
    "expired",
    "expired-service",
    "exp-text",
)
USERS = ("non-member", "foreign-owner", "viewer", "editor", "admin", "owner")
CALLER_KINDS = (*UNAUTHENTICATED, *USERS, "service")


@dataclass
class World:
    brand_a: str
    brand_b: str
    products_a: list[str]
    product_b: str
    batches_a: list[str]
    batch_b: str
    members_a: dict[str, str]  # role -> user id
    owner_b: str
    non_member: str
    batch_numbers: list[str]

    def uuids(self) -> list[str]:
        return [
            self.brand_a,
            self.brand_b,
            *self.products_a,
            self.product_b,
            *self.batches_a,
            self.batch_b,
            *self.members_a.values(),
            self.owner_b,
            self.non_member,
        ]

    def user_of(self, kind: str) -> str | None:
        if kind in ROLES:
            return self.members_a[kind]
        return {"non-member": self.non_member, "foreign-owner": self.owner_b}.get(kind)

    def claims(self, kind: str) -> dict[str, Any] | None:
        now = int(time.time())
        owner = self.members_a["owner"]
        fixed: dict[str, dict[str, Any] | None] = {
            "no-claims": None,
            "anon": {"role": "anon"},
            "bad-sub": {"role": "authenticated", "sub": "not-a-uuid", "exp": now + 600},
            "no-sub": {"role": "authenticated", "exp": now + 600},
            "sub-number": {"role": "authenticated", "sub": 12345, "exp": now + 600},
            "expired": {"role": "authenticated", "sub": owner, "exp": now - 30},
            "expired-service": {"role": "service_role", "exp": now - 30},
            "exp-text": {"role": "authenticated", "sub": owner, "exp": str(now + 600)},
            "service": {"role": "service_role", "exp": now + 600},
        }
        if kind in fixed:
            return fixed[kind]
        user = self.user_of(kind)
        assert user is not None, kind
        return {"role": "authenticated", "sub": user, "aud": "authenticated", "exp": now + 600}

    def baseline_members(self) -> list[tuple[str, str, str]]:
        rows = [(self.brand_a, user, role) for role, user in self.members_a.items()]
        return [*rows, (self.brand_b, self.owner_b, "owner")]


def pg_uuid(value: Any) -> uuid.UUID | None:
    """The uuid PostgreSQL's uuid_in reads from a JSON value (lenient superset); None for
    null or anything it would reject."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.replace("-", "")
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", text):
        return None
    return uuid.UUID(text)


@dataclass
class Before:
    """Stored state read as superuser just before the call."""

    brand: uuid.UUID | None
    caller_role: str | None
    target_role: str | None
    owners: int
    batch: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)


_BEFORE_SQL = """
select (select m.role from dpp.brand_members as m
        where m.brand_id = %(brand)s and m.user_id = %(user)s),
       (select m.role from dpp.brand_members as m
        where m.brand_id = %(brand)s and m.user_id = %(target)s),
       (select count(*) from dpp.brand_members as m
        where m.brand_id = %(brand)s and m.role = 'owner'),
       (select to_jsonb(b)::text from dpp.batches as b
        where b.brand_id = %(brand)s and b.id = %(batch)s)
"""


def read_before(
    conn: psycopg.Connection[Any], world: World, fn: str, kind: str, args: dict[str, Any]
) -> Before:
    """The caller's and the target user's role in the requested brand, its owner count, and
    the batch an update names: one statement."""
    brand = pg_uuid(args.get("_brand_id"))
    if brand is None:
        return Before(None, None, None, 0, None)
    row = conn.execute(
        _BEFORE_SQL,
        {
            "brand": brand,
            "user": world.user_of(kind),
            "target": pg_uuid(args.get("_user_id")),
            "batch": pg_uuid(args.get("_batch_id")),
        },
    ).fetchone()
    assert row is not None
    batch = exact_json(row[3]) if row[3] is not None else None
    return Before(brand, row[0], row[1], int(row[2]), batch)


def role_of(conn: psycopg.Connection[Any], brand: uuid.UUID, user: str) -> str | None:
    row = conn.execute(
        "select role from dpp.brand_members where brand_id = %s and user_id = %s",
        (brand, user),
    ).fetchone()
    return row[0] if row else None


def stored_batch(
    conn: psycopg.Connection[Any], brand: uuid.UUID, batch_id: uuid.UUID
) -> dict[str, Any] | None:
    row = conn.execute(
        "select to_jsonb(b)::text from dpp.batches as b where b.brand_id = %s and b.id = %s",
        (brand, batch_id),
    ).fetchone()
    return exact_json(row[0]) if row else None


def exact_json(text: str) -> Any:
    """JSON text with every number as an exact Decimal (for comparing stored values)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def gate(fn: str, kind: str, before: Before) -> str:
    """What the caller must get once the function runs: 'PT401', '42501' or 'pass'."""
    if kind in UNAUTHENTICATED:
        return "PT401"
    if kind == "service":
        return "pass"
    if fn == "create_brand":
        return "42501"
    role = before.caller_role
    return "pass" if role is not None and RANK[role] >= RANK[NEEDS[fn]] else "42501"


def check_error(resp: Any) -> bool:
    """Check an error response's body; True when it is one of the contract's own errors
    (the function ran), False for errors raised before it (JSON, routing, parameter types)."""
    assert isinstance(resp.body, dict), resp.body
    assert set(resp.body) == {"code", "message", "details", "hint"}, resp.body
    code, message, details = resp.body["code"], resp.body["message"], resp.body["details"]
    assert isinstance(code, str) and isinstance(message, str) and message, resp.body
    if code not in CONTRACT_ERRORS:
        return False
    # PostgreSQL raises none of these four before the function runs: a 42501 or 23505 of its
    # own (a missing grant, a bare unique violation) breaks the contract's message rule.
    status, prefix = CONTRACT_ERRORS[code]
    assert message.startswith(prefix), resp.body
    assert resp.status == status, (resp.status, resp.body)
    if code != "PT401":  # details name the field and the rule broken
        assert isinstance(details, str) and re.match(r"[\w.]+: ", details), resp.body
    return True


def check_gate(
    fn: str, kind: str, args: dict[str, Any], before: Before, resp: Any, ours: bool
) -> None:
    """Identity -> brand access -> input, with nothing learned about brands one cannot see."""
    if not (resp.ok or ours):
        return  # refused before the function ran (JSON, routing, parameter types)
    expected = gate(fn, kind, before)
    if expected != "pass":
        assert not resp.ok, (expected, resp.status, resp.body)
        assert resp.body["code"] == expected, (expected, resp.status, resp.body)
        return
    if resp.ok:
        return
    assert resp.body["code"] != "PT401", resp.body
    if resp.body["code"] == "42501":  # only the rules beyond the brand role remain
        admin_rule = fn in MEMBER_RPCS and before.caller_role == "admin"
        recall_rule = (
            fn == "set_product_batch_status"
            and before.caller_role == "editor"
            and args.get("_status") in ("recalled", "destroyed")
        )
        assert admin_rule or recall_rule, resp.body
