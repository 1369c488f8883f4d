"""The wheel carries the SQL: `pip install .`, then `dpp-batches migrate` from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("dpp_batches-*.whl")
    return built


def test_the_wheel_ships_every_sql_file(wheel: Path) -> None:
    shipped = {
        name.removeprefix("dpp_batches/sql/")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("dpp_batches/sql/") and name.endswith(".sql")
    }
    in_repo = {
        str(path.relative_to(REPO / "sql"))
        for path in (REPO / "sql").rglob("*.sql")
        if path.parent.name in {"migrations", "repeatable"}
    }
    assert in_repo, "the repository has no SQL files?"
    assert in_repo <= shipped


def test_installed_wheel_migrates_from_any_directory(
    wheel: Path, tmp_path: Path, make_database: Callable[..., str]
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    dsn = make_database()
    # PYTHONPATH puts the installed wheel ahead of the editable checkout in this venv.
    env = {**os.environ, "PYTHONPATH": str(site), "DATABASE_URL": dsn}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dpp_batches.cli", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import dpp_batches.migrate as m; print(m.default_sql_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), where

    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert cli("status").returncode == 0
    with psycopg.connect(dsn) as conn:
        functions = conn.execute(
            "select count(*) from pg_proc where pronamespace = 'public'::regnamespace"
            " and proname = 'create_product_batch'"
        ).fetchone()
    assert functions == (1,)


def test_commands_that_need_a_database_say_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    for command in ("migrate", "status", "plan"):
        done = subprocess.run(
            [sys.executable, "-m", "dpp_batches.cli", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "no database: pass --dsn or set DATABASE_URL" in done.stderr
        assert "Traceback" not in done.stderr
