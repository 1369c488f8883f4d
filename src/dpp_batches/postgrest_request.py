"""Parse what a PostgREST request carries: the JSON body, the query string and Prefer.

Follows PostgREST v13 `ApiRequest.hs` / `ApiRequest/QueryParams.hs` for the subset this client
supports (`reference/postgrest-supabase.md` §1.5 and §2). Pure; raises ApiError on bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dpp_batches.postgrest_errors import ApiError

# Query parameters PostgREST never treats as RPC arguments or filters.
RESERVED = frozenset({"select", "columns", "on_conflict", "order", "limit", "offset", "and", "or"})
# Every operator PostgREST knows; a value shaped `[not.]op.x` is a filter, anything else an arg.
_ALL_OPS = (
    "eq|neq|gte|gt|lte|lt|like|ilike|match|imatch|in|isdistinct|is|fts|plfts|phfts|wfts"
    "|cs|cd|ov|sl|sr|nxr|nxl|adj"
)
_FILTER = re.compile(rf"(not\.)?({_ALL_OPS})(\([^)]*\))?\.(.*)", re.DOTALL)
SQL_OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
    "isdistinct": "IS DISTINCT FROM",
}
IS_VALUES = {
    "null": "NULL",
    "not_null": "NOT NULL",
    "true": "TRUE",
    "false": "FALSE",
    "unknown": "UNKNOWN",
}


@dataclass(frozen=True)
class Body:
    text: str  # JSON text bound as $1::json
    keys: frozenset[str]
    is_array: bool


@dataclass(frozen=True)
class Filter:
    column: str
    op: str  # a key of SQL_OPERATORS, or 'is' / 'in'
    negate: bool
    value: str | tuple[str, ...]


@dataclass(frozen=True)
class Order:
    column: str
    desc: bool
    nulls: str | None  # 'FIRST' | 'LAST'


@dataclass(frozen=True)
class ReadPlan:
    select: tuple[tuple[str, str | None], ...] | None  # (column, alias); None means '*'
    filters: tuple[Filter, ...] = ()
    order: tuple[Order, ...] = ()
    limit: int | None = None
    offset: int = 0


def parse_body(raw: str | None) -> Body:
    """Keys of a POST /rpc body: object keys, or the first element's keys of an object array.

    Empty body counts as `{}`; a scalar counts as no keys; invalid JSON or an array whose elements
    are not objects with identical keys is PGRST102 (400).
    """
    if raw is None or raw == "":
        return Body("{}", frozenset(), False)
    try:
        raw.encode("utf-8")
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeError):
        raise ApiError(400, "PGRST102", "Empty or invalid json") from None
    if isinstance(value, dict):
        return Body(raw, frozenset(value), False)
    if isinstance(value, list):
        if not value:
            return Body(raw, frozenset(), True)
        first = value[0]
        if isinstance(first, dict) and all(
            isinstance(v, dict) and v.keys() == first.keys() for v in value
        ):
            return Body(raw, frozenset(first), True)
        raise ApiError(400, "PGRST102", "All object keys must match")
    return Body(raw, frozenset(), False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_query(
    items: Iterable[tuple[str, str]], *, collect_args: bool
) -> tuple[list[tuple[str, str]], ReadPlan]:
    """Split query parameters into RPC arguments (GET only) and the read plan."""
    args: list[tuple[str, str]] = []
    filters: list[Filter] = []
    select: tuple[tuple[str, str | None], ...] | None = None
    order: tuple[Order, ...] = ()
    limit: int | None = None
    offset = 0
    for key, value in items:
        if key == "select":
            select = _parse_select(value)
        elif key == "order":
            order = _parse_order(value)
        elif key == "limit":
            limit = _parse_count("limit", value)
        elif key == "offset":
            offset = _parse_count("offset", value)
        elif key in ("and", "or"):
            raise _unsupported(key, "logical operators are not supported by this client")
        elif key in RESERVED:
            continue
        elif (match := _FILTER.fullmatch(value)) is not None:
            filters.append(_parse_filter(key, value, match))
        elif collect_args:
            args.append((key, value))
    return args, ReadPlan(select, tuple(filters), order, limit, offset)


def _parse_filter(column: str, raw: str, match: re.Match[str]) -> Filter:
    negate, op, modifier, value = bool(match[1]), match[2], match[3], match[4]
    if modifier is not None or (op not in SQL_OPERATORS and op not in ("is", "in")):
        raise _unsupported(raw, f"operator {op}{modifier or ''} is not supported by this client")
    if op == "is":
        if value.lower() not in IS_VALUES:
            raise ApiError(
                400,
                "PGRST100",
                f'"failed to parse filter ({raw})"',
                "expecting null, not_null, true, false or unknown",
            )
        return Filter(column, op, negate, value.lower())
    if op == "in":
        return Filter(column, op, negate, _parse_list(raw, value))
    if op in ("like", "ilike"):
        value = value.replace("*", "%")
    return Filter(column, op, negate, value)


def _parse_list(raw: str, text: str) -> tuple[str, ...]:
    if len(text) < 2 or text[0] != "(" or text[-1] != ")":
        raise ApiError(
            400,
            "PGRST100",
            f'"failed to parse filter ({raw})"',
            'expecting a list of values in parentheses, e.g. in.(1,2,"a,b")',
        )
    inner = text[1:-1]
    if inner == "":
        return ()
    values: list[str] = []
    current: list[str] = []
    i, quoted = 0, False
    while i < len(inner):
        ch = inner[i]
        if quoted:
            if ch == "\\" and i + 1 < len(inner):
                i += 1
                current.append(inner[i])
            elif ch == '"':
                quoted = False
            else:
                current.append(ch)
        elif ch == '"':
            quoted = True
        elif ch == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    values.append("".join(current))
    return tuple(values)


def _parse_select(value: str) -> tuple[tuple[str, str | None], ...] | None:
    columns: list[tuple[str, str | None]] = []
    for item in value.split(","):
        item = item.strip()
        if item == "*":
            if len(value.split(",")) == 1:
                return None
            raise _unsupported(value, "'*' cannot be combined with columns in this client")
        if not item or any(token in item for token in ("(", ")", "::", "->", "!")):
            raise _unsupported(value, "only plain columns and alias:column are supported")
        alias, sep, column = item.partition(":")
        columns.append((column, alias) if sep else (item, None))
    return tuple(columns)


def _parse_order(value: str) -> tuple[Order, ...]:
    orders: list[Order] = []
    for item in value.split(","):
        column, *mods = item.split(".")
        desc, nulls = False, None
        if mods and mods[-1] in ("nullsfirst", "nullslast"):
            nulls = "FIRST" if mods.pop() == "nullsfirst" else "LAST"
        if mods and mods[-1] in ("asc", "desc"):
            desc = mods.pop() == "desc"
        if mods or not column:
            raise ApiError(
                400,
                "PGRST100",
                f'"failed to parse order ({value})"',
                "expecting column[.asc|.desc][.nullsfirst|.nullslast]",
            )
        orders.append(Order(column, desc, nulls))
    return tuple(orders)


def _parse_count(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise ApiError(
            400,
            "PGRST100",
            f'"failed to parse {name} parameter ({value})"',
            "expecting a non-negative integer",
        )
    return int(value)


def _unsupported(raw: str, why: str) -> ApiError:
    return ApiError(400, "PGRST100", f'"failed to parse ({raw})"', why)


def prefer_tokens(values: Iterable[str]) -> list[str]:
    """Prefer header values split into their comma-separated tokens."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]
