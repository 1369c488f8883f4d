"""An embedded PostgreSQL server for the demo and for test runs without a server.

Backed by the ``pgserver`` wheel (PostgreSQL binaries inside a Python package), so it needs
neither Docker nor a system PostgreSQL. Install it with ``pip install 'dpp-batches[embedded]'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CleanupMode = Literal["stop", "delete"] | None


class EmbeddedUnavailable(RuntimeError):
    """The embedded server cannot be started here (wheel missing or the server failed)."""


@dataclass
class EmbeddedServer:
    """A running embedded server; ``dsn`` is a superuser DSN for its ``postgres`` database."""

    data_dir: Path
    dsn: str
    _handle: Any

    def stop(self) -> None:
        """Release this process's handle (stops or deletes per the cleanup mode)."""
        self._handle.cleanup()


def start(data_dir: Path, *, cleanup: CleanupMode = "stop") -> EmbeddedServer:
    """Start (or attach to) the embedded server whose data lives in ``data_dir``.

    ``cleanup="stop"`` stops the server when the last handle is released, ``"delete"``
    also removes ``data_dir``, ``None`` leaves it running.
    """
    # platformdirs (used by pgserver for its lock file) wants a runtime dir; CI shells and
    # root sessions often have none.
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedUnavailable(
            "the embedded PostgreSQL needs the 'pgserver' wheel: "
            "pip install 'dpp-batches[embedded]'"
        ) from exc
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        handle = pgserver.get_server(data_dir, cleanup_mode=cleanup)  # type: ignore[attr-defined]
    except Exception as exc:  # pgserver raises plain exceptions from initdb/pg_ctl
        raise EmbeddedUnavailable(
            f"embedded PostgreSQL failed to start in {data_dir}: {exc}"
        ) from exc
    return EmbeddedServer(data_dir=data_dir, dsn=handle.get_uri(), _handle=handle)


def _runtime_dir() -> str:
    path = Path("/tmp") / f"dpp-batches-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)
