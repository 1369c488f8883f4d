"""Soak and load driver: N concurrent API clients for T seconds, then an audit of stored state.

``python -m dpp_batches.soak --clients 8 --seconds 10`` creates a scratch database (on
``--dsn`` / ``DATABASE_URL``, else on an embedded PostgreSQL in a temporary directory), migrates
it, builds a world of brands, products and members with service_role RPCs, and lets every client
-- one user each, its own :class:`PostgrestClient` as the authenticator, so its own connection --
mix creates (some with batch numbers that collide on purpose), lists, updates of its own batches,
updates of "hot" batches that all editors of a brand write at once, and probes at brands and rows
it has no access to. Every response is checked against what the caller's role allows.

Afterwards, reading the tables as the owner (verification only), the audit proves: no list ever
returned a row of another brand or product; batch numbers are unique per product; the stored rows
are exactly the seeded ones plus the acknowledged creates; the last acknowledged write of every
batch is what is stored (hot batches: the acknowledged write with the greatest ``updated_at``,
which the audit trigger makes strictly increasing in commit order); no deadlock, no 5xx.

With ``Profile.retry_for > 0`` (fault-injection runs) a response that a fault explains (connection
lost, server shutting down, statement cancelled) is retried like a careful client would; a create
whose outcome was unknown and whose retry reports a duplicate is resolved by looking the batch up
by number and a per-request token in its attributes.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from dpp_batches.migrate import MigrationError, migrate
from dpp_batches.postgrest import PostgrestClient, Response

CLIENT_APP_PREFIX = "dpp-soak-client-"
MUTATORS = frozenset({"owner", "admin", "editor"})
ROLE_CYCLE = ("editor", "editor", "viewer", "owner", "admin")
# Responses a fault explains (PostgREST statuses): lost or refused connection, admin shutdown,
# crash recovery, "starting up", cancelled statement.
FAULT_CODES = frozenset({"PGRST000", "57P01", "57P02", "57P03", "57014"})
_LABELS = {
    (409, "23505"): "duplicate batch_number (collision, expected)",
    (403, "42501"): "forbidden (role or brand, expected)",
    (400, "22023"): "invalid input: foreign id (expected)",
}
_MAX_FINDINGS = 50


@dataclass(frozen=True)
class Profile:
    clients: int = 8
    seconds: float = 10.0
    brands: int = 0  # 0: one brand per three clients; never fewer than two
    products: int = 2  # per brand
    collision_pool: int = 3  # colliding batch numbers per product and second
    seed: int | None = None
    retry_for: float = 0.0  # > 0: retry fault responses for up to this many seconds

    @property
    def brand_count(self) -> int:
        return max(2, self.brands or -(-self.clients // 3))


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Brand:
    id: str
    products: tuple[str, ...]
    hot: tuple[tuple[str, str], ...]  # (product id, batch id) written by all its editors


@dataclass(frozen=True)
class User:
    id: str
    home: Brand
    role: str
    second: Brand  # another brand, where the user is a viewer


@dataclass(frozen=True)
class World:
    brands: tuple[Brand, ...]
    stranger: Brand  # nobody is a member: its rows must never be returned or changed
    users: tuple[User, ...]
    seeded: Mapping[str, Mapping[str, Any]]  # batch id -> create response, for setup batches

    @property
    def all_brands(self) -> tuple[Brand, ...]:
        return (*self.brands, self.stranger)


def build_world(api_dsn: str, profile: Profile) -> World:
    """Brands, products, members and seed batches, all made by the service role via the API."""
    seeded: dict[str, Mapping[str, Any]] = {}
    with PostgrestClient(api_dsn, application_name="dpp-soak-setup") as client:
        service = client.as_service()

        def call(fn: str, args: Mapping[str, Any]) -> Any:
            resp = service.rpc(fn, args)
            if resp.status != 200:
                raise SoakError(f"setup call {fn} failed: HTTP {resp.status} {resp.body}")
            return resp.body

        def brand(label: str) -> Brand:
            brand_id = call("create_brand", {"_name": f"soak {label}"})["id"]
            products, hot = [], []
            for p in range(profile.products if label != "stranger" else 1):
                product_id = call("create_product", {"_brand_id": brand_id, "_name": f"P{p}"})["id"]
                body = call(
                    "create_product_batch",
                    {
                        "_brand_id": brand_id,
                        "_product_id": product_id,
                        "_batch_number": f"HOT-{p}",
                        "_quantity": 1,
                    },
                )
                seeded[body["id"]] = body
                products.append(product_id)
                hot.append((product_id, body["id"]))
            return Brand(brand_id, tuple(products), tuple(hot))

        brands = tuple(brand(f"brand {b}") for b in range(profile.brand_count))
        stranger = brand("stranger")
        users = []
        for i in range(profile.clients):
            home = brands[i % len(brands)]
            second = brands[(i + 1) % len(brands)]
            user = User(str(uuid.uuid4()), home, ROLE_CYCLE[i % len(ROLE_CYCLE)], second)
            call(
                "add_brand_member", {"_brand_id": home.id, "_user_id": user.id, "_role": user.role}
            )
            call(
                "add_brand_member", {"_brand_id": second.id, "_user_id": user.id, "_role": "viewer"}
            )
            users.append(user)
    return World(brands, stranger, tuple(users), seeded)


# --------------------------------------------------------------------------- the clients


@dataclass
class Ledger:
    """What the clients were told, merged over all clients."""

    ops: int = 0
    mix: Counter[tuple[str, int, str | None]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)  # retried fault responses
    resolved: int = 0  # creates with an unknown outcome, found committed on retry
    created: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (brand, product)
    own: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> last acked state
    hot: defaultdict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # batch id -> every acknowledged write
    seen: set[tuple[str, str, str]] = field(default_factory=set)  # (brand, product, id) listed
    lists: int = 0
    rows_listed: int = 0
    leaks: int = 0  # listed rows of another brand or product
    violations: list[str] = field(default_factory=list)
    last_ok: float = 0.0  # time.monotonic() of the latest 2xx

    def merge(self, other: Ledger) -> None:
        self.ops += other.ops
        self.mix.update(other.mix)
        self.faults.update(other.faults)
        self.resolved += other.resolved
        self.created.update(other.created)
        self.own.update(other.own)
        for batch_id, acks in other.hot.items():
            self.hot[batch_id].extend(acks)
        self.seen |= other.seen
        self.lists += other.lists
        self.rows_listed += other.rows_listed
        self.leaks += other.leaks
        self.violations.extend(other.violations)
        self.last_ok = max(self.last_ok, other.last_ok)


class SoakError(RuntimeError):
    """The soak could not run (setup failed); ``str()`` is one line."""


class _Client:
    """One user, one connection, one thread."""

    def __init__(
        self, index: int, user: User, world: World, api_dsn: str, profile: Profile, run_tag: str
    ) -> None:
        self.index = index
        self.user = user
        self.world = world
        self.profile = profile
        self.started = 0.0  # set by run()
        self.rng = random.Random(None if profile.seed is None else profile.seed * 1000 + index)
        self.client = PostgrestClient(api_dsn, application_name=f"{run_tag}-{index}")
        self.ledger = Ledger()
        self.seq = 0
        self.mutator = user.role in MUTATORS
        ops: list[tuple[Callable[[], None], int]] = [
            (self.create, 35 if self.mutator else 10),
            (self.update_own, 20 if self.mutator else 0),
            (self.update_hot, 15 if self.mutator else 5),
            (self.list, 22 if self.mutator else 70),
            (self.probe, 8 if self.mutator else 15),
        ]
        self.ops = [op for op, w in ops if w]
        self.weights = [w for _, w in ops if w]

    def run(self, started: float, stop_at: float) -> None:
        self.started = started
        try:
            while time.monotonic() < stop_at:
                self.seq += 1
                self.rng.choices(self.ops, self.weights)[0]()
        except Exception as exc:  # a crash is a finding, not a silent thread death
            where = traceback.extract_tb(exc.__traceback__)[-3:]
            frames = " < ".join(
                f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(where)
            )
            self.violate(f"client {self.index} crashed: {type(exc).__name__}: {exc} at {frames}")
        finally:
            self.client.close()

    def violate(self, text: str) -> None:
        if len(self.ledger.violations) < _MAX_FINDINGS:
            self.ledger.violations.append(text)

    # -- one request, with the role's expected outcome -----------------------------------------

    def call(
        self,
        op: str,
        fn: str,
        args: Mapping[str, Any],
        *,
        expect: set[tuple[int, str]],
        get: bool = False,
        query: Mapping[str, str] | None = None,
    ) -> tuple[Response, bool]:
        """Send one request (retrying faults in retry mode); returns (response, outcome unknown
        at some point). ``expect`` lists the acceptable error (status, code) pairs besides 200."""
        give_up: float | None = None
        ambiguous = False
        while True:
            caller = self.client.as_user(self.user.id)  # fresh exp for long soaks
            resp = caller.rpc(fn, args, method="GET" if get else "POST", query=query)
            self.ledger.ops += 1
            if not (self.profile.retry_for > 0 and is_fault(resp)):
                break
            self.ledger.faults[f"{resp.status} {resp.code}"] += 1
            ambiguous = True
            now = time.monotonic()
            give_up = give_up or now + self.profile.retry_for
            if now > give_up:
                self.violate(
                    f"{op}: still failing after {self.profile.retry_for:g}s of retries: "
                    f"{resp.status} {resp.code} {resp.message}"
                )
                return resp, ambiguous
            time.sleep(0.02 + self.rng.random() * 0.05)
        self.ledger.mix[(op, resp.status, resp.code)] += 1
        if resp.ok:
            self.ledger.last_ok = time.monotonic()
            if expect and (200, "") not in expect:
                self.violate(f"{op}: {fn} succeeded but the caller's role forbids it: {args}")
        elif (resp.status, resp.code or "") not in expect:
            self.violate(f"{op}: unexpected {resp.status} {resp.code}: {resp.message}")
        return resp, ambiguous

    def _mutation_expect(
        self, brand: Brand, *, collide: bool, foreign: bool
    ) -> set[tuple[int, str]]:
        if self.role_in(brand) not in MUTATORS:
            return {(403, "42501")}
        if foreign:
            return {(400, "22023")}
        return {(200, ""), (409, "23505")} if collide else {(200, "")}

    def role_in(self, brand: Brand) -> str | None:
        if brand.id == self.user.home.id:
            return self.user.role
        if brand.id == self.user.second.id:
            return "viewer"
        return None

    # -- operations ----------------------------------------------------------------------------

    def batch_number(self) -> tuple[str, bool]:
        """A colliding number from the pool of this second, or one of this client's own."""
        if self.rng.random() < 0.3:
            epoch = int(time.monotonic() - self.started)
            return f"C{epoch}-{self.rng.randrange(self.profile.collision_pool)}", True
        return f"U{self.index}-{self.seq}", False

    def create(self) -> None:
        brand = self.user.home if self.rng.random() < 0.85 else self.user.second
        product = self.rng.choice(brand.products)
        number, collide = self.batch_number()
        token = f"{self.index}.{self.seq}"
        args: dict[str, Any] = {
            "_brand_id": brand.id,
            "_product_id": product,
            "_batch_number": number,
            "_attributes": {"op": token},
        }
        if self.rng.random() < 0.5:
            args["_quantity"] = self.rng.randrange(1, 10**6)
            args["_production_date"] = self._date()
            args["_facility_ref"] = f"FAC-{self.rng.randrange(100)}"
        expect = self._mutation_expect(brand, collide=True, foreign=False)
        if not collide and self.profile.retry_for <= 0:
            expect.discard((409, "23505"))
        resp, ambiguous = self.call("create", "create_product_batch", args, expect=expect)
        if resp.status == 409 and ambiguous:
            found = self.lookup(brand, product, number)
            if found is not None and found.get("attributes", {}).get("op") == token:
                self.ledger.resolved += 1
                self.record_create(brand, product, found)
            return
        if resp.ok:
            self.record_create(brand, product, resp.body)

    def record_create(self, brand: Brand, product: str, body: dict[str, Any]) -> None:
        self.ledger.created[body["id"]] = (brand.id, product)
        self.ledger.own[body["id"]] = body

    def lookup(self, brand: Brand, product: str, number: str) -> dict[str, Any] | None:
        resp, _ = self.call(
            "lookup",
            "list_product_batches",
            {"_brand_id": brand.id, "_product_id": product},
            expect=set(),
            get=True,
            query={"batch_number": f"eq.{number}"},
        )
        if resp.ok and isinstance(resp.body, list) and resp.body:
            self.check_rows("lookup", brand, product, resp.body)
            row: dict[str, Any] = resp.body[0]
            return row
        return None

    def update_own(self) -> None:
        if not self.ledger.own:
            self.create()
            return
        batch_id = self.rng.choice(list(self.ledger.own))
        state = self.ledger.own[batch_id]
        brand = next(b for b in self.world.brands if b.id == state["brand_id"])
        patch: dict[str, Any] = {}
        while not patch:
            if self.rng.random() < 0.5:
                patch["quantity"] = self.rng.choice([None, self.rng.randrange(1, 10**6)])
            if self.rng.random() < 0.3:
                patch["facility_ref"] = self.rng.choice([None, f"FAC-{self.rng.randrange(100)}"])
            if self.rng.random() < 0.3:
                patch["production_date"] = self.rng.choice([None, self._date()])
            if self.rng.random() < 0.3:
                patch["attributes"] = {"v": self.seq, "by": self.index}
            if self.rng.random() < 0.2:
                patch["batch_number"] = self.batch_number()[0]
        args = {"_brand_id": brand.id, "_batch_id": batch_id, "_patch": patch}
        expect = self._mutation_expect(brand, collide="batch_number" in patch, foreign=False)
        resp, _ = self.call("update", "update_product_batch", args, expect=expect)
        if resp.ok:
            self.ledger.own[batch_id] = resp.body

    def update_hot(self) -> None:
        brand = self.user.home
        _, batch_id = self.rng.choice(brand.hot)
        patch = {
            "quantity": self.rng.randrange(1, 10**6),
            "attributes": {"by": self.index, "n": self.seq},
        }
        args = {"_brand_id": brand.id, "_batch_id": batch_id, "_patch": patch}
        expect = self._mutation_expect(brand, collide=False, foreign=False)
        resp, _ = self.call("update_hot", "update_product_batch", args, expect=expect)
        if resp.ok:
            self.ledger.hot[batch_id].append(resp.body)

    def list(self) -> None:
        brand = self.user.home if self.rng.random() < 0.7 else self.user.second
        product = self.rng.choice(brand.products)
        get = self.rng.random() < 0.5
        resp, _ = self.call(
            "list",
            "list_product_batches",
            {"_brand_id": brand.id, "_product_id": product},
            expect={(200, "")},
            get=get,
            query={"limit": "100"},
        )
        if resp.ok:
            self.check_rows("list", brand, product, resp.body)

    def check_rows(self, op: str, brand: Brand, product: str, rows: Any) -> None:
        self.ledger.lists += 1
        if self.role_in(brand) is None:
            self.violate(f"{op}: a non-member listed brand {brand.id}")
        if not isinstance(rows, list):
            self.violate(f"{op}: list body is not an array: {rows!r:.200}")
            return
        self.ledger.rows_listed += len(rows)
        for row in rows:
            if row.get("brand_id") != brand.id or row.get("product_id") != product:
                self.ledger.leaks += 1
                self.violate(
                    f"{op}: cross-brand row for brand {brand.id} product {product}: {row!r:.300}"
                )
            self.ledger.seen.add((brand.id, product, str(row.get("id"))))

    def probe(self) -> None:
        """Reach for what the caller may not touch; nothing may be returned or changed."""
        home, stranger = self.user.home, self.world.stranger
        s_product, s_batch = stranger.hot[0]
        kind = self.rng.randrange(5)
        if kind == 0:  # list another brand's product
            resp, _ = self.call(
                "probe",
                "list_product_batches",
                {"_brand_id": stranger.id, "_product_id": s_product},
                expect={(403, "42501")},
                get=True,
            )
            if resp.ok:
                self.check_rows("probe", stranger, s_product, resp.body)
        elif kind == 1:  # create in another brand
            self.call(
                "probe",
                "create_product_batch",
                {
                    "_brand_id": stranger.id,
                    "_product_id": s_product,
                    "_batch_number": f"X{self.index}-{self.seq}",
                },
                expect={(403, "42501")},
            )
        elif kind == 2:  # own brand id, foreign product id
            resp, _ = self.call(
                "probe",
                "list_product_batches",
                {"_brand_id": home.id, "_product_id": s_product},
                expect={(400, "22023")},
            )
            if resp.ok:
                self.check_rows("probe", home, s_product, resp.body)
        elif kind == 3:  # own brand id, foreign batch id
            self.call(
                "probe",
                "update_product_batch",
                {"_brand_id": home.id, "_batch_id": s_batch, "_patch": {"quantity": 7}},
                expect=self._mutation_expect(home, collide=False, foreign=True),
            )
        else:  # own brand id, foreign product id, create
            self.call(
                "probe",
                "create_product_batch",
                {
                    "_brand_id": home.id,
                    "_product_id": s_product,
                    "_batch_number": f"X{self.index}-{self.seq}",
                },
                expect=self._mutation_expect(home, collide=False, foreign=True),
            )

    def _date(self) -> str:
        return date(
            self.rng.randrange(2020, 2030), self.rng.randrange(1, 13), self.rng.randrange(1, 29)
        ).isoformat()


def is_fault(resp: Response) -> bool:
    """True for a response that a fault (not the request) explains."""
    code = resp.code or ""
    return resp.status in (500, 503) and (code in FAULT_CODES or code.startswith("08"))


# --------------------------------------------------------------------------- the audit


@dataclass
class Audit:
    findings: list[str] = field(default_factory=list)
    rows: int = 0
    seeded: int = 0
    acked_creates: int = 0
    states_checked: int = 0
    hot_writes: int = 0

    def find(self, text: str) -> None:
        if len(self.findings) < _MAX_FINDINGS:
            self.findings.append(text)


_COMPARED = (
    "brand_id",
    "product_id",
    "batch_number",
    "production_date",
    "quantity",
    "facility_ref",
    "attributes",
    "updated_at",
)


def audit(conn: psycopg.Connection[Any], world: World, ledger: Ledger) -> Audit:
    """Compare what clients were told with what is stored (read as the table owner)."""
    result = Audit(seeded=len(world.seeded), acked_creates=len(ledger.created))
    brand_ids = [b.id for b in world.all_brands]
    stored: dict[str, dict[str, Any]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select id::text, brand_id::text, product_id::text, batch_number, production_date,"
            " quantity, facility_ref, attributes, updated_at"
            " from dpp.batches where brand_id = any(%s::uuid[])",
            (brand_ids,),
        )
        for row in cur:
            stored[row["id"]] = row
        cur.execute(
            "select brand_id, product_id, batch_number, count(*) as n from dpp.batches"
            " where brand_id = any(%s::uuid[]) group by 1, 2, 3 having count(*) > 1",
            (brand_ids,),
        )
        for dup in cur:
            result.find(
                f"batch_number {dup['batch_number']!r} stored {dup['n']} times in "
                f"product {dup['product_id']}"
            )
    result.rows = len(stored)

    expected = set(world.seeded) | set(ledger.created)
    for batch_id in sorted(expected - set(stored)):
        result.find(f"acknowledged batch {batch_id} is not stored (lost)")
    for batch_id in sorted(set(stored) - expected):
        result.find(
            f"stored batch {batch_id} ({stored[batch_id]['batch_number']!r}) was never acknowledged"
        )

    def compare(batch_id: str, told: Mapping[str, Any], what: str) -> None:
        result.states_checked += 1
        row = stored.get(batch_id)
        if row is None:
            return  # reported above
        diff = [k for k in _COMPARED if _stored_value(row[k]) != _told_value(k, told.get(k))]
        if diff:
            result.find(f"batch {batch_id}: stored {', '.join(diff)} differ from the {what}")

    for batch_id, state in ledger.own.items():
        compare(batch_id, state, "last acknowledged write")
    for brand in world.all_brands:
        for _, batch_id in brand.hot:
            acks = ledger.hot.get(batch_id, [])
            result.hot_writes += len(acks)
            stamps = [_parse_ts(a["updated_at"]) for a in acks]
            if len(set(stamps)) != len(stamps):
                result.find(f"hot batch {batch_id}: two acknowledged writes share an updated_at")
            last = (
                max(acks, key=lambda a: _parse_ts(a["updated_at"]))
                if acks
                else world.seeded[batch_id]
            )
            compare(batch_id, last, "acknowledged write with the latest updated_at")
    for brand_id, product_id, batch_id in ledger.seen:
        listed = stored.get(batch_id)
        if listed is None or (listed["brand_id"], listed["product_id"]) != (brand_id, product_id):
            result.find(f"listed row {batch_id} under brand {brand_id} is not stored there")
    return result


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _told_value(key: str, value: Any) -> Any:
    if key == "updated_at" and isinstance(value, str):
        return _parse_ts(value)
    return value


def _stored_value(value: Any) -> Any:
    return (
        value.isoformat() if isinstance(value, date) and not isinstance(value, datetime) else value
    )


# --------------------------------------------------------------------------- the run


@dataclass
class Report:
    profile: Profile
    world: World
    elapsed: float
    ledger: Ledger
    audit: Audit

    @property
    def ops_per_second(self) -> float:
        return self.ledger.ops / self.elapsed if self.elapsed else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status, _c), n in self.ledger.mix.items() if status >= 500)

    @property
    def deadlocks(self) -> int:
        return sum(n for (_, _s, code), n in self.ledger.mix.items() if code == "40P01")

    @property
    def ok(self) -> bool:
        return not (
            self.ledger.violations or self.audit.findings or self.server_errors or self.deadlocks
        )

    def render(self) -> str:
        p, led, aud = self.profile, self.ledger, self.audit
        lines = [
            f"soak: {p.clients} clients x {p.seconds:g} s over {p.brand_count} brands: "
            f"{led.ops} requests in {self.elapsed:.1f} s = {self.ops_per_second:.1f} ops/s"
        ]
        by_op: defaultdict[str, Counter[str]] = defaultdict(Counter)
        errors: Counter[tuple[int, str | None]] = Counter()
        for (op, status, code), n in led.mix.items():
            by_op[op][f"{status}" if status < 300 else f"{status} {code}"] += n
            if status >= 300:
                errors[(status, code)] += n
        for op in sorted(by_op):
            mix = ", ".join(f"{k}: {n}" for k, n in sorted(by_op[op].items()))
            lines.append(f"  {op:<10} {sum(by_op[op].values()):>7}  ({mix})")
        lines.append("error mix:" if errors else "error mix: none")
        for (status, code), n in errors.most_common():
            label = _LABELS.get((status, code or ""), "UNEXPECTED")
            lines.append(f"  {status} {code}: {n}  {label}")
        if led.faults or p.retry_for > 0:
            faults = ", ".join(f"{k}: {n}" for k, n in led.faults.most_common()) or "none"
            lines.append(f"faults retried: {faults}; unknown outcomes resolved: {led.resolved}")
        same = "==" if aud.rows == aud.seeded + aud.acked_creates else "!="
        lines.append(
            f"audit: {aud.rows} rows stored {same} {aud.seeded} seeded + {aud.acked_creates} "
            f"acknowledged creates; {aud.states_checked} batch states checked "
            f"({aud.hot_writes} acknowledged concurrent writes to hot batches); "
            f"{led.lists} lists returned {led.rows_listed} rows, {led.leaks} of another brand "
            f"or product; 5xx: {self.server_errors}; deadlocks (40P01): {self.deadlocks}"
        )
        for text in led.violations + aud.findings:
            lines.append(f"  FINDING: {text}")
        lines.append("result: OK" if self.ok else "result: FAILED")
        return "\n".join(lines)


def run(
    db_dsn: str,
    api_dsn: str,
    profile: Profile,
    *,
    progress: Callable[[str], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> Report:
    """Build the world, run the clients, audit. ``db_dsn``: the database as its owner (read
    only, for the audit); ``api_dsn``: the same database as the authenticator.

    Like PostgREST before it serves, every client connects and loads its schema cache before
    the clock starts; then ``on_start`` is called (fault injectors start there). The clients'
    ``application_name`` starts with ``dpp-soak-client-``."""
    world = build_world(api_dsn, profile)
    tag = f"{CLIENT_APP_PREFIX}{secrets.token_hex(3)}"
    clients = [_Client(i, u, world, api_dsn, profile, tag) for i, u in enumerate(world.users)]
    try:
        for c in clients:
            c.client.reload_schema()
    except BaseException:
        for c in clients:
            c.client.close()
        raise
    if on_start is not None:
        on_start()
    started = time.monotonic()
    stop_at = started + profile.seconds
    threads = [
        threading.Thread(target=c.run, args=(started, stop_at), name=f"soak-{c.index}", daemon=True)
        for c in clients
    ]
    for t in threads:
        t.start()
    while alive := [t for t in threads if t.is_alive()]:
        alive[0].join(timeout=10 if progress else None)
        if progress and alive[0].is_alive():
            ops = sum(c.ledger.ops for c in clients)
            took = time.monotonic() - started
            progress(f"  {took:6.1f} s  {ops} requests  {ops / took:.1f} ops/s")
    elapsed = time.monotonic() - started
    ledger = Ledger()
    for c in clients:
        ledger.merge(c.ledger)
    with psycopg.connect(db_dsn) as conn:
        result = audit(conn, world, ledger)
    return Report(profile, world, elapsed, ledger, result)


# --------------------------------------------------------------------------- command line


@contextmanager
def scratch_database(admin_dsn: str | None) -> Iterator[tuple[str, str]]:
    """A migrated scratch database and its own authenticator role, dropped afterwards.

    Yields (owner DSN, authenticator DSN). Without ``admin_dsn`` an embedded PostgreSQL is
    started in a temporary directory and deleted afterwards.
    """
    from dpp_batches import deploy, embedded

    if admin_dsn is None:
        with tempfile.TemporaryDirectory(prefix="dpp-soak-") as tmp:
            server = embedded.start(Path(tmp) / "pgdata", cleanup="delete")
            try:
                with scratch_database(server.dsn) as dsns:
                    yield dsns
            finally:
                server.stop()
        return
    name = f"dpp_soak_{secrets.token_hex(4)}"
    role, password = f"{name}_authenticator", secrets.token_hex(16)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        db_dsn = make_conninfo(admin_dsn, dbname=name)
        migrate(db_dsn)
        deploy.ensure_authenticator(db_dsn, role, password=password)
        yield db_dsn, make_conninfo(db_dsn, user=role, password=password)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dpp_batches.soak",
        description="Load the Batches API with concurrent clients, then audit the stored state. "
        "Runs in a scratch database (dropped afterwards); without --dsn and "
        "DATABASE_URL on an embedded PostgreSQL.",
    )
    parser.add_argument("--dsn", help="superuser DSN of the server (default: env DATABASE_URL)")
    parser.add_argument("--clients", type=_positive_int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=_positive_float, default=10.0, help="load duration")
    parser.add_argument(
        "--brands",
        type=_positive_int,
        default=0,
        help="brands (default: one per three clients; at least two)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    args = parser.parse_args(argv)
    profile = Profile(
        clients=args.clients, seconds=args.seconds, brands=args.brands, seed=args.seed
    )
    admin_dsn = args.dsn or os.environ.get("DATABASE_URL") or None
    say = _printer()
    try:
        with scratch_database(admin_dsn) as (db_dsn, api_dsn):
            say(
                f"soak: {profile.clients} clients for {profile.seconds:g} s "
                f"({'scratch database on ' + _where(admin_dsn)})"
            )
            report = run(db_dsn, api_dsn, profile, progress=say)
    except (psycopg.Error, SoakError, RuntimeError, MigrationError) as exc:
        text = str(exc).strip().splitlines()
        print(f"soak: error: {text[0] if text else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; the scratch database was dropped", file=sys.stderr)
        return 130
    say(report.render())
    return 0 if report.ok else 1


def _where(admin_dsn: str | None) -> str:
    if admin_dsn is None:
        return "an embedded PostgreSQL"
    params = conninfo_to_dict(admin_dsn)
    return f"{params.get('host', 'local socket')}:{params.get('port', 5432)}"


def _printer() -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, flush=True)

    return say


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
