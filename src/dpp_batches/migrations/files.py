"""The SQL tree: which files exist, what they are called, what they contain.

Layout (relative to the SQL directory)::

    migrations/YYYYMMDDHHMMSS_<slug>.sql  versioned: version = the 14 digits; applied once, in order
    repeatable/<name>.sql                 repeatable: key = file name; re-applied when it changes

A versioned file may start with the header line ``-- migrate:no-transaction``; it must then
hold exactly one statement, which runs in autocommit. Discovery never raises for a bad file:
it returns the problems, so ``status`` can list them and ``migrate`` can refuse on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import BadFileError, ConfigError, ForbiddenStatementError, MigrationError
from .sqltext import (
    Statement,
    checksum,
    forbidden_anywhere,
    needs_autocommit,
    normalise,
    split_statements,
)

VERSIONED_DIR = "migrations"
REPEATABLE_DIR = "repeatable"
VERSION_RE = re.compile(r"\d{14}")
_VERSIONED_NAME = re.compile(r"(?P<version>\d{14})_(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*)\.sql")
_REPEATABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.sql")
_DIRECTIVE = re.compile(r"--\s*migrate:(?P<name>\S*)\s*$")
NO_TRANSACTION = "no-transaction"

Kind = Literal["versioned", "repeatable"]


@dataclass(frozen=True)
class SqlFile:
    kind: Kind
    version: str | None  # the 14 digits; None for repeatables
    name: str  # slug of a versioned file; file name (the key) of a repeatable
    script: str  # path inside the SQL tree, e.g. "migrations/20250101000000_init.sql"
    sql: str  # normalised text, as executed
    checksum: str
    transactional: bool
    statements: tuple[Statement, ...] = field(repr=False)

    @property
    def label(self) -> str:
        return self.script


@dataclass
class Tree:
    root: Path
    versioned: list[SqlFile]
    repeatable: list[SqlFile]
    problems: list[MigrationError]

    def by_version(self) -> dict[str, SqlFile]:
        return {f.version: f for f in self.versioned if f.version is not None}

    @property
    def newest_version(self) -> str | None:
        return self.versioned[-1].version if self.versioned else None


def _entries(directory: Path, problems: list[MigrationError]) -> Iterable[Path]:
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            problems.append(
                BadFileError(
                    f"{directory.name}/{path.name}: unexpected directory; "
                    f"SQL files go directly in {directory.name}/"
                )
            )
        elif path.suffix == ".sql":
            found.append(path)
    return found


def _read(path: Path, script: str) -> tuple[str, str]:
    raw = path.read_bytes()
    try:
        text = normalise(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFileError(f"{script}: not valid UTF-8 (byte {exc.start})") from None
    return text, checksum(raw)


def _directives(text: str, script: str) -> set[str]:
    """``-- migrate:…`` lines of the leading comment block; elsewhere they are an error."""
    found: set[str] = set()
    in_header = True
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        match = _DIRECTIVE.match(stripped)
        if in_header and not stripped.startswith("--") and stripped:
            in_header = False
        if match is None:
            continue
        if not in_header:
            raise BadFileError(
                f"{script}: line {number}: '-- migrate:' directives belong in the header, "
                "before the first statement"
            )
        if match["name"] != NO_TRANSACTION:
            raise BadFileError(
                f"{script}: line {number}: unknown directive '-- migrate:{match['name']}' "
                f"(the only one is '-- migrate:{NO_TRANSACTION}')"
            )
        found.add(match["name"])
    return found


def _load(path: Path, kind: Kind, version: str | None, name: str, script: str) -> SqlFile:
    text, digest = _read(path, script)
    directives = _directives(text, script)
    if kind == "repeatable" and directives:
        raise BadFileError(
            f"{script}: repeatable files always run in a transaction; "
            f"remove '-- migrate:{NO_TRANSACTION}'"
        )
    statements = tuple(split_statements(text))
    if not statements:
        raise BadFileError(f"{script}: contains no SQL statement")
    return SqlFile(
        kind, version, name, script, text, digest, NO_TRANSACTION not in directives, statements
    )


def discover(root: Path) -> Tree:
    """Read the SQL tree at ``root``; bad names, duplicates and unreadable files become problems."""
    if not root.is_dir():
        raise ConfigError(f"SQL directory {root} does not exist")
    problems: list[MigrationError] = []
    versioned: dict[str, SqlFile] = {}
    for path in _entries(root / VERSIONED_DIR, problems):
        script = f"{VERSIONED_DIR}/{path.name}"
        match = _VERSIONED_NAME.fullmatch(path.name)
        if match is None:
            problems.append(
                BadFileError(
                    f"{script}: bad file name; expected {VERSIONED_DIR}/YYYYMMDDHHMMSS_<slug>.sql "
                    "(slug: letters, digits, '_' or '-')"
                )
            )
            continue
        version = match["version"]
        if version in versioned:
            problems.append(
                BadFileError(
                    f"{script}: duplicate version {version} (also {versioned[version].script})"
                )
            )
            continue
        try:
            versioned[version] = _load(path, "versioned", version, match["slug"], script)
        except BadFileError as exc:
            problems.append(exc)
    repeatable: list[SqlFile] = []
    for path in _entries(root / REPEATABLE_DIR, problems):
        script = f"{REPEATABLE_DIR}/{path.name}"
        if _REPEATABLE_NAME.fullmatch(path.name) is None:
            problems.append(
                BadFileError(f"{script}: bad file name; use letters, digits, '_', '-' or '.'")
            )
            continue
        try:
            repeatable.append(_load(path, "repeatable", None, path.name, script))
        except BadFileError as exc:
            problems.append(exc)
    return Tree(root, [versioned[v] for v in sorted(versioned)], repeatable, problems)


def guard(file: SqlFile, server_version: int) -> MigrationError | None:
    """Static check of a file about to run; None when it may run as declared."""
    if not file.transactional and len(file.statements) != 1:
        return ForbiddenStatementError(
            f"{file.script}: a '-- migrate:{NO_TRANSACTION}' file must hold exactly one "
            f"statement, found {len(file.statements)}; split it into one file per statement"
        )
    for stmt in file.statements:
        reason = forbidden_anywhere(stmt)
        if reason:
            return ForbiddenStatementError(
                f"{file.script}: line {stmt.line}: {reason} is not allowed in a migration"
            )
        reason = needs_autocommit(stmt, server_version) if file.transactional else None
        if reason:
            return ForbiddenStatementError(
                f"{file.script}: line {stmt.line}: {reason} cannot run inside a transaction; "
                f"move it to its own file headed '-- migrate:{NO_TRANSACTION}'"
            )
    return None
