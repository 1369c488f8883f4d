"""Property-based fuzzing of every RPC in ``public`` through the PostgREST protocol client.

Hostile bodies (tests/_fuzz_strategies.py) from every kind of caller (no claims, anon, bad or
missing sub, expired, non-member, a member of another brand, viewer, editor, admin, owner,
service_role). For every call:

* never a 5xx;
* an error has PostgREST's four-key body, and the contract's own errors carry the contract's
  status and message (tests/_fuzz_oracle.py ``check_error``);
* once a function runs, identity -> brand access -> input is kept: the unauthenticated get
  PT401, callers without the brand role get 42501, whatever else is wrong with the body;
* every 2xx result satisfies CONTRACT §3-§4: shape, field rules, the brand, and it matches what
  was sent and what is stored afterwards (tests/_fuzz_contract.py);
* every failed call (and every list) changes nothing: the fingerprint of all ``dpp`` tables is
  the same before and after (tests/_fingerprint.py).

The fuzz world lives in its own migrated database. Profiles: ``ci`` (default; derandomized, a
few thousand examples) and ``fuzz`` (``DPP_FUZZ_PROFILE=fuzz``: >= 10,000 examples, a fresh
random seed each run; hypothesis prints how to reproduce a failure). The last test prints the
number of examples run.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fingerprint import Fingerprinter, diff
from _fuzz_contract import check_success
from _fuzz_oracle import (
    CALLER_KINDS,
    CONTRACT_ERRORS,
    MEMBER_RPCS,
    UNAUTHENTICATED,
    Before,
    World,
    check_error,
    check_gate,
    read_before,
)
from _fuzz_strategies import CURRENT, FRESH, Pools, bodies, raw_bodies
from dpp_batches.postgrest import PostgrestClient, Response

# Every function in public: the spec's and CONTRACT §3's RPCs, then those of issue 6 (batch
# lifecycle, audit trail, read path).
RPCS = (
    "add_brand_member",
    "create_brand",
    "create_product",
    "create_product_batch",
    "list_product_batches",
    "remove_brand_member",
    "update_product_batch",
    "find_product_batch",
    "get_product_batch",
    "list_brand_batches",
    "list_product_batch_history",
    "set_product_batch_status",
)
READ_RPCS = (  # STABLE: callable with GET
    "find_product_batch",
    "get_product_batch",
    "list_brand_batches",
    "list_product_batch_history",
    "list_product_batches",
)
# Examples per test: one JSON-body and one raw-body test per RPC, one GET test per read RPC.
EXAMPLES = {
    "ci": {"body": 150, "raw": 40, "get": 60},
    "fuzz": {"body": 700, "raw": 200, "get": 300},
}
PROFILE = os.environ.get("DPP_FUZZ_PROFILE", "ci")
if PROFILE not in EXAMPLES:
    raise ValueError(f"DPP_FUZZ_PROFILE must be one of {', '.join(EXAMPLES)}, not {PROFILE!r}")
_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("fuzz", derandomize=False, **_COMMON)


def fuzz_settings(kind: str) -> settings:
    return settings(settings.get_profile(PROFILE), max_examples=EXAMPLES[PROFILE][kind])


GET_QUERIES: tuple[dict[str, str] | None, ...] = (
    None,
    None,
    {"limit": "1"},
    {"limit": "0", "offset": "1"},
    {"offset": "100000"},
    {"order": "batch_number.desc"},
    {"order": "quantity.asc.nullsfirst"},
    {"quantity": "gt.5"},
    {"batch_number": "like.*A*"},
    {"select": "id,batch_number"},
    {"limit": "-1"},
    {"order": "no_such_column.asc"},
    {"id": "eq.not-a-uuid"},
    {"created_at": "lt.2000-01-01"},
)


@dataclass
class Stats:
    examples: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    seconds: float = 0.0


STATS = Stats()


@dataclass(repr=False)
class Fuzz:
    client: PostgrestClient
    world: World
    conn: psycopg.Connection[Any]  # superuser: oracle reads and membership restore only
    fingerprint: Fingerprinter
    params: dict[str, list[tuple[str, str, bool]]]
    bodies: dict[str, st.SearchStrategy[dict[str, Any]]]
    raw: dict[str, st.SearchStrategy[str]]
    last: dict[str, str] = field(default_factory=dict)
    fresh: int = 0

    def __repr__(self) -> str:  # hypothesis prints the fixture with a failing example
        return f"Fuzz(world={self.world})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def fill_fresh(self, body: dict[str, Any] | str) -> dict[str, Any] | str:
        """Replace FRESH (top level, or in _patch) with a batch number never used before."""
        if not isinstance(body, dict):
            return body

        def fill(value: Any) -> Any:
            if value is FRESH:
                self.fresh += 1
                return f"F-{self.fresh}"
            return value

        out = {k: fill(v) for k, v in body.items()}
        if isinstance(out.get("_patch"), dict):
            out["_patch"] = {k: fill(v) for k, v in out["_patch"].items()}
        return out

    def fill_current(self, body: dict[str, Any] | str, before: Before) -> dict[str, Any] | str:
        """Replace CURRENT with the named batch's updated_at (an old instant if none)."""
        if not isinstance(body, dict) or body.get("_expected_updated_at") is not CURRENT:
            return body
        stamp = before.batch["updated_at"] if before.batch else "2000-01-01T00:00:00Z"
        return {**body, "_expected_updated_at": stamp}

    def restore_statuses(self) -> None:
        """Put the world's batches back to active after a status change (triggers off for
        this superuser statement only: the lifecycle allows no direct way back)."""
        with self.conn.transaction():
            self.conn.execute("set local session_replication_role = replica")
            self.conn.execute(
                "update dpp.batches set status = 'active', status_before_archive = null,"
                " status_reason = null where id = any(%s) and status <> 'active'",
                ([*self.world.batches_a, self.world.batch_b],),
            )

    def restore_members(self) -> None:
        """Put the world's memberships back after a successful membership change."""
        users = [u for _, u, _ in self.world.baseline_members()] + [self.world.non_member]
        with self.conn.transaction():
            self.conn.execute(
                "delete from dpp.brand_members where brand_id = any(%s) or user_id = any(%s)",
                ([self.world.brand_a, self.world.brand_b], users),
            )
            self.conn.cursor().executemany(
                "insert into dpp.brand_members (brand_id, user_id, role) values (%s, %s, %s)",
                self.world.baseline_members(),
            )

    def check(
        self,
        test: str,
        fn: str,
        kind: str,
        body: dict[str, Any] | str,
        *,
        method: str = "POST",
        query: dict[str, str] | None = None,
    ) -> Response:
        """One call and every property of the module docstring."""
        body = self.fill_fresh(body)
        before = read_before(self.conn, self.world, fn, kind, _first_object(body))
        body = self.fill_current(body, before)
        args = _first_object(body)
        fp_before = self.last
        start = time.perf_counter()
        resp = self.client.rpc(fn, body, claims=self.world.claims(kind), method=method, query=query)
        STATS.seconds += time.perf_counter() - start
        STATS.examples[test] += 1
        code = "" if resp.ok or not isinstance(resp.body, dict) else resp.body.get("code", "")
        STATS.outcomes[(fn, resp.status, code)] += 1
        self.last = fp_after = self.fingerprint()
        try:
            self._check(fn, kind, args, before, resp, query, fp_before, fp_after)
            self._check_raised_before_call(fn, kind, body, resp, method, query)
        finally:
            if resp.ok and fn in MEMBER_RPCS:
                self.restore_members()
                self.last = self.fingerprint()
            if resp.ok and fn == "set_product_batch_status":
                self.restore_statuses()
                self.last = self.fingerprint()
        return resp

    def _check_raised_before_call(
        self,
        fn: str,
        kind: str,
        body: dict[str, Any] | str,
        resp: Response,
        method: str,
        query: dict[str, str] | None,
    ) -> None:
        """PostgreSQL's own errors (not the contract's) may only come from before the function
        runs (CONTRACT §5: type errors). Replayed without claims, a call whose function runs
        gets PT401; one refused before the call gets the same error again."""
        if resp.ok or kind in UNAUTHENTICATED or resp.body.get("code") in CONTRACT_ERRORS:
            return
        again = self.client.rpc(fn, body, claims=None, method=method, query=query)
        assert (again.status, again.body) == (resp.status, resp.body), (
            f"{fn} as {kind}: {resp.body} came from inside the function "
            f"(without claims: {again.status} {again.body})"
        )

    def _check(
        self,
        fn: str,
        kind: str,
        args: dict[str, Any],
        before: Before,
        resp: Response,
        query: dict[str, str] | None,
        fp_before: dict[str, str],
        fp_after: dict[str, str],
    ) -> None:
        where = f"{fn} as {kind}: {_short(args)} {query or ''} -> {resp.status} {_short(resp.body)}"
        assert resp.status < 500, where
        if resp.ok and query is not None and query.get("limit") == "0":
            # LIMIT 0: PostgreSQL never calls the function, so no identity check runs; such an
            # answer must carry nothing.
            assert resp.body == [], where
        elif resp.ok:
            check_gate(fn, kind, args, before, resp, ours=False)
            check_success(self.conn, fn, kind, args, before, resp.body, filtered=query is not None)
        else:
            ours = check_error(resp)
            check_gate(fn, kind, args, before, resp, ours)
        if not resp.ok or fn in READ_RPCS:
            assert fp_after == fp_before, f"{where}: changed {diff(fp_before, fp_after)}"


def _first_object(body: dict[str, Any] | str) -> dict[str, Any]:
    """The arguments PostgREST hands the function: the object, or an array's first element."""
    if isinstance(body, dict):
        return body
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, dict) else {}


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


_PARAMS_SQL = """
select p.proname::text, a.name::text, pg_catalog.format_type(a.typ, null),
       a.ord > p.pronargs - p.pronargdefaults
from pg_catalog.pg_proc as p
cross join lateral unnest(p.proargtypes::oid[], p.proargnames[1:p.pronargs])
    with ordinality as a (typ, name, ord)
where p.pronamespace = 'public'::regnamespace and p.prokind = 'f'
order by p.proname, a.ord
"""


def _build_world(client: PostgrestClient) -> World:
    service = client.as_service()

    def ok(fn: str, args: dict[str, Any]) -> Any:
        resp = service.rpc(fn, args)
        assert resp.status == 200, (fn, resp.status, resp.body)
        return resp.body

    def user() -> str:
        return str(uuid.uuid4())

    brand_a = ok("create_brand", {"_name": "Fuzz A"})["id"]
    brand_b = ok("create_brand", {"_name": "Fuzz B"})["id"]
    members = {role: user() for role in ("owner", "admin", "editor", "viewer")}
    owner_b = user()
    for role, uid in members.items():
        ok("add_brand_member", {"_brand_id": brand_a, "_user_id": uid, "_role": role})
    ok("add_brand_member", {"_brand_id": brand_b, "_user_id": owner_b, "_role": "owner"})
    products_a = [ok("create_product", {"_brand_id": brand_a, "_name": n})["id"] for n in "PQ"]
    product_b = ok("create_product", {"_brand_id": brand_b, "_name": "R"})["id"]
    numbers = ["LOT-1", "lot-1", "LOT-2", "B.1"]
    batches_a = [
        ok(
            "create_product_batch",
            {"_brand_id": brand_a, "_product_id": products_a[0], "_batch_number": n},
        )["id"]
        for n in numbers[:3]
    ]
    batch_b = ok(
        "create_product_batch",
        {"_brand_id": brand_b, "_product_id": product_b, "_batch_number": numbers[3]},
    )["id"]
    return World(
        brand_a,
        brand_b,
        products_a,
        product_b,
        batches_a,
        batch_b,
        members,
        owner_b,
        user(),
        numbers,
    )


def _pools(world: World) -> Pools:
    a, b = world.brand_a, world.brand_b
    users = (*world.members_a.values(), world.owner_b, world.non_member, world.non_member)
    good = (
        ("_brand_id", (a, a, a, a, b)),
        ("_product_id", (*world.products_a, world.products_a[0], world.product_b)),
        ("_batch_id", (*world.batches_a, world.batch_b)),
        ("_user_id", users),
    )
    return Pools(tuple(world.uuids()), good, tuple(world.batch_numbers))


@pytest.fixture(scope="module")
def fuzz(make_database: Any, authenticator_dsn_for: Any) -> Iterator[Fuzz]:
    dsn = make_database(migrated=True)
    client = PostgrestClient(authenticator_dsn_for(dsn))
    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
    fingerprint = Fingerprinter(dsn)
    try:
        world = _build_world(client)
        params: dict[str, list[tuple[str, str, bool]]] = {}
        for fn, name, type_name, has_default in conn.execute(_PARAMS_SQL).fetchall():
            params.setdefault(fn, []).append((name, type_name, has_default))
        pools = _pools(world)
        strategies = {fn: bodies(p, pools) for fn, p in params.items()}
        raw = {fn: raw_bodies(b) for fn, b in strategies.items()}
        state = Fuzz(client, world, conn, fingerprint, params, strategies, raw)
        state.last = fingerprint()
        yield state
    finally:
        fingerprint.close()
        conn.close()
        client.close()


# About one call in four is unauthenticated; users who can act, and the service role, weigh more.
_ACTORS = ("non-member", "foreign-owner", "viewer", "editor", "editor", "admin", "owner", "owner")
callers = st.one_of(
    st.sampled_from(UNAUTHENTICATED),
    st.sampled_from((*_ACTORS, "service", "service")),
    st.sampled_from((*_ACTORS, "service", "service")),
    st.sampled_from((*_ACTORS, "service", "service")),
)
assert set(CALLER_KINDS) == {*UNAUTHENTICATED, *_ACTORS, "service"}


def test_fuzz_covers_every_rpc(fuzz: Fuzz) -> None:
    """The fuzzed RPCs are exactly the functions in public: a new RPC must be added here, to
    _fuzz_oracle.NEEDS and to _fuzz_contract.check_success."""
    assert sorted(fuzz.params) == sorted(RPCS)


@pytest.mark.parametrize("fn", RPCS)
@fuzz_settings("body")
@given(data=st.data())
def test_fuzz_json_bodies(fuzz: Fuzz, fn: str, data: st.DataObject) -> None:
    kind = data.draw(callers, label="caller")
    body = data.draw(fuzz.bodies[fn], label="body")
    fuzz.check("json", fn, kind, body)


@pytest.mark.parametrize("fn", RPCS)
@fuzz_settings("raw")
@given(data=st.data())
def test_fuzz_raw_bodies(fuzz: Fuzz, fn: str, data: st.DataObject) -> None:
    kind = data.draw(callers, label="caller")
    raw = data.draw(fuzz.raw[fn], label="raw body")
    fuzz.check("raw", fn, kind, raw)


@pytest.mark.parametrize("fn", READ_RPCS)
@fuzz_settings("get")
@given(data=st.data())
def test_fuzz_reads_with_get(fuzz: Fuzz, fn: str, data: st.DataObject) -> None:
    """The STABLE RPCs by GET: query-string arguments; list filters, order and paging."""
    kind = data.draw(callers, label="caller")
    body = data.draw(fuzz.bodies[fn], label="args")
    query = (
        data.draw(st.sampled_from(GET_QUERIES), label="query") if fn.startswith("list_") else None
    )
    filled = fuzz.fill_fresh(body)
    assert isinstance(filled, dict)
    args = {k: v if isinstance(v, str) else json.dumps(v) for k, v in filled.items()}
    fuzz.check("get", fn, kind, args, method="GET", query=query)


def test_fuzz_report(fuzz: Fuzz, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the number of examples run (``make fuzz`` shows it); runs last in this module."""
    total = sum(STATS.examples.values())
    if total == 0:
        pytest.skip("no fuzz test ran in this session (deselected)")
    lines = []
    for fn in RPCS:
        outcomes = Counter[str]()
        for (name, status, code), n in STATS.outcomes.items():
            if name == fn:
                outcomes[f"{status} {code}".strip()] += n
        shown = ", ".join(f"{k} x{v}" for k, v in sorted(outcomes.items()))
        lines.append(f"  {fn}: {sum(outcomes.values())} calls: {shown}")
    with capsys.disabled():
        print(
            f"\nfuzz: {total} examples (profile {PROFILE}; "
            + ", ".join(f"{k} {v}" for k, v in sorted(STATS.examples.items()))
            + f"; {STATS.seconds:.1f} s in calls)\n"
            + "\n".join(lines)
        )
    called = {fn for fn, _, _ in STATS.outcomes}
    succeeded = {fn for fn, status, _ in STATS.outcomes if 200 <= status < 300}
    assert called <= succeeded, (
        f"no 2xx (so no contract check of a result) for {called - succeeded}"
    )
