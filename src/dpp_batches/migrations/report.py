"""``status``: what is applied, pending or wrong, with an exit code for scripts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC

from .errors import MigrationError
from .history import TABLE
from .validate import Entry


@dataclass(frozen=True)
class StatusReport:
    database: str
    history_exists: bool
    entries: tuple[Entry, ...]
    problems: tuple[MigrationError, ...]
    invalid_indexes: tuple[str, ...]

    @property
    def pending(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.state == "pending")

    @property
    def exit_code(self) -> int:
        """0 clean, 1 something pending, 2 a problem (drift, missing, unfinished, …)."""
        if self.problems or self.invalid_indexes:
            return 2
        return 1 if self.pending else 0

    def render(self) -> str:
        lines = [self.database]
        if not self.history_exists:
            lines.append(f"  no {TABLE} yet: nothing has been applied by the runner")
        width = max((len(e.script) for e in self.entries), default=0)
        for e in self.entries:
            tag = e.version or e.kind
            when = ""
            if e.row is not None and e.row.status == "applied" and e.state != "drifted":
                when = e.row.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
            text = f"  {e.state:<12} {tag:<14}  {e.script:<{width}}  {when}"
            if e.detail:
                text += f"  ({e.detail})"
            lines.append(text.rstrip())
        for index in self.invalid_indexes:
            lines.append(
                f"  INVALID index {index}: left by a failed CONCURRENTLY build; "
                "drop it before `repair --retry`"
            )
        for problem in self.problems:
            lines.append(f"problem: {problem}")
        counts = Counter(e.state for e in self.entries)
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        verdict = {0: "clean", 1: "pending", 2: "PROBLEM"}[self.exit_code]
        lines.append(
            f"summary: {', '.join(parts) or 'no migrations'}; {verdict} (exit {self.exit_code})"
        )
        return "\n".join(lines)
