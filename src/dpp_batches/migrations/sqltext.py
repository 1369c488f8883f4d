"""Reading SQL text without a parser: split a file into statements, hash it, guard it.

The splitter knows just enough of PostgreSQL's lexical rules to find top-level semicolons:
``--`` and nested ``/* */`` comments, '' strings (E'' with backslash escapes), "" identifiers,
dollar quoting, parentheses, and ``BEGIN ATOMIC … END`` bodies of SQL-standard routines.
Each statement also gets a *skeleton*: lower-case code with comments dropped, literals and
bodies blanked and whitespace collapsed, which is what the static guard matches against.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

CHECKSUM_PREFIX = "sha256/v1:"
_BOM = b"\xef\xbb\xbf"

_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_ROUTINE_HEADS = (
    ("create", "function"),
    ("create", "procedure"),
    ("create", "or", "replace", "function"),
    ("create", "or", "replace", "procedure"),
)


def normalise(raw: bytes) -> bytes:
    """Drop one leading UTF-8 BOM and turn CRLF into LF; nothing else."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    return raw.replace(b"\r\n", b"\n")


def checksum(raw: bytes) -> str:
    """``sha256/v1:<hex>`` over the normalised bytes (immune to autocrlf and editors' BOMs)."""
    return CHECKSUM_PREFIX + hashlib.sha256(normalise(raw)).hexdigest()


@dataclass(frozen=True)
class Statement:
    text: str  # the statement as written (comments inside it kept), without the ';'
    skeleton: str  # lower-case code, comments dropped, literals blanked, whitespace collapsed
    line: int  # 1-based line where its code starts


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$" or ord(ch) >= 0x80


def _skip_quoted(sql: str, i: int, quote: str, backslashes: bool) -> int:
    """Index just past the literal opening at ``i`` (or len(sql) if unterminated)."""
    j, n = i + 1, len(sql)
    while j < n:
        ch = sql[j]
        if backslashes and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    depth, j, n = 1, i + 2, len(sql)
    while j < n and depth:
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
        else:
            j += 1
    return j


class _Builder:
    """Accumulates one statement while the splitter walks the text."""

    def __init__(self, sql: str, start: int) -> None:
        self.sql, self.start = sql, start
        self.parts: list[str] = []
        self.words: list[str] = []
        self.first_code: int | None = None
        self.parens = 0
        self.blocks = 0

    def code(self, pos: int, token: str) -> None:
        if self.first_code is None and not token.isspace():
            self.first_code = pos
        self.parts.append(token)

    def word(self, pos: int, word: str) -> None:
        self.code(pos, word)
        if len(self.words) < 4:
            self.words.append(word)
        if not any(tuple(self.words[: len(h)]) == h for h in _ROUTINE_HEADS):
            return
        if word == "begin" or (word == "case" and self.blocks):
            self.blocks += 1
        elif word == "end" and self.blocks:
            self.blocks -= 1

    def finish(self, end: int) -> Statement | None:
        skeleton = " ".join("".join(self.parts).split())
        if not skeleton or self.first_code is None:
            return None
        return Statement(
            text=self.sql[self.first_code : end].strip(),
            skeleton=skeleton,
            line=1 + self.sql.count("\n", 0, self.first_code),
        )


def split_statements(sql: str) -> list[Statement]:
    """Top-level statements of ``sql``; empty statements (``;;``, comments only) are dropped."""
    out: list[Statement] = []
    cur = _Builder(sql, 0)
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            cur.code(i, " ")
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
            cur.code(i, " ")
        elif ch == "'":
            backslashes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_ident_char(sql[i - 2]))
            cur.code(i, "''")
            i = _skip_quoted(sql, i, "'", backslashes)
        elif ch == '"':
            cur.code(i, '""')
            i = _skip_quoted(sql, i, '"', False)
        elif (
            ch == "$"
            and (m := _DOLLAR_TAG.match(sql, i))
            and not (i > 0 and _is_ident_char(sql[i - 1]))
        ):
            end = sql.find(m.group(), m.end())
            cur.code(i, " $$ ")
            i = n if end < 0 else end + len(m.group())
        elif m := _WORD.match(sql, i):
            cur.word(i, m.group().lower())
            i = m.end()
        elif ch == ";" and cur.parens == 0 and cur.blocks == 0:
            if stmt := cur.finish(i):
                out.append(stmt)
            i += 1
            cur = _Builder(sql, i)
        else:
            if ch == "(":
                cur.parens += 1
            elif ch == ")" and cur.parens:
                cur.parens -= 1
            cur.code(i, ch)
            i += 1
    if stmt := cur.finish(n):
        out.append(stmt)
    return out


# Statements PostgreSQL refuses inside a transaction block (or that would break ours).
_OUTSIDE_TRANSACTION: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), label)
    for pattern, label in (
        (r"create (unique )?index concurrently\b", "CREATE INDEX CONCURRENTLY"),
        (r"drop index concurrently\b", "DROP INDEX CONCURRENTLY"),
        (r"reindex\b.*\bconcurrently\b", "REINDEX CONCURRENTLY"),
        (r"reindex (\(.*\) )?(database|system)\b", "REINDEX DATABASE/SYSTEM"),
        (r"alter table .*\bdetach partition .*\bconcurrently\b", "DETACH PARTITION CONCURRENTLY"),
        (r"vacuum\b", "VACUUM"),
        (r"alter system\b", "ALTER SYSTEM"),
        (r"(create|drop) database\b", "CREATE/DROP DATABASE"),
        (r"alter database .*\bset tablespace\b", "ALTER DATABASE SET TABLESPACE"),
        (r"(create|drop) tablespace\b", "CREATE/DROP TABLESPACE"),
        (r"(create|drop) subscription\b", "CREATE/DROP SUBSCRIPTION"),
    )
)
_ADD_ENUM_VALUE = re.compile(r"alter type .*\badd value\b")
# Never allowed in a migration file: the runner owns the transaction and the session.
_SESSION_CONTROL: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(begin|start transaction|commit|end|rollback|abort)\b"),
        "transaction control (the runner owns the transaction)",
    ),
    (re.compile(r"(prepare transaction|commit prepared|rollback prepared)\b"), "two-phase commit"),
    (
        re.compile(r"discard (all|plans|sequences|temp|temporary)\b"),
        "DISCARD (it would drop the runner's advisory locks)",
    ),
)


def needs_autocommit(stmt: Statement, server_version: int) -> str | None:
    """What makes ``stmt`` impossible inside a transaction block, or None."""
    for pattern, label in _OUTSIDE_TRANSACTION:
        if pattern.match(stmt.skeleton):
            return label
    if server_version < 120000 and _ADD_ENUM_VALUE.match(stmt.skeleton):
        return "ALTER TYPE … ADD VALUE (PostgreSQL < 12)"
    return None


def forbidden_anywhere(stmt: Statement) -> str | None:
    """Statements no migration file may contain: the runner owns transaction and session."""
    for pattern, label in _SESSION_CONTROL:
        if pattern.match(stmt.skeleton):
            return label
    return None
