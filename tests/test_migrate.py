"""The migration runner against a real database, one fresh (unmigrated) database per test.

Numbers in the docstrings refer to the failure tests of reference/migrations.md §4.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from _migrate_helpers import (
    Tree,
    advisory_locks,
    execute,
    exists,
    history,
    rows,
    run,
    scalar,
    v,
)
from dpp_batches.migrate import baseline, migrate, plan, repair, status
from dpp_batches.migrations.errors import (
    ApplyError,
    DatabaseNewerError,
    DriftError,
    ForbiddenStatementError,
    MissingFileError,
    NeedsBaselineError,
    OutOfOrderError,
    UnfinishedMigrationError,
)
from dpp_batches.migrations.runner import LOCK, Runner


@pytest.fixture
def dsn(make_database: Callable[..., str]) -> str:
    return make_database()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "sql")


def versioned_rows(dsn: str) -> list[tuple[str, str]]:
    return [(r[1], r[3]) for r in history(dsn) if r[0] == "versioned"]


def test_applies_files_in_order_with_one_applied_row_each(dsn: str, tree: Tree) -> None:
    tree.versioned(2, "second", "create table second (id int references first);")
    tree.versioned(1, "first", "create table first (id int primary key);")
    tree.repeatable("api.sql", "create or replace view first_ids as select id from first;")
    result, lines = run(dsn, tree)
    assert [a.script for a in result.applied] == [
        f"migrations/{v(1)}_first.sql",
        f"migrations/{v(2)}_second.sql",
        "repeatable/api.sql",
    ]
    assert history(dsn) == [
        ("versioned", v(1), "first", "applied"),
        ("versioned", v(2), "second", "applied"),
        ("repeatable", None, "api.sql", "applied"),
    ]
    stored = rows(
        dsn,
        "select checksum, transactional, client, package_version, duration_ms,"
        " finished_at >= started_at from dpp_meta.migration_history",
    )
    assert all(
        r[0].startswith("sha256/v1:")
        and r[1]
        and r[2] == "dpp-batches-migrate"
        and r[3]
        and r[4] is not None
        and r[5]
        for r in stored
    )
    assert any(
        line.startswith(f"applied migrations/{v(1)}_first.sql in ") and line.endswith(" ms")
        for line in lines
    )
    assert result.database_version == v(2)
    with pytest.raises(psycopg.errors.UniqueViolation):  # the backstop behind the lock
        execute(
            dsn,
            "insert into dpp_meta.migration_history (kind, version, name, script,"
            f" status, transactional, package_version) values ('versioned', '{v(1)}',"
            " 'again', 'again.sql', 'applied', true, 'test')",
        )


def test_history_is_private(dsn: str, tree: Tree) -> None:
    """§3.1 item 15: no grants on dpp_meta, even where API roles exist."""
    tree.versioned(1, "grant", "create schema dpp_extra; grant usage on schema dpp_meta to public;")
    run(dsn, tree)
    assert not scalar(dsn, "select has_schema_privilege('public', 'dpp_meta', 'usage')")
    assert (
        scalar(
            dsn,
            "select count(*) from pg_namespace n, aclexplode(n.nspacl) a"
            " where n.nspname = 'dpp_meta' and a.grantee = 0",
        )
        == 0
    )


def test_idempotent_rerun_executes_no_ddl(dsn: str, tree: Tree) -> None:
    """§4.18: the second run changes nothing, counted by an event trigger."""
    tree.versioned(1, "t", "create table t (a int);")
    tree.repeatable(
        "f.sql", "create or replace function f() returns int language sql as 'select 1';"
    )
    run(dsn, tree)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            create table ddl_log (tag text);
            create function log_ddl() returns event_trigger language plpgsql as $$
            begin insert into ddl_log select command_tag from pg_event_trigger_ddl_commands();
            end $$;
            create event trigger count_ddl on ddl_command_end execute function log_ddl();
            create table probe (a int);""")
    assert scalar(dsn, "select count(*) from ddl_log") == 1  # the trigger counts
    result, _ = run(dsn, tree)
    assert result.applied == [] and not result.notified
    assert scalar(dsn, "select count(*) from ddl_log") == 1
    assert len(history(dsn)) == 2


def test_drift_is_refused_before_anything_runs(dsn: str, tree: Tree) -> None:
    """§4.6: one changed byte in an applied file stops the run; the pending file never runs."""
    path = tree.versioned(1, "t", "create table t (a int);\n")
    run(dsn, tree)
    path.write_text("create table t (b int);\n")
    tree.versioned(2, "marker", "create table marker (a int);\n")
    with pytest.raises(DriftError, match=f"migrations/{v(1)}_t.sql: edited after it was applied"):
        run(dsn, tree)
    assert not exists(dsn, "marker")
    report = status(dsn, sql_dir=tree.root)
    assert [e.state for e in report.entries] == ["drifted", "pending"]
    assert report.exit_code == 2
    assert "drifted" in report.render()


def test_crlf_and_bom_are_not_drift(dsn: str, tree: Tree) -> None:
    """§4.7: an autocrlf checkout or an editor's BOM is the same file."""
    path = tree.versioned(1, "t", "create table t (a int);\nselect 1;\n")
    run(dsn, tree)
    path.write_bytes(b"\xef\xbb\xbf" + b"create table t (a int);\r\nselect 1;\r\n")
    assert status(dsn, sql_dir=tree.root).exit_code == 0
    result, _ = run(dsn, tree)
    assert result.applied == []


def test_missing_file_and_newer_database_are_refused(dsn: str, tree: Tree) -> None:
    """§4.8: a deleted applied file, and an older package against a newer database."""
    for n in (1, 2, 3):
        tree.versioned(n, f"t{n}", f"create table t{n} (a int);")
    run(dsn, tree)
    second = tree.root / "migrations" / f"{v(2)}_t2.sql"
    text = second.read_bytes()
    second.unlink()
    with pytest.raises(MissingFileError, match=f"version {v(2)} is applied but its file"):
        run(dsn, tree)
    second.write_bytes(text)
    (tree.root / "migrations" / f"{v(3)}_t3.sql").unlink()
    with pytest.raises(DatabaseNewerError, match=f"the database has version {v(3)}"):
        run(dsn, tree)
    assert status(dsn, sql_dir=tree.root).exit_code == 2


def test_out_of_order_version_is_refused_not_skipped(dsn: str, tree: Tree) -> None:
    """§4.9."""
    tree.versioned(1, "a", "create table a (x int);")
    tree.versioned(3, "c", "create table c (x int);")
    run(dsn, tree)
    tree.versioned(2, "b", "create table b (x int);")
    tree.versioned(4, "d", "create table d (x int);")
    with pytest.raises(
        OutOfOrderError,
        match=f"pending version {v(2)} is older than the newest applied version {v(3)}",
    ):
        run(dsn, tree)
    assert not exists(dsn, "b") and not exists(dsn, "d")
    assert [e.state for e in status(dsn, sql_dir=tree.root).entries] == [
        "applied",
        "out-of-order",
        "applied",
        "pending",
    ]


def test_failure_mid_run_keeps_earlier_files_and_stops(dsn: str, tree: Tree) -> None:
    """§4.10: 0004 applied, nothing of 0005, 0006 not attempted; fixed 0005 then applies."""
    for n in (1, 2, 3):
        tree.versioned(n, f"t{n}", f"create table t{n} (a int);")
    run(dsn, tree)
    tree.versioned(4, "t4", "create table t4 (a int);")
    broken = tree.versioned(5, "t5", "create table t5 (a int);\nselec 1;\n")
    tree.versioned(6, "t6", "create table t6 (a int);")
    with pytest.raises(ApplyError) as caught:
        run(dsn, tree)
    message = str(caught.value)
    assert message.startswith(f"migrations/{v(5)}_t5.sql: line 2: syntax error at or near")
    assert "rolled back, nothing recorded" in message and "\n" not in message
    assert exists(dsn, "t4") and not exists(dsn, "t5") and not exists(dsn, "t6")
    assert [ver for ver, _ in versioned_rows(dsn)] == [v(1), v(2), v(3), v(4)]
    broken.write_text("create table t5 (a int);\nselect 1;\n")
    result, _ = run(dsn, tree)
    assert [a.version for a in result.applied] == [v(5), v(6)]
    assert exists(dsn, "t5") and exists(dsn, "t6")


@pytest.mark.parametrize(
    "bad",
    [
        "create table t (a int);\ncreate index concurrently t_a on t (a);\n",
        "-- migrate:no-transaction\ncreate table t (a int);\n"
        "create index concurrently ta on t (a);",
    ],
)
def test_static_guard_refuses_before_any_sql_runs(dsn: str, tree: Tree, bad: str) -> None:
    """§4.12: CIC in a transactional file, two statements in a no-transaction file."""
    tree.versioned(1, "first", "create table first (a int);")
    tree.versioned(2, "bad", bad)
    with pytest.raises(ForbiddenStatementError, match=f"migrations/{v(2)}_bad.sql"):
        run(dsn, tree)
    assert not exists(dsn, "first")
    assert not scalar(dsn, "select count(*) from pg_namespace where nspname = 'dpp_meta'")


def test_no_transaction_file_builds_an_index_concurrently(dsn: str, tree: Tree) -> None:
    tree.versioned(1, "big", "create table big as select g as a from generate_series(1, 1000) g;")
    tree.versioned(
        2, "big_a", "-- migrate:no-transaction\ncreate index concurrently big_a on big (a);\n"
    )
    # pg_advisory_unlock releases only session-level locks: true means 0002's was kept.
    tree.versioned(
        3,
        "check",
        f"do $$ begin if pg_advisory_unlock({LOCK.ns}, {LOCK.key}) then"
        " raise 'session lock still held'; end if; end $$;",
    )
    result, _ = run(dsn, tree)
    assert [a.transactional for a in result.applied] == [True, False, True]
    assert scalar(dsn, "select indisvalid from pg_index where indexrelid = 'big_a'::regclass")
    assert rows(
        dsn,
        "select status, transactional, error from dpp_meta.migration_history where version = %s",
        (v(2),),
    ) == [("applied", False, None)]


def test_failed_no_transaction_file_blocks_until_repaired(dsn: str, tree: Tree) -> None:
    """§3.1 item 7 / §4.13: failed row, INVALID index shown, refusal, `repair`, rerun."""
    tree.versioned(1, "t", "create table t (a int); insert into t values (1), (1);")
    cic = tree.versioned(
        2, "idx", "-- migrate:no-transaction\ncreate unique index concurrently t_u on t (a);\n"
    )
    with pytest.raises(
        ApplyError,
        match=r'could not create unique index "t_u".*recorded as '
        r"failed",
    ):
        run(dsn, tree)
    assert history(dsn)[-1] == ("versioned", v(2), "idx", "failed")
    assert advisory_locks(dsn) == 0
    with pytest.raises(UnfinishedMigrationError, match=f"repair {v(2)} --retry"):
        run(dsn, tree)
    report = status(dsn, sql_dir=tree.root)
    assert report.exit_code == 2 and report.invalid_indexes == ("public.t_u",)
    assert "INVALID index public.t_u" in report.render()
    repair(dsn, v(2), "retry", sql_dir=tree.root)
    execute(dsn, "drop index t_u")
    cic.write_text("-- migrate:no-transaction\ncreate index concurrently t_a on t (a);\n")
    result, _ = run(dsn, tree)
    assert [a.version for a in result.applied] == [v(2)]
    tree.versioned(3, "idx2", "-- migrate:no-transaction\ncreate index concurrently t_c on t (c);")
    with pytest.raises(ApplyError):
        run(dsn, tree)
    repair(dsn, v(3), "mark_applied", sql_dir=tree.root)
    assert status(dsn, sql_dir=tree.root).exit_code == 0
    assert history(dsn)[-1] == ("versioned", v(3), "idx2", "applied")


def test_lock_timeout_rolls_the_file_back_and_retries(dsn: str, tree: Tree) -> None:
    """§4.14: a reader holds a lock; each attempt gives up quickly; after it commits, one wins."""
    tree.versioned(1, "t", "create table t (a int);")
    run(dsn, tree)
    tree.versioned(2, "alter", "alter table t add column b int;")
    lines: list[str] = []
    with psycopg.connect(dsn) as blocker:
        blocker.execute("select * from t")  # ACCESS SHARE until commit
        with pytest.raises(ApplyError, match=r"lock timeout.*gave up after 2 attempts"):
            migrate(dsn, sql_dir=tree.root, lock_timeout="100ms", retries=1, log=lines.append)
        assert [line for line in lines if "retry 1/1" in line]
        assert versioned_rows(dsn) == [(v(1), "applied")]
        release = threading.Timer(0.3, blocker.commit)
        release.start()
        try:
            result, _ = run(dsn, tree, lock_timeout="100ms", retries=20)
        finally:
            release.join()
    assert [a.version for a in result.applied] == [v(2)]
    assert (
        scalar(
            dsn,
            "select count(*) from pg_attribute where attrelid = 't'::regclass and attname = 'b'",
        )
        == 1
    )


def test_session_settings_do_not_leak_into_the_next_file(dsn: str, tree: Tree) -> None:
    """§4.16: a file's plain SET is undone (RESET ALL) before the next file runs."""
    tree.versioned(1, "a", "set search_path = ''; create table public.a (x int);")
    tree.versioned(2, "b", "create table b (x int);")
    run(dsn, tree)
    assert exists(dsn, "public.b")


def test_repeatable_applies_once_per_change_and_failure_keeps_old_definition(
    dsn: str, tree: Tree
) -> None:
    """§4.17."""

    def answer() -> int:
        return int(scalar(dsn, "select public.answer()"))

    def define(body: str) -> None:
        tree.repeatable(
            "api.sql",
            "create or replace function public.answer() returns int"
            f" language sql as $$ {body} $$;\n",
        )

    define("select 1")
    run(dsn, tree)
    define("select 2")
    first, _ = run(dsn, tree)
    second, _ = run(dsn, tree)
    assert [a.script for a in first.applied] == ["repeatable/api.sql"]
    assert second.applied == [] and answer() == 2
    assert status(dsn, sql_dir=tree.root).exit_code == 0
    tree.repeatable(
        "api.sql",
        "create or replace function public.answer() returns int"
        " language sql as $$ select 3 $$;\nselect 1/0;\n",
    )
    with pytest.raises(ApplyError, match=r"repeatable/api\.sql: division by zero"):
        run(dsn, tree)
    assert answer() == 2
    define("select 3")
    third, _ = run(dsn, tree)
    assert [a.script for a in third.applied] == ["repeatable/api.sql"] and answer() == 3
    assert history(dsn) == [("repeatable", None, "api.sql", "applied")] * 3


def listen(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("listen pgrst")
    return conn


def reloads(conn: psycopg.Connection) -> list[str]:
    """Notifications received so far (bounded wait: 0.5 s after the last one)."""
    return [n.payload for n in conn.notifies(timeout=0.5)]


def test_postgrest_reload_is_notified_once_per_changing_run(dsn: str, tree: Tree) -> None:
    """§4.20: one notification per run that changed something, none otherwise."""
    with listen(dsn) as listener:
        tree.versioned(1, "a", "create table a (x int);")
        tree.versioned(2, "b", "create table b (x int);")
        tree.repeatable("v.sql", "create or replace view av as select x from a;")
        result, _ = run(dsn, tree)
        assert result.notified and reloads(listener) == ["reload schema"]
        run(dsn, tree)
        assert reloads(listener) == []
        tree.versioned(3, "broken", "create table c (x int); selec;")
        with pytest.raises(ApplyError):
            run(dsn, tree)
        assert reloads(listener) == []
        (tree.root / "migrations" / f"{v(3)}_broken.sql").write_text("create table c (x int);")
        tree.versioned(4, "broken", "selec;")
        with pytest.raises(ApplyError):
            run(dsn, tree)
        assert exists(dsn, "c") and reloads(listener) == ["reload schema"]
        (tree.root / "migrations" / f"{v(4)}_broken.sql").write_text("create table d (x int);")
        run(dsn, tree, notify=False)
        assert exists(dsn, "d") and reloads(listener) == []


def test_status_exit_codes_and_plan_writes_nothing(dsn: str, tree: Tree) -> None:
    tree.versioned(1, "a", "create table a (x int);")
    tree.repeatable("v.sql", "create or replace view av as select x from a;")
    report = status(dsn, sql_dir=tree.root)
    assert report.exit_code == 1 and not report.history_exists
    items = plan(dsn, sql_dir=tree.root)
    assert [(i.script, i.reason) for i in items] == [
        (f"migrations/{v(1)}_a.sql", "pending"),
        ("repeatable/v.sql", "new"),
    ]
    assert items[0].sql == "create table a (x int);"
    assert not exists(dsn, "a") and not exists(dsn, "dpp_meta.migration_history")
    run(dsn, tree)
    assert status(dsn, sql_dir=tree.root).exit_code == 0 and plan(dsn, sql_dir=tree.root) == []
    tree.repeatable("v.sql", "create or replace view av as select x, 1 as y from a;")
    assert [i.reason for i in plan(dsn, sql_dir=tree.root)] == ["changed"]
    assert status(dsn, sql_dir=tree.root).exit_code == 1


def test_hand_installed_schema_needs_a_baseline(dsn: str, tree: Tree) -> None:
    """§4.19: our schema without history is refused; after a baseline only later files run."""
    tree.versioned(1, "schema", "create schema dpp;")
    tree.versioned(2, "t", "create table dpp.t (a int);")
    tree.versioned(3, "u", "create table dpp.u (a int);")
    execute(dsn, "create schema dpp; create table dpp.t (a int);")
    with pytest.raises(NeedsBaselineError, match="baseline --version"):
        run(dsn, tree)
    baseline(dsn, v(2), sql_dir=tree.root)
    result, _ = run(dsn, tree)
    assert [a.version for a in result.applied] == [v(3)]
    report = status(dsn, sql_dir=tree.root)
    assert [e.state for e in report.entries] == ["baselined", "baseline", "applied"]
    assert report.exit_code == 0


def test_ambiguous_commit_that_went_through_is_not_applied_twice(
    dsn: str, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§4.2: the COMMIT reached the server, the reply was lost."""

    def commit_then_lose_connection(self: Runner) -> None:
        self.conn.pgconn.exec_(b"commit")
        self.conn.pgconn.finish()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Runner, "commit_transaction", commit_then_lose_connection)
    tree.versioned(1, "a", "create table a (x int);")
    result, lines = run(dsn, tree)
    assert [a.version for a in result.applied] == [v(1)]
    assert any("the commit went through" in line for line in lines)
    assert versioned_rows(dsn) == [(v(1), "applied")]


def test_ambiguous_commit_that_was_lost_is_run_again(
    dsn: str, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§4.2: the connection died before the COMMIT arrived: the file runs again, once."""
    calls: list[int] = []
    original = Runner.commit_transaction

    def lose_first_commit(self: Runner) -> None:
        calls.append(1)
        if len(calls) > 1:
            original(self)
            return
        self.conn.pgconn.finish()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Runner, "commit_transaction", lose_first_commit)
    tree.versioned(1, "a", "create table a (x int);")
    result, lines = run(dsn, tree)
    assert [a.version for a in result.applied] == [v(1)]
    assert any("did not happen; running it again" in line for line in lines)
    assert versioned_rows(dsn) == [(v(1), "applied")] and exists(dsn, "a")
