"""The one error the benchmark reports to its user (one line, no traceback)."""


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says what failed and what to do."""
