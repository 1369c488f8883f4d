"""`dpp-batches migrate|status|plan|baseline|repair`: output, one-line errors, exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from _migrate_helpers import Tree, cli, exists, history, v
from dpp_batches.cli import main
from dpp_batches.migrate import default_sql_dir


@pytest.fixture
def dsn(make_database: Callable[..., str]) -> str:
    return make_database()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    t = Tree(tmp_path / "sql")
    t.versioned(1, "a", "create table a (x int);\n")
    t.repeatable("v.sql", "create or replace view av as select x from a;\n")
    return t


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_without_a_database_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for command in (
        ["migrate"],
        ["status"],
        ["plan"],
        ["baseline", "--version", v(1)],
        ["repair", v(1), "--retry"],
    ):
        code, out, err = call(capsys, *command)
        assert (code, out) == (2, "")
        assert err == (
            f"dpp-batches {command[0]}: error: no database: pass --dsn or set DATABASE_URL\n"
        )


def test_migrate_prints_each_file_with_its_duration_and_a_summary(
    capsys: pytest.CaptureFixture[str], dsn: str, tree: Tree
) -> None:
    code, out, err = call(capsys, "migrate", "--dsn", dsn, "--sql-dir", str(tree.root))
    lines = out.splitlines()
    assert (code, err) == (0, "")
    assert lines[0] == "created dpp_meta.migration_history"
    assert lines[1].startswith(f"applied migrations/{v(1)}_a.sql in ") and lines[1].endswith(" ms")
    assert lines[2].startswith("applied repeatable/v.sql in ")
    assert lines[-1].startswith("migrate: applied 2 file(s) (1 versioned, 1 repeatable) in ")
    assert lines[-1].endswith(f"; database at version {v(1)}")
    code, out, _ = call(capsys, "migrate", "--dsn", dsn, "--sql-dir", str(tree.root))
    assert (code, out) == (0, f"migrate: nothing to apply; database at version {v(1)}\n")


def test_status_exit_codes_follow_the_state(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dsn: str, tree: Tree
) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)  # used when --dsn is absent
    code, out, _ = call(capsys, "status", "--sql-dir", str(tree.root))
    assert code == 1 and "pending" in out and out.rstrip().endswith("pending (exit 1)")
    assert call(capsys, "migrate", "--sql-dir", str(tree.root))[0] == 0
    code, out, _ = call(capsys, "status", "--sql-dir", str(tree.root))
    assert code == 0 and out.rstrip().endswith("clean (exit 0)")
    (tree.root / "migrations" / f"{v(1)}_a.sql").write_text("create table a (y int);\n")
    code, out, _ = call(capsys, "status", "--sql-dir", str(tree.root))
    assert code == 2 and f"drifted      {v(1)}" in out
    assert "problem: migrations/" in out and out.rstrip().endswith("PROBLEM (exit 2)")


def test_errors_are_one_line_with_exit_2_for_validation_and_1_for_failures(
    capsys: pytest.CaptureFixture[str], dsn: str, tree: Tree
) -> None:
    root = str(tree.root)
    assert call(capsys, "migrate", "--dsn", dsn, "--sql-dir", root)[0] == 0
    path = tree.versioned(2, "b", "create table b (x int);\nselec;\n")
    code, out, err = call(capsys, "migrate", "--dsn", dsn, "--sql-dir", root)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"dpp-batches migrate: error: migrations/{v(2)}_b.sql: line 2: ")
    path.unlink()
    (tree.root / "migrations" / f"{v(1)}_a.sql").write_text("create table a (y int);\n")
    code, out, err = call(capsys, "migrate", "--dsn", dsn, "--sql-dir", root)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"dpp-batches migrate: error: migrations/{v(1)}_a.sql: edited after")
    code, _, err = call(capsys, "migrate", "--dsn", dsn, "--sql-dir", root, "--lock-timeout", "x")
    assert code == 2 and "is not a PostgreSQL duration" in err
    code, _, err = call(
        capsys, "status", "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--sql-dir", root
    )
    assert code == 2 and err.startswith("dpp-batches status: error: cannot connect")
    assert err.count("\n") == 1


def test_plan_shows_pending_sql_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], dsn: str, tree: Tree
) -> None:
    code, out, _ = call(capsys, "plan", "--dsn", dsn, "--sql-dir", str(tree.root))
    assert code == 0
    assert out.splitlines()[:2] == [
        f"-- migrations/{v(1)}_a.sql (pending)",
        "create table a (x int);",
    ]
    assert "-- repeatable/v.sql (new)" in out and out.endswith("plan: 2 file(s) to apply\n")
    assert history(dsn) == [] and not exists(dsn, "a")


def test_baseline_and_repair_from_the_command_line(
    capsys: pytest.CaptureFixture[str], dsn: str, tree: Tree
) -> None:
    root = str(tree.root)
    tree.versioned(2, "b", "create table b (x int);\n")
    code, out, _ = call(capsys, "baseline", "--dsn", dsn, "--sql-dir", root, "--version", v(1))
    assert code == 0 and out.splitlines()[-1].startswith(f"baseline {v(1)}: files up to")
    code, _, err = call(capsys, "baseline", "--dsn", dsn, "--sql-dir", root, "--version", v(1))
    assert code == 2 and "baseline needs an empty history" in err
    tree.versioned(3, "c", "-- migrate:no-transaction\ncreate index concurrently c on b (nope);\n")
    assert call(capsys, "migrate", "--dsn", dsn, "--sql-dir", root)[0] == 1
    assert not exists(dsn, "a") and exists(dsn, "b")  # 0001 was covered by the baseline
    code, out, _ = call(capsys, "repair", v(3), "--retry", "--dsn", dsn, "--sql-dir", root)
    assert code == 0 and "attempt forgotten" in out
    code, _, err = call(capsys, "repair", v(3), "--retry", "--dsn", dsn, "--sql-dir", root)
    assert code == 2 and f"nothing to repair: version {v(3)} is not recorded" in err
    assert call(capsys, "repair", v(3), "--dsn", dsn)[0] == 2  # --retry or --mark-applied


def test_shipped_sql_tree_applies_cleanly_through_the_module_entry_point(
    capsys: pytest.CaptureFixture[str], dsn: str
) -> None:
    """`python -m dpp_batches.cli migrate` with the default tree; then clean and idempotent."""
    assert (default_sql_dir() / "migrations").is_dir()
    done = cli("migrate", "--dsn", dsn)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines()[-1].startswith("migrate: applied ")
    code, out, _ = call(capsys, "status", "--dsn", dsn)
    assert code == 0, out
    code, out, _ = call(capsys, "migrate", "--dsn", dsn)
    assert code == 0 and out.startswith("migrate: nothing to apply")
