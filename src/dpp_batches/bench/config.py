"""What a benchmark run measures: sizes, client counts, run lengths (full and quick presets)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dpp_batches.bench.data import Layout


@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple[int, ...]  # total batches in the database for the list-latency runs
    clients: tuple[int, ...]  # pgbench clients for the create/update throughput runs
    seconds: int | None = None  # length of one pgbench run (-T) ...
    transactions: int | None = None  # ... or transactions per client (-t), for smoke tests
    rounds: int = 1  # API and baselines alternate this many times; results are pooled
    goal_clients: int = 4  # the client count the throughput goals are judged at
    # False: every pgbench session runs with synchronous_commit = off, so a commit does not wait
    # for the WAL flush. API and baseline commit alike; on a shared disk the flush wait is noise
    # that pulls every write ratio towards 1. True measures durable commits.
    durable_commits: bool = False
    layout: Layout = field(default_factory=Layout)

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.transactions is None):
            raise ValueError("give exactly one of seconds and transactions")
        if not self.sizes or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError("sizes must be increasing")
        if self.sizes[0] <= self.layout.base_rows:
            raise ValueError(f"the smallest size must exceed {self.layout.base_rows} batches")
        if not self.clients or max(self.clients) > self.layout.writers:
            raise ValueError("clients must be between 1 and layout.writers")
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")


# Full: the figures. About 6 minutes on 2 cores, most of it pgbench time.
FULL = Config("full", sizes=(10_000, 100_000, 1_000_000), clients=(1, 2, 4, 8), seconds=4, rounds=2)
# Quick: the same figures at two sizes and two client counts, in well under 2 minutes.
QUICK = Config(
    "quick", sizes=(10_000, 100_000), clients=(1, 4), seconds=2, rounds=2, layout=Layout(writers=4)
)
