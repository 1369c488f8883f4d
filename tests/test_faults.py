"""Fault injection (issue 4, item 5): backends terminated or cancelled in the middle of creates
and updates, statement timeouts, and server restarts under load. Afterwards no half-written
batch exists, the runner's history is intact (`status` exit 0), and clients that retry succeed.

The mid-transaction tests make the RPC observable at a fixed point: a test-only AFTER trigger
(in this module's own scratch database) takes a shared advisory lock for batches marked GATE,
so while the test holds the lock exclusively the RPC waits inside its transaction, after its
row is written. The restarts run on an embedded PostgreSQL this module starts in a temporary
directory, never on the shared server.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from dpp_batches import deploy, embedded, soak
from dpp_batches.migrate import migrate, status
from dpp_batches.postgrest import PostgrestClient, Response

GATE_KEY = 0x5EED_4  # advisory lock key of the gate, in the fault database only
WAIT = 15.0  # bound on every wait for the server to reach a state

GATE_SQL = f"""
create function dpp.tg_test__fault_gate() returns trigger
language plpgsql volatile set search_path = '' as $$
begin
    if new.batch_number like 'GATE-%' or new.facility_ref = 'GATE' then
        perform pg_catalog.pg_advisory_xact_lock_shared({GATE_KEY});
    end if;
    return new;
end $$;
create trigger tg_batches__zz_fault_gate after insert or update on dpp.batches
for each row execute function dpp.tg_test__fault_gate();
"""


@dataclass(frozen=True)
class FaultDb:
    db: str  # owner DSN (fault injection and verification)
    api: str  # authenticator DSN
    world: soak.World

    @property
    def editor(self) -> soak.User:
        return next(u for u in self.world.users if u.role == "editor")


@pytest.fixture(scope="module")
def fault_db(
    make_database: Callable[..., str], authenticator_dsn_for: Callable[[str], str]
) -> FaultDb:
    db = make_database(migrated=True)
    api = authenticator_dsn_for(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(GATE_SQL)
    return FaultDb(db, api, soak.build_world(api, soak.Profile(clients=2)))


# --------------------------------------------------------------------------- helpers


def rows(db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read stored state as the owner (verification only)."""
    with psycopg.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def batch_count(db: str, brand_id: str) -> int:
    return int(rows(db, "select count(*) from dpp.batches where brand_id = %s", brand_id)[0][0])


def assert_history_intact(db: str) -> None:
    report = status(db)
    assert report.exit_code == 0, report.render()


class Gate:
    """Holds the gate lock; RPCs that touch a GATE batch wait inside their transaction."""

    def __init__(self, db: str) -> None:
        self.conn = psycopg.connect(db, autocommit=True)
        self.conn.execute("select pg_advisory_lock(%s)", (GATE_KEY,))

    def open(self) -> None:
        if not self.conn.closed:
            self.conn.execute("select pg_advisory_unlock(%s)", (GATE_KEY,))
            self.conn.close()


@dataclass
class Pending:
    """An RPC running in a thread, blocked at the gate."""

    thread: threading.Thread
    result: list[Response]
    pid: int

    def response(self) -> Response:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the RPC did not return after the fault"
        return self.result[0]


def call_at_gate(
    db: str, client: PostgrestClient, user_id: str, fn: str, args: dict[str, Any]
) -> Pending:
    """Start the RPC and wait until its backend is blocked on the gate, mid-transaction."""
    result: list[Response] = []
    thread = threading.Thread(
        target=lambda: result.append(client.as_user(user_id).rpc(fn, args)), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = rows(
            db,
            "select pid, backend_xid is not null from pg_stat_activity"
            " where application_name = %s and wait_event_type = 'Lock'"
            " and wait_event = 'advisory'",
            client.application_name,
        )
        if found:
            pid, wrote = found[0]
            assert wrote, "the RPC is blocked before it wrote anything"
            return Pending(thread, result, pid)
        assert thread.is_alive(), f"the RPC returned without reaching the gate: {result}"
        time.sleep(0.02)
    raise AssertionError("the RPC never reached the gate")


def signal(db: str, fn: str, pid: int) -> None:
    assert fn in ("pg_terminate_backend", "pg_cancel_backend")
    assert rows(db, f"select {fn}(%s)", pid) == [(True,)]


@pytest.fixture
def client(fault_db: FaultDb, request: pytest.FixtureRequest) -> Iterator[PostgrestClient]:
    with PostgrestClient(fault_db.api, application_name=f"dpp-fault-{request.node.name}"[:63]) as c:
        yield c


def create_args(brand: soak.Brand, number: str) -> dict[str, Any]:
    return {
        "_brand_id": brand.id,
        "_product_id": brand.products[0],
        "_batch_number": number,
        "_quantity": 5,
    }


# --------------------------------------------------------------------------- mid-transaction


@pytest.mark.parametrize("signal_fn", ["pg_terminate_backend", "pg_cancel_backend"])
def test_killed_create_leaves_no_row_and_retry_succeeds(
    fault_db: FaultDb, client: PostgrestClient, signal_fn: str
) -> None:
    user, brand = fault_db.editor, fault_db.editor.home
    number = f"GATE-{signal_fn[3:7]}"
    before = batch_count(fault_db.db, brand.id)
    gate = Gate(fault_db.db)
    try:
        pending = call_at_gate(
            fault_db.db, client, user.id, "create_product_batch", create_args(brand, number)
        )
        signal(fault_db.db, signal_fn, pending.pid)
        resp = pending.response()
    finally:
        gate.open()
    # terminate: the connection is gone (503, reconnect next call); cancel: 57014 (500).
    expected = (503, "PGRST000") if signal_fn == "pg_terminate_backend" else (500, "57014")
    assert (resp.status, resp.code) == expected, resp.body
    assert batch_count(fault_db.db, brand.id) == before  # the written row died with its tx
    retry = client.as_user(user.id).rpc("create_product_batch", create_args(brand, number))
    assert retry.status == 200, retry.body
    assert rows(
        fault_db.db, "select id::text from dpp.batches where batch_number = %s", number
    ) == [(retry.body["id"],)]
    assert batch_count(fault_db.db, brand.id) == before + 1
    assert_history_intact(fault_db.db)


@pytest.mark.parametrize("signal_fn", ["pg_terminate_backend", "pg_cancel_backend"])
def test_killed_update_keeps_the_old_state_and_retry_succeeds(
    fault_db: FaultDb, client: PostgrestClient, signal_fn: str
) -> None:
    user, brand = fault_db.editor, fault_db.editor.home
    api = client.as_user(user.id)
    created = api.rpc("create_product_batch", create_args(brand, f"UPD-{signal_fn[3:7]}"))
    assert created.status == 200, created.body
    snapshot = "select b::text from dpp.batches as b where id = %s"
    before = rows(fault_db.db, snapshot, created.body["id"])
    update = {
        "_brand_id": brand.id,
        "_batch_id": created.body["id"],
        "_patch": {"facility_ref": "GATE", "quantity": 777},
    }
    gate = Gate(fault_db.db)
    try:
        pending = call_at_gate(fault_db.db, client, user.id, "update_product_batch", update)
        if signal_fn == "pg_cancel_backend":
            backend = pending.pid
        signal(fault_db.db, signal_fn, pending.pid)
        resp = pending.response()
    finally:
        gate.open()
    expected = (503, "PGRST000") if signal_fn == "pg_terminate_backend" else (500, "57014")
    assert (resp.status, resp.code) == expected, resp.body
    assert rows(fault_db.db, snapshot, created.body["id"]) == before  # nothing half-written
    retry = api.rpc("update_product_batch", update)
    assert retry.status == 200, retry.body
    assert rows(
        fault_db.db,
        "select quantity, facility_ref from dpp.batches where id = %s",
        created.body["id"],
    ) == [(777, "GATE")]
    if signal_fn == "pg_cancel_backend":  # a cancel leaves the connection usable
        assert rows(
            fault_db.db,
            "select pid from pg_stat_activity where application_name = %s",
            client.application_name,
        ) == [(backend,)]
    assert_history_intact(fault_db.db)


def test_statement_timeout_aborts_a_stuck_create_and_retry_succeeds(fault_db: FaultDb) -> None:
    """A function-level statement_timeout, hoisted by PostgREST into the request's settings
    (db-hoisted-tx-settings), cancels an RPC stuck inside its transaction."""
    user, brand = fault_db.editor, fault_db.editor.home
    fn = "public.create_product_batch(uuid, uuid, text, date, integer, text, jsonb)"
    with psycopg.connect(fault_db.db, autocommit=True) as conn:
        conn.execute(f"alter function {fn} set statement_timeout = '700ms'")
    try:
        with PostgrestClient(fault_db.api, application_name="dpp-fault-timeout") as client:
            before = batch_count(fault_db.db, brand.id)
            gate = Gate(fault_db.db)
            try:
                started = time.monotonic()
                resp = client.as_user(user.id).rpc(
                    "create_product_batch", create_args(brand, "GATE-TIMEOUT")
                )
                waited = time.monotonic() - started
            finally:
                gate.open()
            assert (resp.status, resp.code) == (500, "57014"), resp.body
            assert "statement timeout" in (resp.message or ""), resp.body
            assert waited >= 0.6  # it was the timeout, not an early failure
            assert batch_count(fault_db.db, brand.id) == before
            retry = client.as_user(user.id).rpc(
                "create_product_batch", create_args(brand, "GATE-TIMEOUT")
            )
            assert retry.status == 200, retry.body
            assert batch_count(fault_db.db, brand.id) == before + 1
    finally:
        with psycopg.connect(fault_db.db, autocommit=True) as conn:
            conn.execute(f"alter function {fn} reset statement_timeout")
    assert_history_intact(fault_db.db)


# --------------------------------------------------------------------------- under load


class Injector:
    """Terminates or cancels random soak clients' backends of one database until stopped."""

    def __init__(self, db: str, *, seed: int) -> None:
        self.db = db
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.injected: Counter[str] = Counter()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(WAIT)

    def _run(self) -> None:
        with psycopg.connect(self.db, autocommit=True) as conn:
            while not self.done.wait(self.rng.uniform(0.02, 0.08)):
                fn = self.rng.choice(["pg_terminate_backend", "pg_cancel_backend"])
                row = conn.execute(
                    f"select {fn}(pid) from pg_stat_activity"
                    " where datname = current_database() and application_name like %s"
                    " and state <> 'idle' order by random() limit 1",
                    (soak.CLIENT_APP_PREFIX + "%",),
                ).fetchone()
                if row and row[0]:
                    self.injected[fn] += 1


def test_terminations_and_cancels_under_load_lose_nothing(fault_db: FaultDb) -> None:
    profile = soak.Profile(clients=6, seconds=4.0, seed=11, retry_for=20.0)
    injector = Injector(fault_db.db, seed=5)
    try:  # the injector starts once every client has connected and loaded its schema cache
        report = soak.run(fault_db.db, fault_db.api, profile, on_start=injector.start)
    finally:
        injector.stop()
    print(f"faults injected: {dict(injector.injected)}")
    print(report.render())
    assert report.ok, report.render()  # nothing lost, nothing half-written, all retries won
    assert sum(injector.injected.values()) >= 10, injector.injected
    assert sum(report.ledger.faults.values()) >= 5, report.ledger.faults
    assert report.audit.acked_creates >= 50
    assert_history_intact(fault_db.db)


# --------------------------------------------------------------------------- restarts


def restart(server: embedded.EmbeddedServer, mode: str) -> None:
    """Stop the embedded server (fast: clean shutdown; immediate: a crash, so the start runs
    WAL recovery) with its own pg_ctl, then start it again through its pgserver handle, which
    reuses the socket directory (so the DSN stays valid) and tracks the new postmaster."""
    import pgserver

    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.origin is not None
    pg_ctl = Path(spec.origin).parent / "pginstall" / "bin" / "pg_ctl"
    owner = server.data_dir.stat().st_uid  # pgserver runs the server as its own user under root
    # Output to DEVNULL: a pipe could be inherited by a server process and never close.
    subprocess.run(
        [str(pg_ctl), "-D", str(server.data_dir), "-w", "-m", mode, "stop"],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=owner if os.geteuid() == 0 and owner != 0 else None,
    )
    time.sleep(0.3)  # clients meet a refused connection for a while
    handle = pgserver.get_server(server.data_dir)  # type: ignore[attr-defined]  # same handle
    handle.ensure_postgres_running()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[embedded.EmbeddedServer]:
    try:
        server = embedded.start(tmp_path / "pgdata", cleanup="delete")
    except embedded.EmbeddedUnavailable as exc:
        pytest.skip(f"no embedded PostgreSQL to restart here: {exc}")
    try:
        yield server
    finally:
        server.stop()


def test_restarts_under_load_lose_nothing(own_server: embedded.EmbeddedServer) -> None:
    with psycopg.connect(own_server.dsn, autocommit=True) as conn:
        conn.execute("create database dpp_restart")
    db = make_conninfo(own_server.dsn, dbname="dpp_restart")
    migrate(db)
    deploy.ensure_authenticator(db, "dpp_authenticator", password="dpp_authenticator")
    api = make_conninfo(db, user="dpp_authenticator", password="dpp_authenticator")
    profile = soak.Profile(clients=4, seconds=6.0, seed=13, retry_for=30.0)
    outcome: list[soak.Report | BaseException] = []

    def load() -> None:
        try:
            outcome.append(soak.run(db, api, profile))
        except BaseException as exc:  # surfaced by the assertion below
            outcome.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    restarted_at = 0.0
    for mode in ("fast", "immediate"):
        _wait_for_new_rows(db, 30)
        restart(own_server, mode)
        restarted_at = time.monotonic()
    loader.join(60)
    assert outcome and isinstance(outcome[0], soak.Report), outcome
    report = outcome[0]
    print("faults injected: 2 restarts (fast, immediate)")
    print(report.render())
    assert report.ok, report.render()
    assert sum(report.ledger.faults.values()) >= 2, report.ledger.faults
    assert report.ledger.last_ok > restarted_at  # clients carried on after the restarts
    assert_history_intact(db)


def _wait_for_new_rows(db: str, n: int) -> None:
    """Bounded wait until the load has committed n more batches."""

    def count() -> int:
        try:
            return int(rows(db, "select count(*) from dpp.batches")[0][0])
        except psycopg.OperationalError:
            return -1

    deadline = time.monotonic() + WAIT
    start = count()
    while start < 0:
        assert time.monotonic() < deadline, "the server did not come back"
        time.sleep(0.05)
        start = count()
    while count() < start + n:
        assert time.monotonic() < deadline, "the load made no progress"
        time.sleep(0.05)
