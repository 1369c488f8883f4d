"""The runner through PgBouncer in transaction mode (reference/migrations.md §4.15).

Each test starts its own pgbouncer (pool of 2 server connections, so concurrent runners
really share backends) in front of a fresh scratch database, and checks the results on the
server directly. pgbouncer refuses to run as root, so as root it runs as an unprivileged user
that can reach the server (the owner of the server's socket directory, else ``nobody``).

Without pgbouncer the module is skipped, unless ``DPP_REQUIRE_PGBOUNCER=1`` (CI) makes that a
failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from _migrate_helpers import Tree, advisory_locks, cli, cli_env, exists, history, run, v, wait_until
from dpp_batches.migrations.errors import ApplyError

pytestmark = pytest.mark.slow

POOL_SIZE = 2


def _pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


@pytest.fixture(scope="module")
def pgbouncer_binary() -> str:
    binary = _pgbouncer_binary()
    if binary is None:
        message = "pgbouncer is not installed (apt-get install -y pgbouncer)"
        if os.environ.get("DPP_REQUIRE_PGBOUNCER") == "1":
            pytest.fail(f"DPP_REQUIRE_PGBOUNCER=1 but {message}", pytrace=False)
        pytest.skip(message)
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_user(host: str) -> pwd.struct_passwd | None:
    """None when we are not root; else an unprivileged user that can reach ``host``."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/"):
        owner = pwd.getpwuid(os.stat(host).st_uid)
        if owner.pw_uid != 0:
            return owner
    return pwd.getpwnam("nobody")


@dataclass
class Bouncer:
    dsn: str  # the scratch database through pgbouncer
    direct_dsn: str  # the same database on the server itself


@pytest.fixture
def bouncer(make_database: Callable[..., str], pgbouncer_binary: str) -> Iterator[Bouncer]:
    direct = make_database()
    params = conninfo_to_dict(direct)
    host = str(params.get("host") or "/var/run/postgresql")
    user = str(params.get("user") or "postgres")
    dbname = str(params["dbname"])
    port = _free_port()
    run_as = _run_as_user(host)
    workdir = Path(tempfile.mkdtemp(prefix="dpp-pgbouncer-"))
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    server = f"host={host} port={params.get('port') or 5432} dbname={dbname} user={user}"
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{dbname} = {server}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {workdir}\n"
        "auth_type = trust\n"
        f"auth_file = {workdir / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {POOL_SIZE}\n"
        "max_client_conn = 50\n"
        "server_login_retry = 1\n"
    )
    drop: dict[str, object] = {}
    if run_as is not None:  # pgbouncer refuses to run as root
        os.chown(workdir, run_as.pw_uid, run_as.pw_gid)
        drop = {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}
    log = workdir / "pgbouncer.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [pgbouncer_binary, str(workdir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            **drop,  # type: ignore[call-overload]
        )
    try:
        dsn = make_conninfo("", host="127.0.0.1", port=port, dbname=dbname, user=user)
        _wait_for_listener(port, process, log)
        yield Bouncer(dsn, direct)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_listener(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise AssertionError(f"pgbouncer exited at start: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("pgbouncer did not listen within 10 s") from None
            time.sleep(0.05)


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "sql")


BARRIER = """
import pathlib, sys, time
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
from dpp_batches.cli import main
ready.touch()
while not go.exists():
    time.sleep(0.002)
sys.exit(main(sys.argv[3:]))
"""


def test_eight_runners_through_transaction_pooling_apply_every_file_once(
    bouncer: Bouncer, tree: Tree, tmp_path: Path
) -> None:
    """§4.15 with §4.3: 8 runners share 2 backends; every file once, all exit 0."""
    tree.versioned(1, "schema", "create schema dpp;")
    tree.versioned(2, "t", "create table dpp.t (a int primary key);")
    tree.versioned(3, "u", "create table dpp.u (a int references dpp.t);")
    tree.versioned(4, "row", "insert into dpp.t values (1);")
    tree.repeatable(
        "f.sql", "create or replace function dpp.f() returns int language sql as 'select 1';"
    )
    go = tmp_path / "go"
    migrate_args = [
        "migrate",
        "--dsn",
        bouncer.dsn,
        "--sql-dir",
        str(tree.root),
        "--lock-wait",
        "30",
    ]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", BARRIER, str(tmp_path / f"ready{i}"), str(go), *migrate_args],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready*"))) == 8, 30, "8 runners ready")
        go.touch()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0] * 8, outputs
    assert all(err == "" for _, err in outputs), outputs
    assert not any("prepared statement" in out for out, _ in outputs), outputs
    applied = [
        line.split()[1]
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("applied ")
    ]
    scripts = [
        f"migrations/{v(n)}_{s}.sql" for n, s in ((1, "schema"), (2, "t"), (3, "u"), (4, "row"))
    ]
    assert sorted(applied) == sorted([*scripts, "repeatable/f.sql"])
    assert sorted((row[1] or row[2], row[3]) for row in history(bouncer.direct_dsn)) == sorted(
        [(v(n), "applied") for n in (1, 2, 3, 4)] + [("f.sql", "applied")]
    )
    with psycopg.connect(bouncer.direct_dsn, autocommit=True) as conn:
        assert conn.execute("select count(*) from dpp.t").fetchone() == (1,)
    assert advisory_locks(bouncer.direct_dsn) == 0


def test_failure_mid_run_through_transaction_pooling(bouncer: Bouncer, tree: Tree) -> None:
    """§4.15 with §4.10: the good file kept, the bad one rolled back, the next not attempted."""
    tree.versioned(1, "t1", "create table t1 (a int);")
    run(bouncer.dsn, tree)
    tree.versioned(2, "t2", "create table t2 (a int);")
    broken = tree.versioned(3, "t3", "create table t3 (a int);\nselec 1;\n")
    tree.versioned(4, "t4", "create table t4 (a int);")
    with pytest.raises(ApplyError) as caught:
        run(bouncer.dsn, tree)
    message = str(caught.value)
    assert message.startswith(f"migrations/{v(3)}_t3.sql: line 2: syntax error at or near")
    assert "rolled back, nothing recorded" in message
    direct = bouncer.direct_dsn
    assert exists(direct, "t2") and not exists(direct, "t3") and not exists(direct, "t4")
    assert [(row[1], row[3]) for row in history(direct)] == [(v(1), "applied"), (v(2), "applied")]
    broken.write_text("create table t3 (a int);\nselect 1;\n")
    result, _ = run(bouncer.dsn, tree)
    assert [a.version for a in result.applied] == [v(3), v(4)]
    assert exists(direct, "t3") and exists(direct, "t4")
    assert advisory_locks(direct) == 0


def test_no_transaction_file_is_refused_by_the_pooler_probe(bouncer: Bouncer, tree: Tree) -> None:
    """§4.15: refused during validation, before anything runs or any session lock is taken."""
    tree.versioned(1, "t", "create table t (a int);")
    tree.versioned(2, "t_a", "-- migrate:no-transaction\ncreate index concurrently t_a on t (a);\n")
    done = cli("migrate", "--dsn", bouncer.dsn, "--sql-dir", str(tree.root), "--lock-wait", "5")
    assert done.returncode == 2, (done.stdout, done.stderr)
    error = done.stderr.strip()
    assert "\n" not in error and "Traceback" not in error
    assert "transaction-mode pooler" in error and "session-mode" in error, error
    direct = bouncer.direct_dsn
    assert history(direct) == []
    assert not exists(direct, "t") and not exists(direct, "t_a")
    assert advisory_locks(direct) == 0
    with psycopg.connect(direct, autocommit=True) as conn:
        assert conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory'"
        ).fetchone() == (0,)
