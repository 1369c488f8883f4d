"""The benchmark's result: figures (API vs a baseline from the same run), plan checks, and the
Markdown table printed at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Goal:
    op: Literal[">=", "<="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.value:g}"


@dataclass(frozen=True)
class Figure:
    """One measured figure of the API next to its baseline; ratio = api / baseline."""

    name: str
    unit: str  # "tps" or "ms"
    api: float
    baseline_name: str
    baseline: float
    goal: Goal | None = None

    @property
    def ratio(self) -> float:
        return self.api / self.baseline if self.baseline else math.inf

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.ratio)


@dataclass(frozen=True)
class Check:
    """A plan check; ok None means information only."""

    name: str
    ok: bool | None
    detail: str


@dataclass
class Result:
    config: str
    info: list[tuple[str, str]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # extra lines after the checks (profile)

    @property
    def goals_met(self) -> bool:
        return all(f.met is not False for f in self.figures) and all(
            c.ok is not False for c in self.checks
        )


def _number(value: float, unit: str) -> str:
    if unit == "tps":
        return f"{value:,.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def _verdict(figure: Figure) -> str:
    if figure.goal is None:
        return ""
    return f"{figure.goal}: {'met' if figure.met else 'MISSED'}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return [line(header), rule, *(line(r) for r in rows)]


def render(result: Result) -> str:
    out = [f"## dpp-batches benchmark ({result.config})", ""]
    out += [f"- {key}: {value}" for key, value in result.info]
    out.append("")
    rows = [
        [
            f.name,
            f"{_number(f.api, f.unit)} {f.unit}",
            f.baseline_name,
            f"{_number(f.baseline, f.unit)} {f.unit}",
            f"{f.ratio:.2f}",
            _verdict(f),
        ]
        for f in result.figures
    ]
    out += _table(
        ["figure", "API", "baseline", "baseline value", "ratio", "goal"], rows, right={1, 3, 4}
    )
    out += ["", "Plan checks:", ""]
    for check in result.checks:
        mark = {True: "ok  ", False: "FAIL", None: "info"}[check.ok]
        out.append(f"- [{mark}] {check.name}: {check.detail}")
    out += result.notes
    return "\n".join(out) + "\n"
