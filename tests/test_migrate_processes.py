"""The runner under crashes and concurrency: real child processes, real locks.

Numbers refer to the failure tests of reference/migrations.md §4.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from _migrate_helpers import (
    Tree,
    advisory_locks,
    cli_env,
    exists,
    history,
    run,
    scalar,
    v,
    wait_until,
)
from dpp_batches.migrations import locking
from dpp_batches.migrations import runner as runner_module
from dpp_batches.migrations.errors import LockTimeoutError
from dpp_batches.migrations.runner import LOCK, MigrateResult

pytestmark = pytest.mark.slow


@pytest.fixture
def dsn(make_database: Callable[..., str]) -> str:
    return make_database()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "sql")


def runner_backends(dsn: str, query_like: str = "%") -> int:
    return int(
        scalar(
            dsn,
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and application_name = 'dpp-batches-migrate' and query like %s",
            (query_like,),
        )
    )


def test_kill_9_mid_migration_leaves_nothing_behind(dsn: str, tree: Tree) -> None:
    """§4.1: no table, no history row, no advisory lock; a rerun applies cleanly."""
    slow = tree.versioned(1, "slow", "create table t (a int);\nselect pg_sleep(30);\n")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dpp_batches.cli",
            "migrate",
            "--dsn",
            dsn,
            "--sql-dir",
            str(tree.root),
        ],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: runner_backends(dsn, "%pg_sleep(30)%") == 1, 20, "the runner to reach pg_sleep"
        )
        assert advisory_locks(dsn) == 1
    finally:
        child.kill()  # SIGKILL: no cleanup in the runner
        child.wait()
    # client_connection_check_interval lets the server abort the orphaned statement.
    wait_until(lambda: advisory_locks(dsn) == 0, 5, "the advisory lock to be released")
    assert not exists(dsn, "t")
    assert history(dsn) == []
    slow.write_text("create table t (a int);\nselect pg_sleep(0);\n")
    result, _ = run(dsn, tree)
    assert [a.version for a in result.applied] == [v(1)] and exists(dsn, "t")


BARRIER = """
import pathlib, sys, time
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
from dpp_batches.cli import main
ready.touch()
while not go.exists():
    time.sleep(0.002)
sys.exit(main(sys.argv[3:]))
"""


def test_eight_runners_at_once_apply_every_file_exactly_once(
    dsn: str, tree: Tree, tmp_path: Path
) -> None:
    """§4.3: started together on an empty database; every file once, every runner exits 0."""
    tree.versioned(1, "schema", "create schema dpp;")
    tree.versioned(2, "t", "create table dpp.t (a int primary key);")
    tree.versioned(
        3, "u", "create table dpp.u (a int references dpp.t); insert into dpp.t values (1);"
    )
    tree.repeatable("f.sql", "create function dpp.f() returns int language sql as 'select 1';")
    tree.repeatable("g.sql", "create view dpp.g as select a from dpp.t;")
    go = tmp_path / "go"
    children = []
    for i in range(8):
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    BARRIER,
                    str(tmp_path / f"ready{i}"),
                    str(go),
                    "migrate",
                    "--dsn",
                    dsn,
                    "--sql-dir",
                    str(tree.root),
                    "--lock-wait",
                    "30",
                ],
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready*"))) == 8, 30, "8 runners ready")
        go.touch()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0] * 8, outputs
    assert all(err == "" for _, err in outputs), outputs
    scripts = [f"migrations/{v(n)}_{s}.sql" for n, s in ((1, "schema"), (2, "t"), (3, "u"))]
    scripts += ["repeatable/f.sql", "repeatable/g.sql"]
    applied = [
        line.split()[1]
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("applied ")
    ]
    assert sorted(applied) == sorted(scripts)
    assert sorted((row[1] or row[2]) for row in history(dsn)) == sorted(
        [v(1), v(2), v(3), "f.sql", "g.sql"]
    )
    assert scalar(dsn, "select count(*) from dpp.t") == 1


def test_lock_wait_is_bounded_and_names_the_holder(dsn: str, tree: Tree) -> None:
    """§4.5: the runner gives up after --lock-wait and says who holds the lock."""
    tree.versioned(1, "a", "create table a (x int);")
    with psycopg.connect(dsn, autocommit=True, application_name="lock-holder-test") as holder:
        holder.execute("select pg_advisory_lock(%s, %s)", (LOCK.ns, LOCK.key))
        pid = holder.info.backend_pid
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as caught:
            run(dsn, tree, lock_wait=1.0)
        waited = time.monotonic() - started
    message = str(caught.value)
    assert "gave up after 1 s waiting for the migration lock" in message
    assert f"pid {pid} (application_name 'lock-holder-test'" in message
    assert "query_start" in message
    assert 1.0 <= waited < 10
    assert not exists(dsn, "a")


def test_waiting_runner_holds_no_transaction_that_blocks_create_index_concurrently(
    dsn: str, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§4.4 (flyway#1654): while B polls for the lock, A's CIC completes; then B proceeds."""
    tree.versioned(1, "a", "create table a (x int);")
    refused = threading.Event()

    def observed_wait_for(attempt: Callable[[], bool], **kwargs: Any) -> float:
        def observed() -> bool:
            got = attempt()
            if not got:
                refused.set()
            return got

        return locking.wait_for(observed, **kwargs)

    monkeypatch.setattr(runner_module, "wait_for", observed_wait_for)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("create table big as select g as x from generate_series(1, 1000) g")
        holder.execute("select pg_advisory_lock(%s, %s)", (LOCK.ns, LOCK.key))
        outcome: list[MigrateResult | BaseException] = []

        def runner_b() -> None:
            try:
                outcome.append(run(dsn, tree, lock_wait=20.0)[0])
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=runner_b)
        thread.start()
        try:
            assert refused.wait(10), "runner B never tried the lock"
            holder.execute("create index concurrently big_x on big (x)")
            assert thread.is_alive(), outcome  # the CIC did not wait for runner B
        finally:
            holder.execute("select pg_advisory_unlock(%s, %s)", (LOCK.ns, LOCK.key))
            thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], MigrateResult), outcome
    assert [a.version for a in outcome[0].applied] == [v(1)]
