"""Errors that stop a migration run.

Every error renders as one line that says what is wrong, which file or version it concerns,
and what to do. ``exit_code`` is what the CLI returns: 2 when the run was refused before
anything was applied (validation, configuration), 1 when applying failed or timed out.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Base class; ``str()`` is a single line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(MigrationError):
    """Bad arguments, unreadable SQL tree, unreachable database."""


class ValidationError(MigrationError):
    """Files and history disagree; nothing was applied."""


class BadFileError(ValidationError):
    """A file in the SQL tree has a bad name, a duplicate version or bad content."""


class ForbiddenStatementError(ValidationError):
    """Static guard: a statement that cannot run inside the file's transaction mode."""


class DriftError(ValidationError):
    """An applied file was edited after it was applied."""


class MissingFileError(ValidationError):
    """A version recorded as applied has no file in the SQL tree."""


class DatabaseNewerError(ValidationError):
    """The database has versions newer than this package ships (a downgrade)."""


class OutOfOrderError(ValidationError):
    """A pending version is older than the newest applied one."""


class UnfinishedMigrationError(ValidationError):
    """A non-transactional migration is recorded as running or failed."""


class NeedsBaselineError(ValidationError):
    """Our schema exists but the history is empty."""


class PoolerError(ValidationError):
    """A non-transactional file would run behind a transaction-mode pooler."""


class HistoryFormatError(ValidationError):
    """The history table has a format this runner does not know."""


class LockTimeoutError(MigrationError):
    """The migration lock was not free within ``lock_wait`` seconds."""

    exit_code = 1


class ApplyError(MigrationError):
    """A migration failed while running; see the message for what was kept."""

    exit_code = 1
