"""Soak and load (issue 4, item 4): concurrent clients through the PostgREST protocol, then an
audit of stored state. `python -m dpp_batches.soak` runs longer profiles (`make soak`).

Each test uses its own scratch database: the soak writes many rows, and the defects planted
below must not reach anyone else's tests.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dpp_batches import soak
from dpp_batches.postgrest import PostgrestClient, Response

BOUNDED = soak.Profile(clients=8, seconds=10.0, seed=20261128)


def _scratch(
    make_database: Callable[..., str], authenticator_dsn_for: Callable[[str], str]
) -> tuple[str, str]:
    db = make_database(migrated=True)
    return db, authenticator_dsn_for(db)


def _mix(
    report: soak.Report, op: str | None = None, status: int | None = None, code: str | None = None
) -> int:
    return sum(
        n
        for (o, s, c), n in report.ledger.mix.items()
        if (op is None or o == op)
        and (status is None or s == status)
        and (code is None or c == code)
    )


def test_bounded_soak_keeps_every_invariant(
    make_database: Callable[..., str], authenticator_dsn_for: Callable[[str], str]
) -> None:
    db, api = _scratch(make_database, authenticator_dsn_for)
    report = soak.run(db, api, BOUNDED)
    print(report.render())
    assert report.ok, report.render()
    # The run exercised what the invariants are about: a quiet run would prove nothing.
    assert _mix(report, "create", 200) >= 100, report.render()
    assert _mix(report, "create", 409, "23505") >= 1, "no colliding batch numbers"
    assert _mix(report, "create", 403, "42501") >= 1, "no forbidden (viewer) creates"
    assert _mix(report, "probe", 403, "42501") >= 1
    assert _mix(report, "probe", 400, "22023") >= 1
    assert _mix(report, "update", 200) >= 20
    assert report.audit.hot_writes >= 20, "hot batches were not written concurrently"
    assert report.ledger.lists >= 50 and report.ledger.rows_listed >= 500
    assert report.audit.rows == report.audit.seeded + report.audit.acked_creates
    assert report.audit.states_checked >= report.audit.acked_creates
    assert report.server_errors == 0 and report.deadlocks == 0


def test_audit_reports_lost_extra_stale_moved_and_duplicate_rows(
    make_database: Callable[..., str], authenticator_dsn_for: Callable[[str], str]
) -> None:
    """Each kind of damage, planted in stored state after a clean run, is reported."""
    db, api = _scratch(make_database, authenticator_dsn_for)
    report = soak.run(db, api, soak.Profile(clients=3, seconds=1.5, seed=7))
    assert report.ok, report.render()
    led, world = report.ledger, report.world
    created = next(iter(led.created))
    hot = next(b for b, acks in led.hot.items() if acks)
    listed = next(iter(led.seen))[2]
    tamperings = {
        # Batches with history cannot be deleted (batch_events references them);
        # replica mode skips that FK so the tampering can simulate a lost row.
        "lost": (
            [
                "set local session_replication_role = replica",
                "delete from dpp.batches where id = %(id)s",
            ],
            created,
            "(lost)",
        ),
        "extra": (
            [
                "insert into dpp.batches (brand_id, product_id, batch_number)"
                " select brand_id, product_id, 'SNEAKED-IN' from dpp.batches where id = %(id)s"
            ],
            created,
            "was never acknowledged",
        ),
        "stale": (
            ["update dpp.batches set facility_ref = 'TAMPERED' where id = %(id)s"],
            created,
            "differ from the last acknowledged write",
        ),
        "hot": (
            ["update dpp.batches set quantity = null where id = %(id)s"],
            hot,
            "differ from the acknowledged write with the latest updated_at",
        ),
        "moved": (
            [
                "update dpp.batches as b set batch_number = 'MOVED', product_id = ("
                " select p.id from dpp.products as p"
                " where p.brand_id = b.brand_id and p.id <> b.product_id limit 1)"
                " where b.id = %(id)s"
            ],
            listed,
            "is not stored there",
        ),
        "duplicate": (
            [
                "alter table dpp.batches drop constraint batches_batch_number_key",
                "insert into dpp.batches (brand_id, product_id, batch_number)"
                " select brand_id, product_id, batch_number from dpp.batches"
                " where id = %(id)s",
            ],
            created,
            "stored 2 times",
        ),
    }
    with psycopg.connect(db) as conn:
        assert soak.audit(conn, world, led).findings == []
        for name, (statements, batch_id, finding) in tamperings.items():
            with conn.transaction(force_rollback=True):
                for statement in statements:
                    conn.execute(statement, {"id": batch_id})
                findings = soak.audit(conn, world, led).findings
            assert any(finding in f for f in findings), (name, findings)
        assert soak.audit(conn, world, led).findings == []  # every tampering was rolled back


def test_soak_flags_cross_brand_rows_deadlocks_and_server_errors(
    make_database: Callable[..., str], authenticator_dsn_for: Callable[[str], str]
) -> None:
    """Plant a leaky list, a 40P01 on some updates and an XX000 on some inserts: each shows."""
    db, api = _scratch(make_database, authenticator_dsn_for)
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "select pg_get_functiondef('public.list_product_batches(uuid, uuid)'::regprocedure)"
        ).fetchone()
        assert row is not None
        filter_ = re.compile(r"where\s+b\.brand_id\s*=\s*_brand_id\b")
        assert filter_.search(row[0]), "list_product_batches changed: update the planted leak"
        # AND binds tighter than OR: the caller also gets every row of its other brands.
        leaky = filter_.sub("where b.brand_id <> _brand_id or b.brand_id = _brand_id", row[0], 1)
        conn.execute(leaky)
        conn.execute("""
            create function dpp.tg_test__planted_faults() returns trigger
            language plpgsql volatile set search_path = '' as $$
            begin
                if current_user <> 'authenticated' then
                    return new;  -- the service role's setup is spared
                end if;
                if tg_op = 'UPDATE' and pg_catalog.random() < 0.2 then
                    raise exception using errcode = '40P01', message = 'planted deadlock';
                end if;
                if tg_op = 'INSERT' and pg_catalog.random() < 0.1 then
                    raise exception using errcode = 'XX000', message = 'planted internal error';
                end if;
                return new;
            end $$;
            create trigger tg_batches__planted_faults before insert or update on dpp.batches
            for each row execute function dpp.tg_test__planted_faults();
        """)
    report = soak.run(db, api, soak.Profile(clients=4, seconds=2.0, seed=3))
    text = report.render()
    assert not report.ok
    assert any("cross-brand row" in v for v in report.ledger.violations), text
    assert report.deadlocks > 0, text
    assert report.server_errors > report.deadlocks, text  # the XX000s too
    assert "UNEXPECTED" in text and "result: FAILED" in text


def test_retrying_clients_recover_lost_acknowledgements(
    make_database: Callable[..., str],
    authenticator_dsn_for: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write that committed but whose response was lost (the connection died after COMMIT)
    must be recovered by a retrying client; a client that does not retry leaves a row nobody
    was told about, and the audit says so."""
    db, api = _scratch(make_database, authenticator_dsn_for)
    real_rpc = PostgrestClient.rpc
    rng, lock, lost = random.Random(2), threading.Lock(), Counter[str]()

    def lossy_rpc(self: PostgrestClient, fn: str, args: Any = None, **kw: Any) -> Response:
        resp = real_rpc(self, fn, args, **kw)
        if (
            resp.ok
            and fn.endswith("_product_batch")
            and fn != "list_product_batches"
            and self.application_name.startswith(soak.CLIENT_APP_PREFIX)
        ):
            with lock:
                drop = rng.random() < 0.15
                lost[fn] += drop
            if drop:
                return Response(
                    503,
                    {
                        "code": "PGRST000",
                        "message": "Database connection lost",
                        "details": None,
                        "hint": None,
                    },
                    {},
                )
        return resp

    monkeypatch.setattr(PostgrestClient, "rpc", lossy_rpc)
    retrying = soak.run(db, api, soak.Profile(clients=4, seconds=1.5, seed=5, retry_for=10.0))
    assert retrying.ok, retrying.render()
    assert lost["create_product_batch"] >= 1 and lost["update_product_batch"] >= 1, lost
    assert retrying.ledger.resolved >= 1, retrying.render()  # found again by batch number

    careless = soak.run(db, api, soak.Profile(clients=4, seconds=1.5, seed=6))
    assert not careless.ok
    assert careless.server_errors >= 1
    assert any("was never acknowledged" in f for f in careless.audit.findings), careless.render()
