"""The runner's offline parts: statement splitting, checksums, the guard, names, pooler probe."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from _migrate_helpers import Tree, v
from dpp_batches.migrations.connection import ensure_real_session
from dpp_batches.migrations.errors import (
    BadFileError,
    ConfigError,
    ForbiddenStatementError,
    PoolerError,
)
from dpp_batches.migrations.files import discover, guard
from dpp_batches.migrations.sqltext import checksum, split_statements


def skeletons(sql: str) -> list[str]:
    return [s.skeleton for s in split_statements(sql)]


def test_splitter_ignores_semicolons_in_strings_comments_bodies_and_atomic_blocks() -> None:
    sql = """
-- a comment; with a semicolon
create table t (a text default 'x;y', "we;ird" int); /* block; /* nested; */ still; */
create function f() returns int language plpgsql as $fn$
begin
    perform 1; return 2;
end $fn$;
select E'it\\'s; fine', $$;$$, 'a''b;c';
create function g() returns int language sql
begin atomic
    select case when true then 1 else 2 end;
    select 3;
end;
create rule r as on insert to t do also (select 1; select 2);
;;
"""
    stmts = split_statements(sql)
    assert [s.skeleton.split()[:2] for s in stmts] == [
        ["create", "table"],
        ["create", "function"],
        ["select", "e'',"],
        ["create", "function"],
        ["create", "rule"],
    ]
    assert [s.line for s in stmts] == [3, 4, 8, 9, 14]
    assert stmts[0].text.startswith("create table t (a text default 'x;y'")


def test_skeleton_hides_literals_and_bodies_from_the_guard() -> None:
    (body,) = skeletons("do $$ begin execute 'vacuum'; end $$")
    assert "vacuum" not in body and "begin" not in body
    assert skeletons("select 'create index concurrently'") == ["select ''"]


def test_checksum_ignores_bom_and_crlf_but_nothing_else() -> None:
    text = b"create table t (a int);\nselect 'x\r';\n"
    crlf_bom = b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n")
    assert checksum(crlf_bom) == checksum(text)
    assert checksum(text).startswith("sha256/v1:") and len(checksum(text)) == 10 + 64
    assert checksum(text.replace(b"int", b"Int")) != checksum(text)
    assert checksum(text + b" ") != checksum(text)


@pytest.mark.parametrize(
    "statement",
    [
        "create index concurrently i on t (a)",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
        "drop index concurrently i",
        "reindex (verbose) index concurrently i",
        "reindex database x",
        "vacuum t",
        "alter system set work_mem = '1MB'",
        "create database x",
        "alter table t detach partition p concurrently",
    ],
)
def test_guard_refuses_non_transactional_statements_in_transactional_files(
    tmp_path: Path, statement: str
) -> None:
    tree = Tree(tmp_path)
    tree.versioned(1, "x", f"create table ok (a int);\n-- comment\n{statement};\n")
    (file,) = discover(tmp_path).versioned
    problem = guard(file, 150000)
    assert isinstance(problem, ForbiddenStatementError)
    assert f"migrations/{v(1)}_x.sql: line 3:" in str(problem)
    assert "-- migrate:no-transaction" in str(problem)


@pytest.mark.parametrize("statement", ["commit", "begin", "rollback", "discard all"])
def test_guard_refuses_transaction_and_session_control_everywhere(
    tmp_path: Path, statement: str
) -> None:
    tree = Tree(tmp_path)
    tree.versioned(1, "a", f"create table ok (a int); {statement};")
    tree.versioned(2, "b", f"-- migrate:no-transaction\n{statement};")
    for file in discover(tmp_path).versioned:
        problem = guard(file, 150000)
        assert isinstance(problem, ForbiddenStatementError), file.script
        assert "not allowed in a migration" in str(problem)


def test_guard_lets_ordinary_and_declared_files_through(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.versioned(
        1,
        "a",
        "create table t (a int);\ncreate index t_a on t (a);\ndo $$ begin perform 1; end $$;",
    )
    tree.versioned(
        2,
        "b",
        "-- why: big table\n-- migrate:no-transaction\n"
        "create index concurrently t_a2 on t (a);\n-- trailing comment\n",
    )
    tree.versioned(3, "c", "alter type e add value 'x';")
    files = discover(tmp_path).versioned
    assert [f.transactional for f in files] == [True, False, True]
    assert [guard(f, 150000) for f in files] == [None, None, None]
    assert isinstance(guard(files[2], 110000), ForbiddenStatementError)  # PG 11


def test_no_transaction_file_must_hold_exactly_one_statement(tmp_path: Path) -> None:
    Tree(tmp_path).versioned(
        1,
        "two",
        "-- migrate:no-transaction\n"
        "create index concurrently a on t (a);\n"
        "create index concurrently b on t (b);\n",
    )
    (file,) = discover(tmp_path).versioned
    problem = guard(file, 150000)
    assert isinstance(problem, ForbiddenStatementError)
    assert "exactly one statement, found 2" in str(problem)


def test_discovery_reports_bad_names_duplicates_and_bad_directives(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.versioned(1, "ok", "select 1;")
    (tmp_path / "migrations" / f"{v(1)}_same_version.sql").write_text("select 2;")
    (tmp_path / "migrations" / "0002_short.sql").write_text("select 3;")
    (tmp_path / "migrations" / "README.md").write_text("not SQL, ignored")
    tree.versioned(4, "typo", "-- migrate:no-transactions\nselect 4;")
    tree.versioned(5, "late", "select 5;\n-- migrate:no-transaction\n")
    tree.versioned(6, "empty", "-- nothing here\n")
    tree.repeatable("api.sql", "-- migrate:no-transaction\nselect 1;")
    found = discover(tmp_path)
    assert [f.version for f in found.versioned] == [v(1)]
    messages = sorted(str(p) for p in found.problems)
    assert all(isinstance(p, BadFileError) for p in found.problems)
    assert len(messages) == 6, messages
    assert any(f"duplicate version {v(1)}" in m for m in messages)
    assert any(m.startswith("migrations/0002_short.sql: bad file name") for m in messages)
    assert any("unknown directive '-- migrate:no-transactions'" in m for m in messages)
    assert any("belong in the header" in m for m in messages)
    assert any("contains no SQL statement" in m for m in messages)
    assert any(m.startswith("repeatable/api.sql: repeatable files") for m in messages)


def test_discovery_orders_files_and_requires_the_directory(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.versioned(2, "b", "select 2;")
    tree.versioned(1, "a", "select 1;")
    tree.repeatable("b.sql", "select 1;")
    tree.repeatable("a.sql", "select 1;")
    found = discover(tmp_path)
    assert [f.name for f in found.versioned] == ["a", "b"]
    assert [f.name for f in found.repeatable] == ["a.sql", "b.sql"]
    with pytest.raises(ConfigError, match="does not exist"):
        discover(tmp_path / "nope")


class _Pooled:
    """Stands in for a connection behind a transaction-mode pooler: session state is lost."""

    def __init__(self, port: int = 5432) -> None:
        self.info = SimpleNamespace(port=port, backend_pid=None)
        self.queries: list[str] = []

    def execute(self, query: str, params: object = None) -> _Pooled:
        self.queries.append(query)
        return self

    def fetchone(self) -> tuple[str, int] | None:
        return None  # current_setting(..., true) on another backend: unset


def test_pooler_probe_refuses_lost_session_state_and_port_6543() -> None:
    with pytest.raises(PoolerError, match="does not keep session state"):
        ensure_real_session(_Pooled(), "")  # type: ignore[arg-type]
    pooled = _Pooled(port=6543)
    with pytest.raises(PoolerError, match="transaction-mode pooler port 6543"):
        ensure_real_session(pooled, "")  # type: ignore[arg-type]
    assert pooled.queries == []
