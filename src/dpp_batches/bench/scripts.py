"""pgbench scripts: the PostgREST request for an RPC, and the owner's bare-SQL baselines.

The API script is built with the same SQL builder `PostgrestClient` uses (`postgrest_sql`), for
the routine resolved from the live schema cache, so the statements are byte-for-byte what the
client sends, with the bound values inlined as literals: BEGIN with the function's access mode,
the one `set_config` select, the `WITH pgrst_source AS (...)` main statement, COMMIT. pgbench's
simple protocol then substitutes `:variables` (also inside the literals) per transaction.

A framed baseline sends the same BEGIN, the same `set_config` select (role = the table owner)
and COMMIT around a bare statement, so its ratio to the API isolates what the RPC adds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dpp_batches.postgrest_cache import Routine, load_routines, resolve
from dpp_batches.postgrest_request import Body, ReadPlan
from dpp_batches.postgrest_sql import JsonArgs, Statement, main_statement, settings_statement

# PostgrestClient's defaults: exposed schema "public", db-extra-search-path "public".
SCHEMA = "public"
SEARCH_PATH = ("public", "public")
# What a browser or supabase-js sends (lower-cased; PostgREST drops the Cookie header).
HEADERS: Mapping[str, str] = {
    "accept": "application/json",
    "content-type": "application/json",
    "user-agent": "dpp-batches-bench",
}


class Var(str):
    """A pgbench variable used as a bare JSON value (a number): rendered as `:name`."""


def json_body(value: Mapping[str, Any]) -> str:
    """JSON text as PostgrestClient sends it; `Var` values become unquoted `:name`."""
    marks: dict[str, str] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, Var):
            mark = f"__pgbench_var_{len(marks)}__"
            marks[json.dumps(mark)] = f":{item}"
            return mark
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        return item

    text = json.dumps(walk(value), ensure_ascii=False)
    for mark, var in marks.items():
        text = text.replace(mark, var)
    return text


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def inline(statement: Statement) -> str:
    """The statement text with each bound parameter written as a literal."""
    params = iter(statement.params)
    return re.sub(
        r"%([s%])", lambda m: "%" if m.group(1) == "%" else literal(next(params)), statement.text
    )


def begin(read_only: bool, isolation: str | None = None) -> str:
    mode = "READ ONLY" if read_only else "READ WRITE"
    return f"BEGIN ISOLATION LEVEL {isolation or 'READ COMMITTED'} {mode};"


@dataclass(frozen=True)
class Rpc:
    """One POST /rpc/<fn> request: its routine (from the schema cache) and JSON body."""

    routine: Routine
    body: Mapping[str, Any]

    @property
    def path(self) -> str:
        return f"/rpc/{self.routine.name}"

    @property
    def read_only(self) -> bool:
        return self.routine.volatility in ("s", "i")  # POST runs STABLE functions READ ONLY

    def settings(self, role: str, claims: Mapping[str, Any]) -> str:
        """The `set_config` select; `claims` as sent (PostgREST puts the role in them)."""
        st = settings_statement(
            SEARCH_PATH,
            self.routine.hoisted,
            role,
            json.dumps(dict(claims), ensure_ascii=False),
            "POST",
            self.path,
            json.dumps(dict(HEADERS), ensure_ascii=False),
            "{}",
        )
        return inline(st) + ";"

    def main(self) -> str:
        body = Body(json_body(self.body), frozenset(self.body), False)
        st = main_statement(self.routine, JsonArgs(body), ReadPlan(select=None), count=False)
        return inline(st) + ";"

    def begin(self) -> str:
        return begin(self.read_only, self.routine.isolation)


def load_rpcs(
    conn: psycopg.Connection[Any], bodies: Mapping[str, Mapping[str, Any]]
) -> dict[str, Rpc]:
    """Resolve each function for its body keys, exactly as PostgrestClient does."""
    routines = load_routines(conn, SCHEMA)
    return {
        fn: Rpc(
            resolve(
                SCHEMA,
                fn,
                routines.get(fn, ()),
                body.keys(),
                json_body=True,
                all_names=routines.keys(),
            ),
            body,
        )
        for fn, body in bodies.items()
    }


def script(prelude: Sequence[str], statements: Sequence[str]) -> str:
    return "\n".join([*prelude, *statements]) + "\n"


def api_script(rpc: Rpc, claims: Mapping[str, Any], prelude: Sequence[str] = ()) -> str:
    """The request as PostgREST sends it; `claims` must carry the role (as PostgREST's do)."""
    role = str(claims["role"])
    return script(prelude, [rpc.begin(), rpc.settings(role, claims), rpc.main(), "COMMIT;"])


def framed_script(
    rpc: Rpc, owner: str, claims: Mapping[str, Any], bare_sql: str, prelude: Sequence[str] = ()
) -> str:
    """The API's framing (BEGIN, set_config select, COMMIT) around a bare statement.

    Only the role differs: the owner's. The claims are the API's, so triggers that read them
    do the same work in both.
    """
    return script(prelude, [rpc.begin(), rpc.settings(owner, claims), bare_sql, "COMMIT;"])


def bare_script(bare_sql: str, prelude: Sequence[str] = ()) -> str:
    return script(prelude, [bare_sql])


def substitute(text: str, variables: Mapping[str, Any]) -> str:
    """pgbench's simple-protocol substitution of `:name` (for probes outside pgbench)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        return str(variables[name]) if name in variables else m.group(0)

    return re.sub(r"(?<!:):([A-Za-z0-9_]+)", repl, text)


def sql_lines(text: str) -> list[str]:
    """The SQL statements of a script (meta-commands such as `\\set` dropped)."""
    return [line for line in text.splitlines() if line and not line.startswith("\\")]
