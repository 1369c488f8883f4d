"""Build the two statements of a PostgREST RPC request: the settings `select` and the main query.

Shapes follow PostgREST v13 `Query.hs` `setPgLocals` and `QueryBuilder.hs` `callPlanToQuery`
(`reference/postgrest-supabase.md` §1.3, §1.5, §2). Identifiers are quoted; every value is a
bound parameter (psycopg `%s`, sent as `$n`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dpp_batches.postgrest_cache import Param, Routine
from dpp_batches.postgrest_request import IS_VALUES, SQL_OPERATORS, Body, Filter, ReadPlan


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ident(name: str) -> str:
    """A quoted identifier for statement text, with `%` doubled for psycopg's placeholders."""
    return quote_ident(name).replace("%", "%%")


@dataclass
class Statement:
    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def sql(self, text: str) -> Statement:
        self.parts.append(text)
        return self

    def value(self, value: Any, cast: str = "") -> Statement:
        self.params.append(value)
        self.parts.append("%s" + cast)
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)


def settings_statement(
    search_path: Sequence[str],
    hoisted: Sequence[tuple[str, str]],
    role: str,
    claims: str,
    method: str,
    path: str,
    headers: str,
    cookies: str,
) -> Statement:
    """The one `select set_config(...), ...` PostgREST runs after BEGIN."""
    st = (
        Statement()
        .sql("select set_config('search_path', ")
        .value(", ".join(quote_ident(s) for s in search_path))
        .sql(", true)")
    )
    for name, value in (
        ("role", role),
        ("request.jwt.claims", claims),
        ("request.method", method),
        ("request.path", path),
        ("request.headers", headers),
        ("request.cookies", cookies),
    ):
        st.sql(f", set_config('{name}', ").value(value).sql(", true)")
    for name, value in hoisted:
        st.sql(", set_config(").value(name).sql(", ").value(value).sql(", true)")
    return st


@dataclass(frozen=True)
class JsonArgs:
    body: Body


@dataclass(frozen=True)
class DirectArgs:
    values: tuple[tuple[Param, str | tuple[str, ...]], ...]


@dataclass(frozen=True)
class SingleArg:
    body: str


CallArgs = JsonArgs | DirectArgs | SingleArg


def main_statement(routine: Routine, args: CallArgs, plan: ReadPlan, *, count: bool) -> Statement:
    """`WITH pgrst_source AS (<call>) SELECT total_result_set, page_total, body, ... `."""
    st = Statement().sql("WITH pgrst_source AS (")
    _call(st, routine, args)
    st.sql(")")
    alias = ident(routine.alias)
    if count:
        st.sql(f', pgrst_source_count AS (SELECT 1 FROM "pgrst_source" AS {alias}')
        _where(st, routine.alias, plan.filters)
        st.sql(")")
    total = "(SELECT pg_catalog.count(*) FROM pgrst_source_count)" if count else "null::bigint"
    page_total = "pg_catalog.count(_postgrest_t)" if routine.returns_set else "1"
    row = "_postgrest_t.pgrst_scalar" if routine.scalar else "_postgrest_t"
    body = (
        f"coalesce(json_agg({row}), '[]')"
        if routine.returns_set
        else f"coalesce(json_agg({row})->0, 'null')"
    )
    st.sql(
        f" SELECT {total} AS total_result_set, {page_total} AS page_total, {body} AS body,"
        " nullif(current_setting('response.headers', true), '') AS response_headers,"
        " nullif(current_setting('response.status', true), '') AS response_status,"
        " '' AS response_inserted FROM (SELECT "
    )
    if plan.select is None:
        st.sql(f"{alias}.*")
    else:
        st.sql(
            ", ".join(
                f"{alias}.{ident(col)}" + (f" AS {ident(name)}" if name else "")
                for col, name in plan.select
            )
        )
    st.sql(f' FROM "pgrst_source" AS {alias}')
    _where(st, routine.alias, plan.filters)
    if plan.order:
        st.sql(
            " ORDER BY "
            + ", ".join(
                f"{alias}.{ident(o.column)}"
                + (" DESC" if o.desc else " ASC")
                + (f" NULLS {o.nulls}" if o.nulls else "")
                for o in plan.order
            )
        )
    if plan.limit is not None or plan.offset:
        st.sql(" LIMIT ").value(plan.limit).sql("::bigint OFFSET ").value(plan.offset)
        st.sql("::bigint")
    return st.sql(") _postgrest_t")


def _call(st: Statement, routine: Routine, args: CallArgs) -> None:
    select = "pgrst_call.pgrst_scalar" if routine.scalar else "pgrst_call.*"
    callee = f"{ident(routine.schema)}.{ident(routine.name)}("
    if isinstance(args, JsonArgs) and args.body.keys:
        params = [p for p in routine.params if p.name in args.body.keys]
        to_record = "json_to_recordset" if args.body.is_array else "json_to_record"
        st.sql(f"SELECT {select} FROM (SELECT ").value(args.body.text, "::json")
        st.sql(
            " AS json_data) pgrst_payload, LATERAL (SELECT "
            + ", ".join(ident(p.name) for p in params)
            + f" FROM {to_record}(pgrst_payload.json_data) AS _("
            + ", ".join(f"{ident(p.name)} {p.cast_type}" for p in params)
            + ") LIMIT 1) pgrst_body, LATERAL "
        )
        st.sql(
            _wrap(
                routine,
                callee
                + ", ".join(
                    f"{_variadic(p)}{ident(p.name)} := pgrst_body.{ident(p.name)}" for p in params
                )
                + ")",
            )
        )
        return
    st.sql(f"SELECT {select} FROM ")
    if routine.scalar:
        st.sql("(SELECT ")
    st.sql(callee)
    if isinstance(args, SingleArg):
        st.value(args.body, "::" + routine.params[0].type)
    elif isinstance(args, DirectArgs):
        for i, (param, value) in enumerate(args.values):
            st.sql((", " if i else "") + f"{_variadic(param)}{ident(param.name)} := ")
            st.value(list(value) if isinstance(value, tuple) else value, "::" + param.cast_type)
    st.sql(") pgrst_scalar) pgrst_call" if routine.scalar else ") pgrst_call")


def _wrap(routine: Routine, call: str) -> str:
    return f"(SELECT {call} pgrst_scalar) pgrst_call" if routine.scalar else f"{call} pgrst_call"


def _variadic(param: Param) -> str:
    return "VARIADIC " if param.variadic else ""


def _where(st: Statement, alias: str, filters: Sequence[Filter]) -> None:
    for i, f in enumerate(filters):
        st.sql(" WHERE " if i == 0 else " AND ")
        column = f"{ident(alias)}.{ident(f.column)}"
        st.sql("NOT (" if f.negate else "(")
        if f.op == "is":
            st.sql(f"{column} IS {IS_VALUES[str(f.value)]}")
        elif f.op == "in" and not f.value:
            st.sql("false")
        elif f.op == "in":
            st.sql(f"{column} IN (")
            for j, item in enumerate(f.value):
                st.sql(", " if j else "").value(item)
            st.sql(")")
        else:
            st.sql(f"{column} {SQL_OPERATORS[f.op]} ").value(f.value)
        st.sql(")")
