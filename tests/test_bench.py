"""Smoke tests of the benchmark machinery (`make bench`), on tiny sizes; no timing assertions.

* a whole run on the test server: it builds, measures and drops its scratch database and role,
  its table has every figure and plan check, every number is the one pgbench measured and every
  ratio is computed from them, and each create run left one row per committed transaction;
* the API script sends exactly the statements PostgrestClient sends for the same request;
* the plan classifier tells per-row helper calls from once-per-statement ones;
* errors reach the user as one line.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dpp_batches.bench import __main__ as bench_main
from dpp_batches.bench import config, data, driver, pgbench, plans, scripts
from dpp_batches.bench.report import Result, render
from dpp_batches.bench.scripts import Var
from dpp_batches.bench.server import Database, Server
from dpp_batches.bench.workload import Workload
from dpp_batches.postgrest import PostgrestClient

TINY = config.Config(
    "tiny",
    sizes=(1_500, 3_000),
    clients=(1, 2),
    transactions=25,
    rounds=2,
    goal_clients=2,
    layout=data.Layout(brands=20, products_per_brand=3, member_brands=3, writers=2),
)


@pytest.fixture(scope="module")
def recorded(admin_dsn: str) -> Iterator[tuple[Result, list[tuple[str, pgbench.Run]], list[str]]]:
    """One tiny run; every pgbench run it made, and its progress lines."""
    runs: list[tuple[str, pgbench.Run]] = []
    real_run = pgbench.run

    def spy(*args: Any, **kwargs: Any) -> pgbench.Run:
        result = real_run(*args, **kwargs)
        runs.append((kwargs["name"], result))
        return result

    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pgbench, "run", spy)
        result = driver.run(TINY, admin_dsn, lines.append)
    yield result, runs, lines


def _names(figures: Any) -> set[tuple[str, str]]:
    return {(f.name, f.baseline_name) for f in figures}


def test_run_reports_every_figure_and_check(
    recorded: tuple[Result, list[tuple[str, pgbench.Run]], list[str]],
) -> None:
    result, _, _ = recorded
    expected: set[tuple[str, str]] = set()
    for c in TINY.clients:
        expected |= {
            (f"create_product_batch, {c} client(s)", "framed INSERT (a)"),
            (f"create_product_batch, {c} client(s)", "bare INSERT (b)"),
            (f"update_product_batch, {c} client(s)", "framed UPDATE"),
        }
    for size in TINY.sizes:
        for q in (50, 95):
            name = f"list_product_batches p{q}, {size:,} batches"
            expected |= {(name, "framed bare SELECT (a)"), (name, "(a) as PostgREST JSON (b)")}
    expected.add(("list_product_batches p50 at 3,000 vs 1,500 batches", "API p50 at 1,500"))
    assert _names(result.figures) == expected
    assert len(result.figures) == len(expected)

    goals = {(f.name, f.baseline_name): str(f.goal) for f in result.figures if f.goal}
    assert goals == {
        ("create_product_batch, 2 client(s)", "framed INSERT (a)"): "≥ 0.75",
        ("update_product_batch, 2 client(s)", "framed UPDATE"): "≥ 0.75",
        **{
            (f"list_product_batches p{q}, {s:,} batches", "framed bare SELECT (a)"): "≤ 1.3"
            for q in (50, 95)
            for s in TINY.sizes
        },
        ("list_product_batches p50 at 3,000 vs 1,500 batches", "API p50 at 1,500"): "≤ 1.2",
    }

    checked = {c.name.split(":")[0] for c in result.checks}
    assert checked >= {
        "list_product_batches",
        "require_product",
        "require_brand_role",
        "update_product_batch",
        "list_product_batches request",
    }
    assert all(c.detail for c in result.checks)

    table = render(result)
    for f in result.figures:
        assert any(
            line.startswith(f"| {f.name} ") and f.baseline_name in line and f"{f.ratio:.2f}" in line
            for line in table.splitlines()
        ), f"no table row for {f.name} / {f.baseline_name}"


def test_numbers_are_the_measured_ones(
    recorded: tuple[Result, list[tuple[str, pgbench.Run]], list[str]],
) -> None:
    result, runs, _ = recorded

    def tps(name: str) -> float:
        values = [r.tps for n, r in runs if n == name]
        assert len(values) == TINY.rounds, name
        return statistics.fmean(values)

    def latencies(variant: str, size_index: int) -> list[float]:
        lists = [r.latencies_ms for n, r in runs if n == f"list-{variant}"]
        per_size = len(lists) // len(TINY.sizes)
        chosen = lists[size_index * per_size : (size_index + 1) * per_size]
        return [v for lst in chosen for v in lst]

    by_key = {(f.name, f.baseline_name): f for f in result.figures}
    for c in TINY.clients:
        create = by_key[(f"create_product_batch, {c} client(s)", "framed INSERT (a)")]
        assert create.api == tps(f"create-{c}-api")
        assert create.baseline == tps(f"create-{c}-a")
        bare = by_key[(f"create_product_batch, {c} client(s)", "bare INSERT (b)")]
        assert bare.baseline == tps(f"create-{c}-b")
        update = by_key[(f"update_product_batch, {c} client(s)", "framed UPDATE")]
        assert (update.api, update.baseline) == (tps(f"update-{c}-api"), tps(f"update-{c}-a"))
    for i, size in enumerate(TINY.sizes):
        api, bare_lat = latencies("api", i), latencies("a", i)
        assert len(api) == TINY.rounds * TINY.transactions  # type: ignore[operator]
        fig = by_key[(f"list_product_batches p95, {size:,} batches", "framed bare SELECT (a)")]
        assert fig.api == driver.percentile(api, 95)
        assert fig.baseline == driver.percentile(bare_lat, 95)
    for f in result.figures:
        assert f.api > 0 and f.baseline > 0
        assert f.ratio == f.api / f.baseline
        assert f.met == (f.goal.met(f.ratio) if f.goal else None)


def test_run_cleans_up_after_itself(
    recorded: tuple[Result, list[tuple[str, pgbench.Run]], list[str]], admin_dsn: str
) -> None:
    _, _, lines = recorded
    created = next(line for line in lines if line.startswith("scratch database "))
    database, role = created.split()[2], created.split()[-1]
    assert database.startswith("dpp_bench_") and role.startswith("dpp_bench_auth_")
    with psycopg.connect(admin_dsn) as conn:
        assert (
            conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
            is None
        )
        assert conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is None


def test_create_runs_are_checked_row_for_row(
    recorded: tuple[Result, list[tuple[str, pgbench.Run]], list[str]],
) -> None:
    """verify_created passed for every create run; a missing row would have failed the run."""
    _, runs, _ = recorded
    creates = [r for n, r in runs if n.startswith("create-")]
    assert len(creates) == 3 * len(TINY.clients) * TINY.rounds
    assert all(r.transactions == r.clients * TINY.transactions for r in creates)


def test_verify_created_rejects_a_missing_row(db_dsn: str) -> None:
    db = Database("unused", db_dsn, "", "", "postgres")
    work = Workload(TINY.layout, "postgres", {}, {})
    bench = driver.Bench(TINY, Server(db_dsn, "test", "0", 0), db, Path("pgbench"), print, work)
    with pytest.raises(driver.BenchError, match="committed 1 transactions but the table has 0"):
        bench.verify_created("no-such-tag", 1)


# -- the API script is what PostgrestClient sends -------------------------------------------


class _Capture(PostgrestClient):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.sent: list[tuple[str, list[Any], str, list[Any], bool]] = []

    def _transaction(
        self,
        routine: Any,
        settings_sql: str,
        settings_params: list[Any],
        main_sql: str,
        main_params: list[Any],
        *,
        read_only: bool,
        anonymous: bool,
    ) -> tuple[Any, ...]:
        self.sent.append((settings_sql, settings_params, main_sql, main_params, read_only))
        return super()._transaction(
            routine,
            settings_sql,
            settings_params,
            main_sql,
            main_params,
            read_only=read_only,
            anonymous=anonymous,
        )


@pytest.mark.parametrize(
    ("fn", "body", "variables"),
    [
        (
            "create_product_batch",
            {
                "_brand_id": data.uid(data.BRAND, 1),
                "_product_id": f"{data.PRODUCT}:p",
                "_batch_number": "B-:client_id-:seq",
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
                "_attributes": {},
            },
            {"p": 900000000001, "client_id": 1, "seq": 7},
        ),
        (
            "update_product_batch",
            {
                "_brand_id": data.uid(data.BRAND, 1),
                "_batch_id": f"{data.BATCH}:bid",
                "_patch": {"quantity": Var("q"), "facility_ref": "it's"},
            },
            {"bid": 900000000042, "q": 600},
        ),
        (
            "list_product_batches",
            {"_brand_id": data.uid(data.BRAND, 1), "_product_id": data.uid(data.PRODUCT, 1)},
            {},
        ),
    ],
)
def test_api_script_is_what_postgrest_client_sends(
    fn: str,
    body: dict[str, Any],
    variables: dict[str, Any],
    db_dsn: str,
    authenticator_dsn: str,
) -> None:
    claims = {
        "aud": "authenticated",
        "exp": 2_000_000_000,
        "iat": 1_900_000_000,
        "role": "authenticated",
        "sub": data.uid(data.USER, 1),
    }
    with psycopg.connect(db_dsn) as conn:
        rpc = scripts.load_rpcs(conn, {fn: body})[fn]
    lines = scripts.sql_lines(scripts.substitute(scripts.api_script(rpc, claims), variables))
    assert lines[0] == (
        f"BEGIN ISOLATION LEVEL READ COMMITTED "
        f"{'READ ONLY' if fn == 'list_product_batches' else 'READ WRITE'};"
    )
    assert lines[-1] == "COMMIT;"

    concrete = scripts.json_body(body)
    for name, value in variables.items():
        concrete = concrete.replace(f":{name}", str(value))
    with _Capture(authenticator_dsn) as client:
        client.with_claims(claims).rpc(fn, concrete, headers=dict(scripts.HEADERS))
    [(settings_sql, settings_params, main_sql, main_params, read_only)] = client.sent

    def inlined(text: str, params: list[Any]) -> str:
        return scripts.inline(scripts.Statement([text], list(params))) + ";"

    assert lines[1:3] == [inlined(settings_sql, settings_params), inlined(main_sql, main_params)]
    assert read_only == (fn == "list_product_batches")


def test_json_body_and_substitution() -> None:
    text = scripts.json_body({"a": "x-:n", "b": Var("q"), "c": {"d": Var("q")}})
    assert text == '{"a": "x-:n", "b": :q, "c": {"d": :q}}'
    assert scripts.substitute(f"select {text}::json, 1::int := :missing", {"n": 3, "q": 4}) == (
        'select {"a": "x-3", "b": 4, "c": {"d": 4}}::json, 1::int := :missing'
    )
    assert scripts.literal("it's") == "'it''s'"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert driver.percentile(values, 50) == 50.0
    assert driver.percentile(values, 95) == 95.0
    assert driver.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert driver.percentile([7.0], 95) == 7.0


# -- the plan classifier ---------------------------------------------------------------------


def _scan(**extra: Any) -> dict[str, Any]:
    return {
        "Node Type": "Index Scan",
        "Schema": "dpp",
        "Relation Name": "batches",
        "Index Name": "batches_pkey",
        **extra,
    }


def _helper_node(name: str, relationship: str) -> dict[str, Any]:
    return {
        "Node Type": "ProjectSet",
        "Parent Relationship": relationship,
        "Subplan Name": name,
        "Output": ["dpp.my_brand_ids()"],
    }


@pytest.mark.parametrize(
    ("plan", "per_row", "seq"),
    [
        (_scan(Filter="(hashed SubPlan 1)", Plans=[_helper_node("SubPlan 1", "SubPlan")]), [], []),
        (_scan(Plans=[_helper_node("InitPlan 1 (returns $0)", "InitPlan")]), [], []),
        (
            _scan(Filter="(SubPlan 1)", Plans=[_helper_node("SubPlan 1", "SubPlan")]),
            ["my_brand_ids (per row (correlated SubPlan 1))"],
            [],
        ),
        (
            {
                "Node Type": "Seq Scan",
                "Schema": "dpp",
                "Relation Name": "batches",
                "Filter": "(brand_id = dpp.current_user_id())",
            },
            ["current_user_id (per row (in a Seq Scan filter))"],
            ["Seq Scan on dpp.batches"],
        ),
    ],
)
def test_plan_shape_classifies_helpers(
    plan: dict[str, Any], per_row: list[str], seq: list[str]
) -> None:
    shape = plans.shape([{"Plan": plan}])
    assert shape.per_row == per_row
    assert list(shape.seq_scans) == seq


def test_check_calls_flags_helpers_that_grow_with_rows() -> None:
    ok = plans.check_calls(
        {"dpp.current_user_id": 2, "dpp.rfc3339": 200},
        {"dpp.current_user_id": 2, "dpp.rfc3339": 2},
        100,
    )
    assert [c.ok for c in ok] == [True, None]
    bad = plans.check_calls({"dpp.my_brand_ids": 100}, {"dpp.my_brand_ids": 1}, 100)
    assert bad[0].ok is False and "1 -> 100" in bad[0].detail


# -- errors ----------------------------------------------------------------------------------


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_main.main(["--quick", "--dsn", "postgresql://nobody@127.0.0.1:1/none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("bench: cannot connect to")
    assert "Traceback" not in "\n".join(err)


def test_config_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="smallest size"):
        config.Config("x", sizes=(10,), clients=(1,), seconds=1)
    with pytest.raises(ValueError, match="clients"):
        config.Config("x", sizes=(5_000,), clients=(9,), seconds=1)


def test_bench_sessions_skip_the_wal_flush_wait_unless_durable(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "select current_setting('server_version_num')::int / 10000,"
            " current_setting('synchronous_commit')"
        ).fetchone()
    assert row is not None
    binary, _ = pgbench.find(int(row[0]))
    check = (
        "do $$ begin if current_setting('synchronous_commit') <> 'off' then"
        " raise exception 'synchronous_commit is %', current_setting('synchronous_commit');"
        " end if; end $$;\n"
    )
    target = pgbench.Target.of(db_dsn, {"synchronous_commit": "off"})
    run = pgbench.run(binary, target, check, name="sync", clients=1, transactions=2)
    assert run.transactions == 2
    if row[1] == "off":
        return  # the server's own default is off: nothing to tell apart
    with pytest.raises(driver.BenchError, match=f"synchronous_commit is {row[1]}"):
        pgbench.run(
            binary, pgbench.Target.of(db_dsn), check, name="sync", clients=1, transactions=1
        )
