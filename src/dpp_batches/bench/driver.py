"""Run the benchmark: build the data, run pgbench for the API and its baselines, check plans.

Order: base data; for each size, grow the batches table and measure list latency; plan checks
at the largest size; then create and update throughput at each client count. Within a figure
the API and its baselines alternate (API first in odd rounds, last in even ones) so drift on a
shared machine hits both alike. Every script is probed once before it is timed, and every
create run is checked row for row, so a fast wrong answer cannot pass for a fast right one.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from dpp_batches.bench import data, pgbench, plans, profile, scripts
from dpp_batches.bench.config import Config
from dpp_batches.bench.errors import BenchError
from dpp_batches.bench.report import Check, Figure, Goal, Result
from dpp_batches.bench.scripts import Rpc
from dpp_batches.bench.server import Database, Server, open_server, scratch_database
from dpp_batches.bench.workload import LETTER, Workload

Say = Callable[[str], None]

THROUGHPUT_GOAL = Goal(">=", 0.75)
LATENCY_GOAL = Goal("<=", 1.3)
GROWTH_GOAL = Goal("<=", 1.2)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class Bench:
    config: Config
    server: Server
    db: Database
    binary: Path
    say: Say
    work: Workload

    @property
    def layout(self) -> data.Layout:
        return self.config.layout

    # -- running ----------------------------------------------------------------------------

    @property
    def settings(self) -> dict[str, str]:
        return {} if self.config.durable_commits else {"synchronous_commit": "off"}

    def dsn(self, variant: str) -> str:
        """The API runs as the authenticator; baselines as the superuser (set to the owner)."""
        return self.db.api_dsn if variant == "api" else self.db.admin_dsn

    def run(
        self, name: str, variant: str, text: str, clients: int, *, log: bool = False
    ) -> pgbench.Run:
        return pgbench.run(
            self.binary,
            pgbench.Target.of(self.dsn(variant), self.settings),
            text,
            name=f"{name}-{variant}",
            clients=clients,
            seconds=self.config.seconds,
            transactions=self.config.transactions,
            defines={"seq": "0"},
            log=log,
        )

    def rounds(self, variants: Sequence[str]) -> list[list[str]]:
        return [
            list(variants) if r % 2 == 0 else list(reversed(variants))
            for r in range(self.config.rounds)
        ]

    def probe(
        self, variant: str, text: str, variables: Mapping[str, Any]
    ) -> tuple[int, list[tuple[Any, ...]] | None]:
        """Run a script's statements once outside pgbench: (rowcount, rows) of its last one."""
        result: tuple[int, list[tuple[Any, ...]] | None] = (0, None)
        with psycopg.connect(self.dsn(variant), autocommit=True, prepare_threshold=None) as conn:
            for line in scripts.sql_lines(scripts.substitute(text, variables)):
                cur = conn.execute(line)
                if not line.upper().startswith(("BEGIN", "COMMIT")):
                    result = (cur.rowcount, cur.fetchall() if cur.description else None)
        return result

    def probe_rows(self, variant: str, text: str) -> int:
        """Rows a list script returns: page_total of a JSON body (api, b), else the rowcount."""
        count, rows = self.probe(variant, text, {})
        return count if variant == "a" or not rows else int(rows[0][1])

    # -- measurements -----------------------------------------------------------------------

    def list_latency(self) -> dict[str, list[float]]:
        texts = self.work.list_scripts()
        got = {v: self.probe_rows(v, t) for v, t in texts.items()}
        if set(got.values()) != {self.layout.list_batches}:
            raise BenchError(
                f"list probe: expected {self.layout.list_batches} rows from each script, got {got}"
            )
        lat: dict[str, list[float]] = {v: [] for v in texts}
        for order in self.rounds(list(texts)):
            for variant in order:
                run = self.run("list", variant, texts[variant], 1, log=True)
                lat[variant] += run.latencies_ms
        return lat

    def throughput(
        self, kind: str, clients: int, texts_for: Callable[[int], dict[str, str]]
    ) -> dict[str, float]:
        """Mean tps per variant over the rounds; texts_for(round) gives the scripts."""
        tps: dict[str, list[float]] = {}
        for r, order in enumerate(self.rounds(list(texts_for(0)))):
            texts = texts_for(r)
            for variant in order:
                run = self.run(f"{kind}-{clients}", variant, texts[variant], clients)
                tps.setdefault(variant, []).append(run.tps)
                if kind == "create":
                    self.verify_created(f"c{clients}r{r}{LETTER[variant]}", run.transactions)
        return {v: statistics.fmean(values) for v, values in tps.items()}

    def verify_created(self, tag: str, transactions: int) -> None:
        """Every committed pgbench transaction left exactly one row."""
        lay = self.layout
        products = [lay.write_product(c) for c in range(lay.writers)]
        with psycopg.connect(self.db.admin_dsn, prepare_threshold=None) as conn:
            row = conn.execute(
                "select count(*) from dpp.batches where brand_id = %s"
                " and product_id = any(%s::uuid[]) and batch_number like %s",
                (lay.brand_id, products, f"{tag}-%"),
            ).fetchone()
        found = int(row[0]) if row else 0
        if found != transactions:
            raise BenchError(
                f"create run {tag}: pgbench committed {transactions} transactions "
                f"but the table has {found} rows"
            )

    def check_plans(self) -> list[Check]:
        lay = self.layout
        ids = {
            "brand": lay.brand_id,
            "product": lay.list_product,
            "user": lay.user_id,
            "batch": lay.write_batch(0, 1),
        }
        rpc = self.work.rpcs["list_product_batches"]
        settings = rpc.settings("authenticated", self.work.claims)
        checks: list[Check] = []
        with psycopg.connect(self.db.admin_dsn, autocommit=True, prepare_threshold=None) as conn:
            conn.execute("set track_functions = 'all'")
            stmts = plans.statements(ids)
            body = plans.helper_body(conn)
            if body is not None:
                stmts.append(body)
            for stmt in stmts:
                checks += plans.check_statement(conn, settings, stmt)
            many = plans.function_calls(conn, [settings, rpc.main()])
            probe = Rpc(rpc.routine, {**rpc.body, "_product_id": lay.probe_product})
            one = plans.function_calls(conn, [settings, probe.main()])
        return checks + plans.check_calls(many, one, lay.list_batches)

    def profiles(self, n: int = 50) -> list[profile.Profile]:
        lay = self.layout
        n = min(n, lay.write_batches)
        create, update, lst = (
            self.work.rpcs[f]
            for f in ("create_product_batch", "update_product_batch", "list_product_batches")
        )
        statements: list[tuple[Rpc, Callable[[int], str]]] = [
            (
                create,
                lambda i: scripts.substitute(
                    create.main(), {"p": data.WRITE_BASE, "client_id": 0, "seq": i}
                ).replace("TAG-", "prof-"),
            ),
            (
                update,
                lambda i: scripts.substitute(
                    update.main(), {"bid": data.WRITE_BASE + 1 + i, "q": 1000 + i}
                ),
            ),
            (lst, lambda _i: lst.main()),
        ]
        with psycopg.connect(self.db.admin_dsn, autocommit=True, prepare_threshold=None) as conn:
            return [
                profile.profile(
                    conn, rpc.routine.name, rpc.settings("authenticated", self.work.claims), stmt, n
                )
                for rpc, stmt in statements
            ]


# -- phases -------------------------------------------------------------------------------


def run(
    config: Config,
    dsn: str | None,
    say: Say,
    *,
    sql_dir: Path | None = None,
    with_profile: bool = False,
    label: str = "the given DSN",
) -> Result:
    started = time.monotonic()
    with open_server(dsn, say, label) as server:
        binary, version = pgbench.find(server.major)
        say(f"server: {server.label}, PostgreSQL {server.version}; pgbench {version} ({binary})")
        with scratch_database(server, say, sql_dir) as db:
            data.load_base(db.admin_dsn, config.layout)
            work = Workload.load(db.api_dsn, config.layout, db.owner)
            bench = Bench(config, server, db, binary, say, work)
            result = _header(bench)
            _list_phase(bench, result)
            say("plan checks")
            result.checks = bench.check_plans()
            _create_phase(bench, result)
            _update_phase(bench, result)
            if with_profile:
                say("profile")
                result.notes += profile.render(bench.profiles())
    order = ("create", "update", "list")
    result.figures.sort(key=lambda f: next(i for i, k in enumerate(order) if f.name.startswith(k)))
    result.info.append(("elapsed", f"{time.monotonic() - started:.0f} s"))
    return result


def _header(bench: Bench) -> Result:
    config, lay = bench.config, bench.layout
    length = (
        f"{config.seconds} s"
        if config.seconds is not None
        else f"{config.transactions} transactions per client"
    )
    return Result(
        config.name,
        info=[
            (
                "machine",
                f"{os.cpu_count()} CPU cores; PostgreSQL {bench.server.version} "
                f"({bench.server.label})",
            ),
            (
                "method",
                f"pgbench (simple protocol), {config.rounds} round(s) of {length} per "
                "variant, API and baselines alternating; list latency at 1 client; "
                "ratio = API / baseline",
            ),
            (
                "commits",
                "durable (synchronous_commit as configured)"
                if config.durable_commits
                else "synchronous_commit = off in every bench session (no WAL flush wait; "
                "--durable-commits to include it)",
            ),
            (
                "data",
                f"{lay.brands:,} brands x {lay.products_per_brand} products; the listed "
                f"product has {lay.list_batches} batches; the caller is a member of "
                f"{lay.member_brands} brands",
            ),
        ],
    )


def _list_phase(bench: Bench, result: Result) -> None:
    config, say = bench.config, bench.say
    total = bench.layout.base_rows
    p50: dict[int, float] = {}
    for size in config.sizes:
        started = time.monotonic()
        total = data.grow(bench.db.admin_dsn, bench.layout, total, size)
        say(f"{total:,} batches ({time.monotonic() - started:.1f} s to load); list latency")
        lat = bench.list_latency()
        p50[size] = percentile(lat["api"], 50)
        for q in (50, 95):
            name = f"list_product_batches p{q}, {size:,} batches"
            api = percentile(lat["api"], q)
            result.figures.append(
                Figure(
                    name, "ms", api, "framed bare SELECT (a)", percentile(lat["a"], q), LATENCY_GOAL
                )
            )
            result.figures.append(
                Figure(name, "ms", api, "(a) as PostgREST JSON (b)", percentile(lat["b"], q))
            )
        say(
            f"  p50: API {p50[size]:.3f} ms, bare SELECT {percentile(lat['a'], 50):.3f} ms, "
            f"as JSON {percentile(lat['b'], 50):.3f} ms"
        )
    first, last = config.sizes[0], config.sizes[-1]
    result.figures.append(
        Figure(
            f"list_product_batches p50 at {last:,} vs {first:,} batches",
            "ms",
            p50[last],
            f"API p50 at {first:,}",
            p50[first],
            GROWTH_GOAL,
        )
    )


def _create_texts(bench: Bench, clients: int, round_no: int) -> dict[str, str]:
    return bench.work.create_scripts(f"c{clients}r{round_no}")


def _create_phase(bench: Bench, result: Result) -> None:
    config = bench.config
    for clients in config.clients:
        bench.say(f"create throughput, {clients} client(s)")
        tps = bench.throughput("create", clients, partial(_create_texts, bench, clients))
        name = f"create_product_batch, {clients} client(s)"
        goal = THROUGHPUT_GOAL if clients == config.goal_clients else None
        result.figures.append(Figure(name, "tps", tps["api"], "framed INSERT (a)", tps["a"], goal))
        result.figures.append(Figure(name, "tps", tps["api"], "bare INSERT (b)", tps["b"]))
        bench.say(
            f"  API {tps['api']:.0f} tps, framed INSERT {tps['a']:.0f}, bare INSERT {tps['b']:.0f}"
        )


def _update_phase(bench: Bench, result: Result) -> None:
    config = bench.config
    texts = bench.work.update_scripts()
    bare = bench.probe(
        "a", texts["a"], {"client_id": 0, "k": 1, "q": 7, "bid": data.WRITE_BASE + 1}
    )
    api = bench.probe(
        "api", texts["api"], {"client_id": 0, "k": 2, "q": 8, "bid": data.WRITE_BASE + 2}
    )
    if bare[0] != 1 or not api[1] or api[1][0][2].get("quantity") != 8:
        raise BenchError("update probe: the bare UPDATE or the RPC did not change the batch")
    for clients in config.clients:
        bench.say(f"update throughput, {clients} client(s)")
        tps = bench.throughput("update", clients, lambda _r: texts)
        goal = THROUGHPUT_GOAL if clients == config.goal_clients else None
        result.figures.append(
            Figure(
                f"update_product_batch, {clients} client(s)",
                "tps",
                tps["api"],
                "framed UPDATE",
                tps["a"],
                goal,
            )
        )
        bench.say(f"  API {tps['api']:.0f} tps, framed UPDATE {tps['a']:.0f}")
