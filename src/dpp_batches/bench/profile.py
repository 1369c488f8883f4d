"""Where a request's server time goes: per-function calls and time (`--profile`).

Runs a request's main statement `n` times as `authenticated` (the API's own `set_config`
statement first) in one rolled-back transaction with `track_functions = all`, then reads
`pg_stat_xact_user_functions`: calls, total and self time per request for every function the
RPC reached. Needs a superuser (track_functions is a superuser setting; nothing is changed
outside this session).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from dpp_batches.bench.plans import call_counts, calls_delta


@dataclass(frozen=True)
class Line:
    function: str
    calls: float  # per request
    total_ms: float
    self_ms: float


@dataclass(frozen=True)
class Profile:
    request: str
    statement_ms: float  # mean wall time of the main statement, seen from the client
    lines: tuple[Line, ...]


def profile(
    conn: psycopg.Connection[Any],
    request: str,
    settings: str,
    statement: Callable[[int], str],
    n: int,
) -> Profile:
    """`statement(i)` is the i-th main statement (0 <= i < n), e.g. with a fresh batch number."""
    conn.execute("set track_functions = 'all'")
    elapsed = 0.0
    with conn.transaction(force_rollback=True):
        before = call_counts(conn)
        conn.execute(settings)
        for i in range(n):
            text = statement(i)
            started = time.perf_counter()
            conn.execute(text).fetchall()
            elapsed += time.perf_counter() - started
        conn.execute("reset role")
        delta = calls_delta(before, call_counts(conn))
    ranked = sorted(delta.items(), key=lambda item: -item[1][2])
    lines = tuple(Line(f, calls / n, total / n, own / n) for f, (calls, total, own) in ranked)
    return Profile(request, elapsed * 1000 / n, lines)


def render(profiles: list[Profile]) -> list[str]:
    out = [
        "",
        "Profile: server time per request, by function (track_functions; the RPCs are "
        "run as `authenticated` in one rolled-back transaction):",
        "",
    ]
    for p in profiles:
        out.append(f"- {p.request}: main statement {p.statement_ms:.3f} ms per request")
        for line in p.lines:
            out.append(
                f"  - {line.function}: {line.calls:g} calls, total {line.total_ms:.3f} ms,"
                f" self {line.self_ms:.3f} ms"
            )
    return out
