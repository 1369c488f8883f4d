"""Plan checks: index scans under RLS, identity/membership helpers once per statement.

Two kinds of evidence, both taken as the `authenticated` role with the bench user's claims set
by the API's own `set_config` statement:

* `EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON)` of the policy-filtered statements the RPCs run
  (the RPC bodies' reads and writes, with the RLS policies the planner adds): every scan of a
  `dpp` table must use an index, and every helper call must sit in an InitPlan, a hashed
  SubPlan or a scan node, never in a per-row filter or a correlated SubPlan;
* function call counts (`track_functions = all`, read from `pg_stat_xact_user_functions` in
  the same transaction) of the real `list_product_batches` request for a product with many rows
  and for one with a single row: a helper that runs once per statement is called equally often.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dpp_batches.bench.report import Check

HELPERS = (
    "jwt_claims",
    "jwt_role",
    "current_user_id",
    "is_service",
    "my_brand_ids",
    "my_brand_ids_with_role",
)
_INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
_EXPRESSION_KEYS = ("Filter", "Join Filter", "Hash Cond", "Merge Cond", "Recheck Cond")


@dataclass(frozen=True)
class Statement:
    name: str
    sql: str
    as_owner: bool = False  # run as the table owner (SECURITY DEFINER helper bodies)


@dataclass(frozen=True)
class Shape:
    scans: tuple[str, ...]  # "Index Scan using batches_pkey on dpp.batches"
    seq_scans: tuple[str, ...]  # dpp relations read without an index
    helpers: tuple[tuple[str, str], ...]  # (helper, where it runs)

    @property
    def per_row(self) -> list[str]:
        return [f"{h} ({where})" for h, where in self.helpers if where.startswith("per row")]


def _nodes(
    plan: Mapping[str, Any], sub: str | None
) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """Every node with the name of the nearest InitPlan/SubPlan above it (or None)."""
    name = (
        plan.get("Subplan Name")
        if plan.get("Parent Relationship") in ("InitPlan", "SubPlan")
        else None
    )
    here = name or sub
    yield plan, here
    for child in plan.get("Plans", ()):
        yield from _nodes(child, here)


def shape(explain: Sequence[Mapping[str, Any]]) -> Shape:
    """Scans and helper placement of one `EXPLAIN (VERBOSE, FORMAT JSON)` result."""
    root = explain[0]["Plan"]
    text = json.dumps(explain)
    scans: list[str] = []
    seq: list[str] = []
    helpers: list[tuple[str, str]] = []
    for node, sub in _nodes(root, None):
        kind = node["Node Type"]
        if node.get("Schema") == "dpp" and "Relation Name" in node and kind.endswith("Scan"):
            relation = f"dpp.{node['Relation Name']}"
            index = f" using {node['Index Name']}" if "Index Name" in node else ""
            scans.append(f"{kind}{index} on {relation}")
            if kind not in _INDEX_SCANS:
                seq.append(f"{kind} on {relation}")
        for helper in HELPERS:
            call = f"dpp.{helper}("
            in_output = any(call in str(o) for o in node.get("Output", ())) or (
                node.get("Function Name") == helper
            )
            in_filter = any(call in str(node.get(k, "")) for k in _EXPRESSION_KEYS)
            if sub is None and in_filter:
                helpers.append((helper, f"per row (in a {kind} filter)"))
            elif in_output or in_filter:
                helpers.append((helper, _placement(sub, text)))
            elif call in str(node.get("Index Cond", "")):
                helpers.append((helper, "an index condition (once per index scan)"))
    return Shape(tuple(scans), tuple(seq), tuple(dict.fromkeys(helpers)))


def _placement(sub: str | None, text: str) -> str:
    if sub is None:
        return "once (scan node)"
    if sub.startswith("InitPlan"):
        return "InitPlan"
    if f"hashed {sub}" in text:
        return "hashed SubPlan"
    if f"({sub})" in text:
        return f"per row (correlated {sub})"
    # Referenced by no printed expression: a WITH CHECK option of the modified row.
    return "a check option of the written row"


def statements(ids: Mapping[str, str]) -> list[Statement]:
    """The reads and writes the RPCs run, with the bench's ids (policies added by RLS)."""
    b, p, u, x = ids["brand"], ids["product"], ids["user"], ids["batch"]
    return [
        Statement(
            "list_product_batches: batches of a product",
            f"select b.* from dpp.batches as b where b.brand_id = '{b}'"
            f" and b.product_id = '{p}' order by b.created_at desc, b.id desc",
        ),
        Statement(
            "require_product: the product in its brand",
            f"select 1 from dpp.products as p where p.brand_id = '{b}' and p.id = '{p}'",
        ),
        Statement(
            "require_brand_role: the caller's membership",
            f"select m.role from dpp.brand_members as m where m.brand_id = '{b}'"
            f" and m.user_id = '{u}'",
        ),
        Statement(
            "update_product_batch: the batch row (USING, WITH CHECK, SELECT policies)",
            f"update dpp.batches as b set quantity = b.quantity where b.brand_id = '{b}'"
            f" and b.id = '{x}' returning b.*",
        ),
    ]


def _explain(conn: psycopg.Connection[Any], settings: str, stmt: Statement) -> list[dict[str, Any]]:
    with conn.transaction(force_rollback=True):
        conn.execute(settings)
        if stmt.as_owner:
            conn.execute("reset role")
        row = conn.execute(f"explain (analyze, verbose, format json) {stmt.sql}").fetchone()
    assert row is not None
    value = row[0]
    return json.loads(value) if isinstance(value, str) else list(value)


def helper_body(conn: psycopg.Connection[Any]) -> Statement | None:
    """`dpp.my_brand_ids()`'s own query (it runs as its owner): an SQL body, or a plpgsql
    `return query`; None when neither is found."""
    row = conn.execute(
        "select l.lanname, p.prosrc from pg_proc p join pg_language l on l.oid = p.prolang"
        " where p.oid = to_regprocedure('dpp.my_brand_ids()')"
    ).fetchone()
    if row is None:
        return None
    language, source = str(row[0]), str(row[1])
    if language == "plpgsql":
        found = re.search(r"return\s+query\s+(select\b.*?);", source, re.I | re.S)
        source = found.group(1) if found else ""
    elif language != "sql":
        source = ""
    if not source.strip():
        return None
    return Statement(
        "dpp.my_brand_ids(): its own query (SECURITY DEFINER)",
        source.strip().rstrip(";"),
        as_owner=True,
    )


def check_statement(conn: psycopg.Connection[Any], settings: str, stmt: Statement) -> list[Check]:
    s = shape(_explain(conn, settings, stmt))
    scans = Check(
        f"{stmt.name}: index scans",
        bool(s.scans) and not s.seq_scans,
        "; ".join(s.seq_scans) if s.seq_scans else "; ".join(s.scans) or "no dpp scan",
    )
    where = ", ".join(f"{h} in {w}" for h, w in s.helpers) or "no helper call in the plan"
    helpers = Check(
        f"{stmt.name}: helpers once per statement",
        not s.per_row,
        where if not s.per_row else "per row: " + ", ".join(s.per_row),
    )
    return [scans, helpers]


_CALLS_SQL = (
    "select schemaname || '.' || funcname, calls, total_time, self_time"
    " from pg_stat_xact_user_functions where schemaname in ('dpp', 'public')"
)


def call_counts(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, float, float]]:
    """Pending function stats of this backend: name -> (calls, total ms, self ms).

    Since PostgreSQL 15 these include earlier transactions whose stats are not flushed yet,
    so callers take the difference of two readings in one transaction.
    """
    rows = conn.execute(_CALLS_SQL).fetchall()
    return {str(name): (int(calls), float(total), float(own)) for name, calls, total, own in rows}


def calls_delta(
    before: Mapping[str, tuple[int, float, float]], after: Mapping[str, tuple[int, float, float]]
) -> dict[str, tuple[int, float, float]]:
    zero = (0, 0.0, 0.0)
    delta = {
        name: (
            a[0] - before.get(name, zero)[0],
            a[1] - before.get(name, zero)[1],
            a[2] - before.get(name, zero)[2],
        )
        for name, a in after.items()
    }
    return {name: d for name, d in delta.items() if d[0] > 0}


def function_calls(conn: psycopg.Connection[Any], lines: Sequence[str]) -> dict[str, int]:
    """Calls per dpp/public function while running a request's statements (rolled back)."""
    with conn.transaction(force_rollback=True):
        before = call_counts(conn)
        for line in lines:
            if not line.upper().startswith(("BEGIN", "COMMIT")):
                conn.execute(line)
        conn.execute("reset role")
        delta = calls_delta(before, call_counts(conn))
    return {name: d[0] for name, d in delta.items()}


def check_calls(many: Mapping[str, int], one: Mapping[str, int], rows: int) -> list[Check]:
    """Compare call counts of one request returning `rows` rows and one returning a single row."""
    helpers = {f"dpp.{h}" for h in HELPERS}
    growing = sorted(name for name in many if many[name] > one.get(name, 0))
    per_row = [n for n in growing if n in helpers]
    counts = ", ".join(f"{n.removeprefix('dpp.')} {many[n]}" for n in sorted(many) if n in helpers)
    checks = [
        Check(
            f"list_product_batches request: helper calls for {rows} rows vs 1 row",
            not per_row,
            (
                f"equal ({counts})"
                if not per_row
                else "grow with rows: "
                + ", ".join(f"{n} {one.get(n, 0)} -> {many[n]}" for n in per_row)
            ),
        )
    ]
    others = [n for n in growing if n not in helpers]
    if others:
        checks.append(
            Check(
                "list_product_batches request: per-row function calls",
                None,
                ", ".join(f"{n} {one.get(n, 0)} -> {many[n]}" for n in others),
            )
        )
    return checks
