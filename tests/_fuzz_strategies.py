"""Hypothesis strategies for tests/test_fuzz.py: hostile JSON bodies for the RPCs in ``public``.

Every key gets, besides values of its declared type, values of every JSON type: unicode and
control characters, NUL and lone surrogates, huge and negative numbers, deep and large objects.
The uuid pools mix the fuzz world's own ids with foreign ones (another brand's products and
batches, unknown and nil ids).
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


class Fresh:
    """Stands for a batch number never used before; the test fills it in (hypothesis repeats
    values, and a repeated batch number is only ever a 409)."""

    def __repr__(self) -> str:
        return "FRESH"


FRESH = Fresh()


class Current:
    """Stands for the updated_at the named batch has right now (the test fills it in), so an
    optimistic-concurrency check can pass as well as fail."""

    def __repr__(self) -> str:
        return "CURRENT"


CURRENT = Current()
STATUSES = ("active", "on_hold", "closed", "recalled", "destroyed", "archived")
NASTY_TIMESTAMPS = (
    "2026-01-15T12:00:00Z",
    "2026-01-15T12:00:00.000001+00:00",
    "1970-01-01T00:00:00Z",
    "infinity",
    "-infinity",
    "now",
    "2026-02-30T00:00:00Z",
    "2026-01-15",
    "12:00",
    "294277-01-01T00:00:00Z",
)
CSET82 = string.ascii_letters + string.digits + "!\"%&'()*+,-./:;<=>?_"
PATCH_KEYS = ("batch_number", "production_date", "quantity", "facility_ref", "attributes")

NASTY_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",  # lone surrogate: not encodable as UTF-8
    "\udfff\ud800",
    "\t",
    "x\n",
    "\u0085x",
    "\u00a0x",
    "x\u3000",
    "\u202eevil",
    "\ufeffBOM",
    "\U0001f600",
    "e\u0301",
    "'; drop table dpp.batches; --",
    '"',
    "\\",
    "%s",
    "$1",
    "null",
    "NaN",
    "x" * 200,
    "x" * 201,
    "x" * 128,
    "x" * 129,
    "A" * 20,
    "A" * 21,
    ".",
    "..",
)
NASTY_NUMBERS = (
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**63,
    -(2**63) - 1,
    10**40,
    10**400,
    -(10**400),
    0.5,
    1.0,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    1e16,
)
NASTY_DATES = (
    "0001-01-01",
    "9999-12-31",
    "10000-01-01",
    "0000-01-01",
    "2024-02-29",
    "2026-02-29",
    "2026-13-01",
    "2026-00-10",
    "infinity",
    "-infinity",
    "epoch",
    "today",
    "2026-01-15 BC",
    "20260115",
    "2026-1-5",
    " 2026-01-15",
    "2026-01-15T10:00:00Z",
    "5874897-12-31",
    "5874898-01-01",
    "-2026-01-01",
    "January 15, 2026",
)


def _nest(depth: int, leaf: Any, as_list: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(NASTY_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(NASTY_TEXT),
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=16,
)
deep_json = st.builds(
    _nest, st.integers(1, 150), json_scalars, st.booleans()
)  # deeper nesting goes through the raw-body test (Python's json has a recursion limit)
large_json = st.one_of(
    st.integers(60_000, 70_000).map(lambda n: {"blob": "x" * n}),
    st.integers(1, 3_000).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(100_000, 300_000).map(lambda n: "y" * n),
)
every_json = st.one_of(any_json, any_json, deep_json, large_json)

json_objects = st.one_of(
    st.just({}),
    st.dictionaries(st.text(max_size=16), any_json, max_size=8),
    deep_json.map(lambda v: {"deep": v}),
    large_json.filter(lambda v: isinstance(v, dict)),
)


def _gtin(data: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(data)))
    return data + str((10 - total % 10) % 10)


valid_gtins = st.sampled_from((7, 11, 12, 13)).flatmap(
    lambda n: st.text(string.digits, min_size=n, max_size=n).map(_gtin)
)
gtins = st.one_of(
    valid_gtins,
    valid_gtins.map(lambda g: g[:-1] + str((int(g[-1]) + 1) % 10)),  # wrong check digit
    st.text(string.digits, max_size=16),
    st.sampled_from(("", " 4006381333931", "4006381333931 ", "40063813339\uff131", "abc")),
)
batch_numbers = st.one_of(
    st.text(CSET82, min_size=1, max_size=20),
    st.text(CSET82, min_size=21, max_size=30),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.sampled_from(NASTY_TEXT),
)
labels = st.one_of(
    st.text(min_size=1, max_size=30),
    st.text(string.printable, min_size=1, max_size=130),
    st.sampled_from(NASTY_TEXT),
)
roles = st.one_of(
    st.sampled_from(("owner", "admin", "editor", "viewer")),
    st.sampled_from(("OWNER", "Owner", " owner", "owner ", "superuser", "service", "member", "")),
    st.text(max_size=8),
)
dates = st.one_of(st.dates().map(lambda d: d.isoformat()), st.sampled_from(NASTY_DATES))
integers = st.one_of(
    st.integers(-(2**31) - 5, 2**31 + 5),
    st.integers(1, 1000),
    st.sampled_from(NASTY_NUMBERS),
    st.sampled_from(("5", "five", "1e3", "0x10", " 7")),
)


@dataclass(frozen=True)
class Pools:
    """Ids the fuzz world knows. ``good`` holds, per uuid parameter, the ids a well-formed call
    would send (mostly the callers' own brand); ``uuids`` all known ids, own and foreign."""

    uuids: tuple[str, ...]
    good: tuple[tuple[str, tuple[str, ...]], ...]  # parameter name -> ids
    batch_numbers: tuple[str, ...]


def hostile_uuids(pools: Pools) -> st.SearchStrategy[Any]:
    known = st.sampled_from(pools.uuids)
    return st.one_of(
        known,
        known.map(str.upper),
        known.map(lambda u: "{" + u + "}"),
        known.map(lambda u: u.replace("-", "")),
        known.map(lambda u: u[:-1]),
        st.uuids().map(str),
        st.sampled_from(
            ("00000000-0000-0000-0000-000000000000", "not-a-uuid", "", "1234", "{}", "null")
        ),
    )


good_labels = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=24,
)
good_objects = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
    max_size=4,
)
good_batch_numbers = st.text(CSET82, min_size=1, max_size=20).filter(lambda v: v not in (".", ".."))
good_dates = st.dates().map(lambda d: d.isoformat())


def good_patches(pools: Pools) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "batch_number": st.one_of(
                good_batch_numbers, st.just(FRESH), st.sampled_from(pools.batch_numbers)
            ),
            "production_date": st.one_of(st.none(), good_dates),
            "quantity": st.one_of(st.none(), st.integers(1, 10**6)),
            "facility_ref": st.one_of(st.none(), good_labels),
            "attributes": good_objects,
        },
    ).filter(bool)


def hostile_patches(pools: Pools) -> st.SearchStrategy[Any]:
    field_values: dict[str, st.SearchStrategy[Any]] = {
        "batch_number": st.one_of(batch_numbers, st.sampled_from(pools.batch_numbers)),
        "production_date": st.one_of(st.none(), dates),
        "quantity": st.one_of(st.none(), integers),
        "facility_ref": st.one_of(st.none(), labels),
        "attributes": st.one_of(json_objects, st.none()),
    }
    typed = st.fixed_dictionaries({}, optional=field_values)
    any_typed = st.fixed_dictionaries(
        {}, optional={k: st.one_of(v, every_json) for k, v in field_values.items()}
    )
    with_unknown = st.tuples(typed, st.dictionaries(st.text(max_size=12), any_json, min_size=1))
    return st.one_of(
        typed,
        any_typed,
        with_unknown.map(lambda pair: {**pair[1], **pair[0]}),
        every_json,
    )


def good_values(name: str, type_name: str, pools: Pools) -> st.SearchStrategy[Any]:
    """Values a well-formed call sends (valid, or wrong only in what the world holds)."""
    ids = dict(pools.good)
    if type_name == "uuid":
        return st.sampled_from(ids.get(name, pools.uuids))
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "_batch_number": st.one_of(
            good_batch_numbers, st.just(FRESH), st.just(FRESH), st.sampled_from(pools.batch_numbers)
        ),
        "_role": st.sampled_from(("owner", "admin", "editor", "viewer")),
        "_gtin": st.one_of(st.none(), valid_gtins),
        "_patch": good_patches(pools),
        "_facility_ref": st.one_of(st.none(), good_labels),
        "_production_date": st.one_of(st.none(), good_dates),
        "_quantity": st.one_of(st.none(), st.integers(1, 10**6)),
        "_attributes": st.one_of(st.none(), good_objects),
    }
    by_name |= {  # issue 6: lifecycle, conflict-safe updates, read path
        "_status": st.sampled_from(STATUSES),
        "_reason": st.one_of(st.none(), good_labels),
        "_limit": st.one_of(st.none(), st.integers(1, 500)),
        "_after": st.none(),
        "_expected_updated_at": st.one_of(
            st.none(),
            st.just(CURRENT),
            st.just(CURRENT),
            st.sampled_from(("infinity", "-infinity", "2000-01-01T00:00:00Z")),
        ),
    }
    by_type: dict[str, st.SearchStrategy[Any]] = {
        "text": good_labels,
        "date": good_dates,
        "integer": st.integers(1, 10**6),
        "jsonb": good_objects,
        "timestamp with time zone": st.one_of(st.none(), st.sampled_from(NASTY_TIMESTAMPS[:3])),
    }
    if name in by_name:
        return by_name[name]
    return by_type.get(type_name, any_json)


def hostile_values(name: str, type_name: str, pools: Pools) -> st.SearchStrategy[Any]:
    """Values of the parameter's own type at and past every rule, or of any JSON type."""
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "_batch_number": st.one_of(batch_numbers, st.sampled_from(pools.batch_numbers)),
        "_role": roles,
        "_gtin": gtins,
        "_name": labels,
        "_facility_ref": labels,
        "_patch": hostile_patches(pools),
        "_attributes": json_objects,
    }
    by_name |= {
        "_status": st.one_of(st.sampled_from(STATUSES), roles),
        "_reason": labels,
        "_limit": integers,
        "_after": st.one_of(st.text(max_size=40), st.sampled_from(NASTY_TEXT)),
    }
    by_type: dict[str, st.SearchStrategy[Any]] = {
        "timestamp with time zone": st.sampled_from(NASTY_TIMESTAMPS),
        "uuid": hostile_uuids(pools),
        "text": labels,
        "date": dates,
        "integer": integers,
        "jsonb": json_objects,
    }
    typed = by_name[name] if name in by_name else by_type.get(type_name, every_json)
    return st.one_of(typed, typed, every_json)


Param = tuple[str, str, bool]  # name, type, has a default


def bodies(params: Sequence[Param], pools: Pools) -> st.SearchStrategy[dict[str, Any]]:
    """JSON object bodies: a well-formed call with 0, 1, 2 or all values made hostile; a few
    with a parameter left out (optional ones more often) or an extra, unknown key."""
    good = [good_values(n, t, pools) for n, t, _ in params]
    bad = [hostile_values(n, t, pools) for n, t, _ in params]
    mutations = st.sampled_from((0, 0, 0, 0, 1, 1, 2, len(params)))

    @st.composite
    def body(draw: st.DrawFn) -> dict[str, Any]:
        hostile = set(draw(st.permutations(range(len(params))))[: draw(mutations)])
        out: dict[str, Any] = {}
        for i, (name, _, has_default) in enumerate(params):
            # (a middle value: hypothesis favours the ends of a range)
            if draw(st.integers(0, 6 if has_default else 40)) == 3:
                continue  # left out
            out[name] = draw(bad[i] if i in hostile else good[i])
        if draw(st.integers(0, 20)) == 10:
            out[draw(st.text(max_size=12))] = draw(any_json)
        return out

    return body()


def _deep_text(depth: int, opener: str, closer: str) -> str:
    return opener * depth + "1" + closer * depth


def raw_bodies(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[str]:
    """Request bodies as raw text: not JSON, JSON scalars and arrays, extreme nesting."""
    dumped = valid.map(lambda b: json.dumps(b, default=str))
    return st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            (
                "",
                " ",
                "{",
                "}",
                "[",
                "null",
                "1",
                '"x"',
                "true",
                "[]",
                "[1]",
                "[{}]",
                "{}",
                "NaN",
                "Infinity",
                '{"_name": NaN}',
                '{"_quantity": Infinity}',
                '{"_name": "\\u0000"}',
                '{"_name": "\\ud800"}',
                '{"_name": "a", "_name": "b"}',
                "\ufeff{}",
                "{} x",
                "{'_name': 'single quotes'}",
                '{"_brand_id": }',
                "\x00",
                "{\x00}",
            )
        ),
        st.sampled_from((10, 900, 5_000, 100_000)).flatmap(
            lambda d: st.sampled_from((_deep_text(d, "[", "]"), _deep_text(d, '{"a":', "}")))
        ),
        st.sampled_from((10, 500, 5_000, 100_000)).map(
            lambda d: '{"_attributes": ' + _deep_text(d, '{"a":', "}") + "}"
        ),
        dumped,
        dumped.map(lambda t: "[" + t + "]"),
        dumped.map(lambda t: "[" + t + ", " + t + "]"),
        st.tuples(dumped, dumped).map(lambda p: "[" + p[0] + ", " + p[1] + "]"),
        dumped.map(lambda t: "  \n" + t + "\n  "),
        dumped.map(lambda t: t[: len(t) // 2]),  # truncated
    )
