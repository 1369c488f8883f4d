"""`python -m dpp_batches.bench [--quick] [--dsn DSN]`: the benchmark (`make bench`).

Prints progress on stderr and the result table (Markdown) on stdout. Exit status 0 when it ran
(goals met or not; the table says which), 1 on an error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import psycopg

from dpp_batches.bench import driver
from dpp_batches.bench.config import FULL, QUICK
from dpp_batches.bench.errors import BenchError
from dpp_batches.bench.report import render


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dpp_batches.bench",
        description="Benchmark the Batches RPCs through the PostgREST protocol against bare "
        "SQL baselines, in a scratch database it creates and drops.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer sizes and client counts, shorter runs (under 2 minutes)",
    )
    parser.add_argument(
        "--dsn",
        help="superuser DSN of the server to use (default: $DATABASE_URL; "
        "neither: an embedded PostgreSQL)",
    )
    parser.add_argument(
        "--sql-dir",
        type=Path,
        help="migrate the scratch database from this SQL tree instead of the "
        "packaged one (to compare a change before and after)",
    )
    parser.add_argument(
        "--durable-commits",
        action="store_true",
        help="keep synchronous_commit as configured (default: off in the bench's sessions, "
        "so WAL flush waits on a shared disk do not blur the write ratios)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print where each RPC's server time goes, by function",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = replace(QUICK if args.quick else FULL, durable_commits=args.durable_commits)
    dsn = args.dsn or os.environ.get("DATABASE_URL") or None
    label = "--dsn" if args.dsn else "DATABASE_URL"
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    try:
        result = driver.run(
            config, dsn, say, sql_dir=args.sql_dir, with_profile=args.profile, label=label
        )
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()
        print(
            f"bench: database error: {first[0] if first else type(exc).__name__}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; the scratch database was dropped", file=sys.stderr)
        return 130
    print(render(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
