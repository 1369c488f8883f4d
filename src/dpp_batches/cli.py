"""`dpp-batches`: the command line.

Subcommands are ``(name, add_arguments, run)`` triples; ``run(args) -> int`` returns the exit
code. This module registers the migration commands (migrate, status, plan, baseline, repair)
and those of :mod:`dpp_batches.cli_tools` (token, call); more modules can add triples to
``COMMANDS``. Errors are one line on stderr: ``dpp-batches <command>: error: <what>``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from dpp_batches import __version__, cli_tools, demo, deploy, export
from dpp_batches import migrate as runner
from dpp_batches.migrate import ConfigError, MigrationError

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
Command = tuple[str, AddArguments, Run]

_SECONDS = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)?")


def _seconds(text: str) -> float:
    """'3', '2.5', '3s' or '500ms' → seconds."""
    match = _SECONDS.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 3, 2.5s or 500ms")
    value = float(match["n"])
    return value / 1000 if match["unit"] == "ms" else value


def _dsn(args: argparse.Namespace) -> str:
    dsn: str | None = args.dsn or os.environ.get("DATABASE_URL")
    if not dsn:
        raise ConfigError("no database: pass --dsn or set DATABASE_URL")
    return dsn


def _add_database(parser: argparse.ArgumentParser, *, locking: bool) -> None:
    parser.add_argument("--dsn", help="PostgreSQL connection string (default: env DATABASE_URL)")
    parser.add_argument(
        "--sql-dir",
        type=Path,
        default=None,
        help="SQL tree with migrations/ and repeatable/ "
        "(default: the one shipped with the package)",
    )
    if locking:
        parser.add_argument(
            "--lock-wait",
            type=_seconds,
            default=60.0,
            metavar="SECONDS",
            help="how long to wait for another runner's lock (default: 60)",
        )
        parser.add_argument(
            "--lock-timeout",
            default="5s",
            metavar="DURATION",
            help="SET LOCAL lock_timeout for each file (default: 5s)",
        )


def _print(line: str) -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------- migrate


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_database(parser, locking=True)
    parser.add_argument(
        "--statement-timeout",
        default="0",
        metavar="DURATION",
        help="SET LOCAL statement_timeout for each file (default: 0, none)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="re-runs of a file after lock_timeout or deadlock (default: 5)",
    )
    parser.add_argument(
        "--no-notify",
        action="store_true",
        help="do not send NOTIFY pgrst, 'reload schema' after changes",
    )


def run_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations, then new or changed repeatable files."""
    result = runner.migrate(
        _dsn(args),
        sql_dir=args.sql_dir,
        lock_wait=args.lock_wait,
        lock_timeout=args.lock_timeout,
        statement_timeout=args.statement_timeout,
        retries=args.retries,
        notify=not args.no_notify,
        log=_print,
    )
    _print(f"migrate: {result.summary()}")
    return 0


# --------------------------------------------------------------------------- status, plan


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    _add_database(parser, locking=False)


def run_status(args: argparse.Namespace) -> int:
    """List applied, pending, drifted, missing and unfinished migrations (exit 0/1/2)."""
    report = runner.status(_dsn(args), sql_dir=args.sql_dir)
    _print(report.render())
    return report.exit_code


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    _add_database(parser, locking=False)
    parser.add_argument("--no-sql", action="store_true", help="list the files only")


def run_plan(args: argparse.Namespace) -> int:
    """Validate and show what migrate would run, with its SQL; writes nothing."""
    items = runner.plan(_dsn(args), sql_dir=args.sql_dir)
    for item in items:
        mode = "" if item.transactional else ", no transaction"
        _print(f"-- {item.script} ({item.reason}{mode})")
        if not args.no_sql:
            _print(item.sql.rstrip("\n") + "\n")
    _print(f"plan: {len(items)} file(s) to apply" if items else "plan: nothing to apply")
    return 0


# --------------------------------------------------------------------------- baseline, repair


def add_baseline_arguments(parser: argparse.ArgumentParser) -> None:
    _add_database(parser, locking=True)
    parser.add_argument(
        "--version",
        required=True,
        metavar="YYYYMMDDHHMMSS",
        help="the shipped version the database already matches",
    )


def run_baseline(args: argparse.Namespace) -> int:
    """Record a hand-installed database as being at --version (empty history only)."""
    runner.baseline(
        _dsn(args),
        args.version,
        sql_dir=args.sql_dir,
        lock_wait=args.lock_wait,
        lock_timeout=args.lock_timeout,
        log=_print,
    )
    return 0


def add_repair_arguments(parser: argparse.ArgumentParser) -> None:
    _add_database(parser, locking=True)
    parser.add_argument("version", metavar="VERSION", help="the running or failed version")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--retry",
        dest="action",
        action="store_const",
        const="retry",
        help="forget the attempt; the next migrate runs the file again",
    )
    action.add_argument(
        "--mark-applied",
        dest="action",
        action="store_const",
        const="mark_applied",
        help="record it as applied (finished by hand)",
    )


def run_repair(args: argparse.Namespace) -> int:
    """Settle a non-transactional migration left running or failed."""
    runner.repair(
        _dsn(args),
        args.version,
        args.action,
        sql_dir=args.sql_dir,
        lock_wait=args.lock_wait,
        lock_timeout=args.lock_timeout,
        log=_print,
    )
    return 0


# --------------------------------------------------------------------------- registry, main


COMMANDS: list[Command] = [
    ("migrate", add_migrate_arguments, run_migrate),
    ("status", add_status_arguments, run_status),
    ("plan", add_plan_arguments, run_plan),
    ("baseline", add_baseline_arguments, run_baseline),
    ("repair", add_repair_arguments, run_repair),
    *deploy.COMMANDS,
    *demo.COMMANDS,
    *cli_tools.COMMANDS,
    *export.COMMANDS,
]


def _summary(add_arguments: AddArguments, run: Run) -> str | None:
    """One line for the command list: run's docstring, else the parser description."""
    text = (run.__doc__ or "").strip()
    if not text:
        probe = argparse.ArgumentParser(add_help=False)
        add_arguments(probe)
        text = (probe.description or "").strip()
    first_paragraph = " ".join(text.split("\n\n")[0].split())
    return first_paragraph.split(". ")[0] or None


def build_parser(commands: list[Command] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpp-batches",
        description="Production batches for Digital Product Passports: migrations and tools.",
    )
    parser.add_argument("--version", action="version", version=f"dpp-batches {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add_arguments, run in commands if commands is not None else COMMANDS:
        summary = _summary(add_arguments, run)
        child = sub.add_parser(name, help=summary, description=summary)
        add_arguments(child)  # may replace the description with a longer one
        child.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "run", None) is None:
        parser.print_usage(sys.stderr)
        print("dpp-batches: error: a command is required", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except MigrationError as exc:
        print(f"dpp-batches {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"dpp-batches {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
