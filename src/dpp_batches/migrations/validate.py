"""Compare the SQL tree with the history, before anything runs.

Pure function of (files, history snapshot): it decides what is applied, pending, drifted,
missing, newer, out of order or unfinished, and collects every problem as an error object.
``migrate`` and ``plan`` refuse on the first problem; ``status`` shows them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC

from .errors import (
    DatabaseNewerError,
    DriftError,
    HistoryFormatError,
    MigrationError,
    MissingFileError,
    NeedsBaselineError,
    OutOfOrderError,
    UnfinishedMigrationError,
)
from .files import SqlFile, Tree, guard
from .history import FORMAT, TABLE, Row, State


@dataclass(frozen=True)
class Entry:
    """One line of ``status``."""

    state: str  # applied pending drifted missing newer running failed out-of-order
    #             baseline baselined orphaned
    kind: str  # versioned | repeatable | baseline
    version: str | None
    name: str
    script: str
    detail: str = ""
    row: Row | None = None


@dataclass
class Analysis:
    entries: list[Entry] = field(default_factory=list)
    problems: list[MigrationError] = field(default_factory=list)
    pending: list[SqlFile] = field(default_factory=list)  # versioned, in version order
    repeatables: list[SqlFile] = field(default_factory=list)  # to (re-)apply, in name order

    @property
    def to_apply(self) -> list[SqlFile]:
        return [*self.pending, *self.repeatables]


def _short(digest: str | None) -> str:
    return (digest or "none").rsplit(":", 1)[-1][:12]


def unfinished_error(row: Row) -> MigrationError:
    since = row.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    why = (
        f"failed: {row.error}"
        if row.status == "failed"
        else (f"has been 'running' since {since} (a runner died during it, or is still running it)")
    )
    return UnfinishedMigrationError(
        f"{row.script}: non-transactional migration {row.version} {why}; check the database "
        "(`dpp-batches status` lists INVALID indexes), then run "
        f"`dpp-batches repair {row.version} --retry` or `--mark-applied`"
    )


def _versioned(tree: Tree, state: State, out: Analysis) -> None:
    files = tree.by_version()
    # Rows are ordered by id, so the newest row per version wins.
    live = {r.version: r for r in state.versioned_rows if r.version is not None}
    applied = [v for v, r in live.items() if r.status == "applied"]
    newest_applied = max(applied, default=None)
    baseline = max((v for v, r in live.items() if r.kind == "baseline"), default=None)
    newest_file = tree.newest_version
    if not live and state.owned_schemas:
        out.problems.append(
            NeedsBaselineError(
                f"schema {', '.join(state.owned_schemas)} already exists but {TABLE} records no "
                "migration (installed by hand?); run `dpp-batches baseline --version <V>` with the "
                "version it matches, then `dpp-batches migrate`"
            )
        )
    for version in sorted(files.keys() | live.keys()):
        file, row = files.get(version), live.get(version)
        if row is not None and row.kind == "baseline":
            out.entries.append(
                Entry(
                    "baseline",
                    "baseline",
                    version,
                    row.name,
                    row.script,
                    "files up to here were installed before the runner",
                    row,
                )
            )
        elif row is not None and row.status in ("running", "failed"):
            out.entries.append(
                Entry(row.status, "versioned", version, row.name, row.script, row.error or "", row)
            )
            out.problems.append(unfinished_error(row))
        elif row is not None and file is None:
            if newest_file is None or version > newest_file:
                out.entries.append(
                    Entry(
                        "newer",
                        "versioned",
                        version,
                        row.name,
                        row.script,
                        f"applied by dpp-batches {row.package_version}",
                        row,
                    )
                )
                out.problems.append(
                    DatabaseNewerError(
                        f"the database has version {version} ({row.script}, applied by dpp-batches "
                        f"{row.package_version}) but this package's newest is "
                        f"{newest_file or 'none'}; refusing to run an older package against a newer "
                        "database"
                    )
                )
            else:
                out.entries.append(
                    Entry(
                        "missing",
                        "versioned",
                        version,
                        row.name,
                        row.script,
                        "applied, but the file is gone",
                        row,
                    )
                )
                out.problems.append(
                    MissingFileError(
                        f"{row.script}: version {version} is applied but its file is missing from "
                        f"{tree.root}; restore it (applied files must never be removed)"
                    )
                )
        elif row is not None and file is not None:
            if row.checksum == file.checksum:
                out.entries.append(
                    Entry("applied", "versioned", version, file.name, file.script, "", row)
                )
            else:
                out.entries.append(
                    Entry(
                        "drifted",
                        "versioned",
                        version,
                        file.name,
                        file.script,
                        f"edited after it was applied ({_short(row.checksum)} "
                        f"applied, {_short(file.checksum)} on disk)",
                        row,
                    )
                )
                out.problems.append(
                    DriftError(
                        f"{file.script}: edited after it was applied "
                        f"(checksum {_short(row.checksum)} in the database, {_short(file.checksum)} "
                        "on disk); restore the applied "
                        "text and put the change in a new migration"
                    )
                )
        elif file is not None:
            if baseline is not None and version <= baseline:
                out.entries.append(
                    Entry(
                        "baselined",
                        "versioned",
                        version,
                        file.name,
                        file.script,
                        f"covered by baseline {baseline}",
                    )
                )
            elif newest_applied is not None and version < newest_applied:
                out.entries.append(
                    Entry(
                        "out-of-order",
                        "versioned",
                        version,
                        file.name,
                        file.script,
                        f"older than applied {newest_applied}",
                    )
                )
                out.problems.append(
                    OutOfOrderError(
                        f"{file.script}: pending version {version} is older than the newest "
                        f"applied version {newest_applied}; out-of-order migrations are refused, give it a "
                        f"version newer than {newest_applied}"
                    )
                )
            else:
                out.entries.append(Entry("pending", "versioned", version, file.name, file.script))
                out.pending.append(file)


def _repeatable(tree: Tree, state: State, out: Analysis) -> None:
    latest: dict[str, Row] = {}
    for row in state.rows:
        if row.kind == "repeatable" and row.status == "applied":
            latest[row.name] = row
    shipped = {f.name for f in tree.repeatable}
    for file in tree.repeatable:
        current = latest.get(file.name)
        if current is not None and current.checksum == file.checksum:
            out.entries.append(
                Entry("applied", "repeatable", None, file.name, file.script, "", current)
            )
        else:
            detail = "new" if current is None else "changed since last applied"
            out.entries.append(
                Entry("pending", "repeatable", None, file.name, file.script, detail, current)
            )
            out.repeatables.append(file)
    for name, row in sorted(latest.items()):
        if name not in shipped:
            out.entries.append(
                Entry(
                    "orphaned",
                    "repeatable",
                    None,
                    name,
                    row.script,
                    "no longer shipped; what it created is still there",
                    row,
                )
            )


def analyse(tree: Tree, state: State) -> Analysis:
    out = Analysis(problems=list(tree.problems))
    if state.table_exists and state.format != FORMAT:
        out.problems.append(
            HistoryFormatError(
                f"{TABLE} has format {state.format!r}, this runner knows {FORMAT!r}; "
                "upgrade dpp-batches"
            )
        )
        return out
    _versioned(tree, state, out)
    _repeatable(tree, state, out)
    for file in out.to_apply:
        problem = guard(file, state.server_version)
        if problem is not None:
            out.problems.append(problem)
    return out


def first_problem(problems: list[MigrationError]) -> MigrationError:
    """The first problem, mentioning how many more there are."""
    first = problems[0]
    if len(problems) == 1:
        return first
    more = len(problems) - 1
    return type(first)(
        f"{first} (and {more} more problem{'s' if more > 1 else ''}; "
        "run `dpp-batches status` to see them all)"
    )
