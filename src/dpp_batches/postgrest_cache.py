"""PostgREST's schema cache for functions, and its overload resolution.

Reads `pg_proc` for one exposed schema the way PostgREST v13 `SchemaCache.hs` does
(`reference/postgrest-supabase.md` §7) and picks the function a request calls
(`Plan.hs` `findProc`, §1.5). Resolution is pure: it never touches the database.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dpp_batches.postgrest_errors import ApiError

# Settings PostgREST hoists from a function's proconfig into the request (db-hoisted-tx-settings).
HOISTED_SETTINGS = (
    "statement_timeout",
    "plan_filter.statement_cost_limit",
    "default_transaction_isolation",
)
# Types json_to_record would truncate or pad; PostgREST widens them (§1.5).
_WIDENED = {
    "bpchar": "character varying",
    "bit": "bit varying",
    "_bpchar": "character varying[]",
    "_bit": "bit varying[]",
}
_SINGLE_UNNAMED_TYPES = frozenset({"bytea", "json", "jsonb", "text", "xml"})
_ISOLATION = {
    "read committed": "READ COMMITTED",
    "repeatable read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
    "read uncommitted": "READ COMMITTED",
}

# One row per function. Types are rendered with search_path = pg_catalog, so every type outside
# pg_catalog comes out schema-qualified and resolves whatever the request's search_path is.
_FUNCTIONS_SQL = """
select p.proname::text,
       p.provolatile::text,
       p.proretset,
       p.pronargs::int,
       p.pronargdefaults::int,
       coalesce(p.proconfig, '{}'),
       rt.typtype::text,
       rt.typname::text,
       coalesce((select json_agg(json_build_array(coalesce(a.name, ''), coalesce(a.mode, 'i'),
                                                  a.typ::regtype::text, t.typname::text)
                                 order by a.ord)
                 from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                             coalesce(p.proargnames, '{}'),
                             coalesce(p.proargmodes, '{}'))
                      with ordinality as a(typ, name, mode, ord)
                 join pg_catalog.pg_type t on t.oid = a.typ), '[]')
from pg_catalog.pg_proc p,
     lateral (with recursive d(typtype, typbasetype, typname) as (
                  select t.typtype, t.typbasetype, t.typname
                  from pg_catalog.pg_type t where t.oid = p.prorettype
                  union all
                  select b.typtype, b.typbasetype, b.typname
                  from d join pg_catalog.pg_type b on b.oid = d.typbasetype
                  where d.typtype = 'd')
              select d.typtype, d.typname from d where d.typtype <> 'd') rt
where p.pronamespace = (select n.oid from pg_catalog.pg_namespace n where n.nspname = %s)
  and p.prokind = 'f'
  and p.prorettype <> 'pg_catalog.trigger'::regtype
  and p.prorettype <> 'pg_catalog.event_trigger'::regtype
order by p.proname, p.oid
"""


class ReturnKind(enum.Enum):
    SCALAR = "scalar"
    COMPOSITE = "composite"
    VOID = "void"


@dataclass(frozen=True)
class Param:
    name: str  # '' for the one unnamed parameter a callable function may have
    type: str  # regtype text
    cast_type: str  # type used for json_to_record and GET casts (char/bit widened)
    required: bool
    variadic: bool


@dataclass(frozen=True)
class Routine:
    schema: str
    name: str
    params: tuple[Param, ...]
    returns_set: bool
    kind: ReturnKind
    alias: str  # name PostgREST gives the result rows: table type, 'record', or the function
    volatility: str  # 'v', 's' or 'i'
    isolation: str | None  # from proconfig default_transaction_isolation
    hoisted: tuple[tuple[str, str], ...]  # proconfig settings PostgREST copies into the request

    @property
    def single_unnamed(self) -> bool:
        return len(self.params) == 1 and self.params[0].name == ""

    @property
    def required(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.required)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params)

    @property
    def scalar(self) -> bool:
        return self.kind is not ReturnKind.COMPOSITE

    def signature(self) -> str:
        args = ", ".join(f"{p.name} => {p.type}" for p in self.params)
        return f"{self.schema}.{self.name}({args})"


def load_routines(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[Routine]]:
    """Read the exposed schema's callable functions, grouped by name."""
    routines: dict[str, list[Routine]] = {}
    with conn.transaction(), conn.cursor() as cur:
        # JIT would spend ~150 ms compiling this small catalog read (its estimate is high).
        cur.execute(
            "select set_config('search_path', 'pg_catalog', true), set_config('jit', 'off', true)"
        )
        cur.execute(_FUNCTIONS_SQL, [schema])
        for row in cur.fetchall():
            routine = _routine(schema, row)
            if routine is not None:
                routines.setdefault(routine.name, []).append(routine)
    return routines


def _routine(schema: str, row: tuple[Any, ...]) -> Routine | None:
    name, volatility, retset, nargs, ndefaults, config, typtype, typname, args = row
    inputs = [a for a in args if a[1] in ("i", "b", "v")]
    params = tuple(
        Param(
            name=a[0],
            type=a[2],
            cast_type=_WIDENED.get(a[3], a[2]),
            required=i < nargs - ndefaults,
            variadic=a[1] == "v",
        )
        for i, a in enumerate(inputs)
    )
    if any(p.name == "" for p in params) and not (
        len(params) == 1 and params[0].type in _SINGLE_UNNAMED_TYPES
    ):
        return None  # PostgREST cannot call it (several or non-body unnamed params)
    has_out = any(a[1] in ("o", "b", "t") for a in args)
    if typtype == "c" or has_out:
        kind, alias = ReturnKind.COMPOSITE, ("record" if has_out else typname)
    elif typname == "void":
        kind, alias = ReturnKind.VOID, name
    else:
        kind, alias = ReturnKind.SCALAR, name
    settings = dict(item.split("=", 1) for item in config if "=" in item)
    isolation = settings.get("default_transaction_isolation")
    return Routine(
        schema=schema,
        name=name,
        params=params,
        returns_set=retset,
        kind=kind,
        alias=alias,
        volatility=volatility,
        isolation=_ISOLATION.get(isolation.strip().lower()) if isolation else None,
        hoisted=tuple((k, settings[k]) for k in HOISTED_SETTINGS if k in settings),
    )


def resolve(
    schema: str,
    fn: str,
    candidates: Sequence[Routine],
    keys: Iterable[str],
    *,
    json_body: bool,
    all_names: Iterable[str],
) -> Routine:
    """Pick the overload a request calls: required <= keys <= required | optional.

    With no named match, a POST JSON body falls back to the one overload taking a single
    unnamed json/jsonb parameter. Raises ApiError PGRST202 (404) or PGRST203 (300).
    """
    key_set = frozenset(keys)
    named = [r for r in candidates if not r.single_unnamed]
    matches = [r for r in named if r.required <= key_set <= r.names]
    if not matches and json_body:
        matches = [
            r for r in candidates if r.single_unnamed and r.params[0].type in ("json", "jsonb")
        ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ApiError(
            300,
            "PGRST203",
            "Could not choose the best candidate function between: "
            + ", ".join(r.signature() for r in matches),
            None,
            "Try renaming the parameters or the function itself in the database "
            "so function overloading can be resolved",
        )
    raise _not_found(schema, fn, named, sorted(key_set), json_body, all_names)


def _not_found(
    schema: str,
    fn: str,
    overloads: Sequence[Routine],
    keys: list[str],
    json_body: bool,
    all_names: Iterable[str],
) -> ApiError:
    qualified = f"{schema}.{fn}"
    if keys:
        plural = "s" if len(keys) > 1 else ""
        shown = f"({', '.join(keys)})"
        searched = f" with parameter{plural} {', '.join(keys)}"
    else:
        shown = searched = " without parameters"
    if json_body:
        searched += " or with a single unnamed json/jsonb parameter"
    return ApiError(
        404,
        "PGRST202",
        f"Could not find the function {qualified}{shown} in the schema cache",
        f"Searched for the function {qualified}{searched}, but no matches were found in the "
        "schema cache.",
        _suggestion(schema, fn, overloads, keys, all_names),
    )


def _suggestion(
    schema: str, fn: str, overloads: Sequence[Routine], keys: list[str], all_names: Iterable[str]
) -> str | None:
    if overloads:
        wanted = set(keys)
        best = min(overloads, key=lambda r: len(wanted ^ r.names))
        params = ", ".join(p.name for p in best.params)
        return f"Perhaps you meant to call the function {schema}.{fn}({params})"
    close = difflib.get_close_matches(fn, list(all_names), n=1)
    return f"Perhaps you meant to call the function {schema}.{close[0]}" if close else None
