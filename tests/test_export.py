"""`dpp-batches export supabase DIR`: Supabase CLI migrations that install what migrate does."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from dpp_batches import export
from dpp_batches.migrate import default_sql_dir
from dpp_batches.migrations.files import Tree, discover
from dpp_batches.schema_dump import dump_schema, run_client

REPEATABLES = "_dpp_batches_repeatables.sql"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="dpp-batches")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, add_arguments, run_command in export.COMMANDS:
        add_arguments(commands.add_parser(name))
        commands.choices[name].set_defaults(run=run_command)
    args = parser.parse_args([str(a) for a in argv])
    code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def tree_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped SQL tree (migrations/ and repeatable/ only) to edit."""
    root = tmp_path / "sql"
    for part in ("migrations", "repeatable"):
        shutil.copytree(default_sql_dir() / part, root / part)
    return root


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "supabase" / "migrations"


def touch_repeatable(tree_dir: Path, text: str) -> None:
    first = sorted((tree_dir / "repeatable").iterdir())[0]
    first.write_text(first.read_text() + text)


# --------------------------------------------------------------------------- the real check


def test_exported_files_install_what_migrate_installs(
    make_database: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """psql -1 -f each exported file into one database, migrate another: same pg_dump."""
    out = tmp_path / "migrations"
    code, _, err = run(capsys, "export", "supabase", out)
    assert (code, err) == (0, "")
    tree = discover(default_sql_dir())
    transactional = {f"{f.version}_{f.name}.sql": f.transactional for f in tree.versioned}

    via_supabase = make_database()
    for path in sorted(out.iterdir()):  # Supabase applies files in version order
        single = ["-1"] if transactional.get(path.name, True) else []
        run_client(
            "psql", via_supabase, ["-X", "-q", "-v", "ON_ERROR_STOP=1", *single, "-f", str(path)]
        )
    via_migrate = make_database(migrated=True)

    exported = dump_schema(via_supabase, exclude_schemas=["dpp_meta"])
    migrated = dump_schema(via_migrate, exclude_schemas=["dpp_meta"])
    # The comparison covers what the product is: functions, policies, grants, comments.
    for must in (
        "CREATE FUNCTION public.create_product_batch(",
        "CREATE POLICY",
        "GRANT ALL ON FUNCTION public.list_product_batches(",
        "ROW LEVEL SECURITY",
        "COMMENT ON FUNCTION public.update_product_batch(",
    ):
        assert must in migrated
    assert exported == migrated
    with psycopg.connect(via_supabase) as conn:
        assert conn.execute("select to_regnamespace('dpp_meta')").fetchone() == (None,)


# --------------------------------------------------------------------------- what is written


def test_versioned_files_keep_version_slug_and_text(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 0
    tree: Tree = discover(tree_dir)
    files = listing(out_dir)
    for f in tree.versioned:
        assert files.pop(f"{f.version}_{f.name}.sql").decode() == f.sql
    # What is left is the one repeatables file, one second after the newest versioned file.
    newest = tree.versioned[-1].version
    assert newest is not None
    [name] = files
    assert name == f"{export.next_version(newest)}{REPEATABLES}"
    text = files[name].decode()
    positions = [text.index(f.sql.rstrip()) for f in tree.repeatable]
    assert positions == sorted(positions) and len(tree.repeatable) >= 2  # all, in name order
    assert f"{len(files) + len(tree.versioned)} file(s) written" in out


def test_next_version_adds_one_second() -> None:
    assert export.next_version("20261231235959") == "20270101000000"
    assert export.next_version("00000000000009") == "00000000000010"


def test_second_export_writes_nothing(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    # An editor or git (autocrlf) may rewrite line endings: that is not a change.
    some = sorted(out_dir.iterdir())[0]
    some.write_bytes(some.read_bytes().replace(b"\n", b"\r\n"))
    before = listing(out_dir)
    code, out, _ = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 0
    assert "0 file(s) written" in out and "wrote" not in out
    assert listing(out_dir) == before


def test_each_repeatables_change_gets_a_newer_file(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    first = listing(out_dir)
    [v1] = [n for n in first if n.endswith(REPEATABLES)]

    original = {p: p.read_bytes() for p in (tree_dir / "repeatable").iterdir()}
    touch_repeatable(tree_dir, "\n-- changed\n")
    run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    second = listing(out_dir)
    [v2] = set(second) - set(first)
    assert v2 == f"{export.next_version(v1[:14])}{REPEATABLES}"
    assert b"-- changed" in second[v2] and second[v1] == first[v1]  # old file untouched

    for path, raw in original.items():  # back to the first text: Supabase has the second
        path.write_bytes(raw)
    run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    [v3] = set(listing(out_dir)) - set(second)
    assert v3 == f"{export.next_version(v2[:14])}{REPEATABLES}"
    assert listing(out_dir)[v3] == first[v1]


def test_repeatables_run_after_the_projects_own_newer_migrations(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir.mkdir(parents=True)
    (out_dir / "20990101000000_my_table.sql").write_text("create table mine (id int);\n")
    code, _, _ = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 0
    assert f"20990101000001{REPEATABLES}" in listing(out_dir)


# --------------------------------------------------------------------------- refusals


def test_refuses_to_overwrite_an_exported_file_that_differs(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    edited = sorted(out_dir.iterdir())[0]
    edited.write_text(edited.read_text() + "\n-- edited in DIR\n")
    touch_repeatable(tree_dir, "\n-- something new to write\n")
    before = listing(out_dir)
    code, out, err = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 2 and out == ""
    assert err.startswith("dpp-batches export: error: ") and err.count("\n") == 1
    assert edited.name in err and "refusing to overwrite" in err
    assert listing(out_dir) == before  # checked everything before writing anything


def test_refuses_a_version_taken_by_another_file(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = discover(tree_dir).versioned[0].version
    out_dir.mkdir(parents=True)
    (out_dir / f"{version}_someone_elses.sql").write_text("select 1;\n")
    code, _, err = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 2 and f"already uses version {version}" in err
    assert list(out_dir.iterdir()) == [out_dir / f"{version}_someone_elses.sql"]


def test_refuses_an_invalid_sql_tree(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree_dir / "migrations" / "2026_bad_name.sql").write_text("select 1;\n")
    code, _, err = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 2 and "2026_bad_name.sql" in err
    assert not out_dir.exists()


def test_refuses_a_session_setting_that_would_leak_into_later_files(
    tree_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    touch_repeatable(tree_dir, "\nset search_path = public;\n")
    code, _, err = run(capsys, "export", "supabase", out_dir, "--sql-dir", tree_dir)
    assert code == 2 and "SET/RESET" in err
    assert not out_dir.exists()
