"""Find and run pgbench (the one matching the server's major version) and read its results."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dpp_batches.bench.errors import BenchError


@dataclass(frozen=True)
class Target:
    """How pgbench reaches a database: a conninfo without password, plus its environment."""

    conninfo: str
    env: Mapping[str, str]

    @classmethod
    def of(cls, dsn: str, settings: Mapping[str, str] | None = None) -> Target:
        """`settings` are session settings for every connection (PGOPTIONS `-c name=value`)."""
        params = conninfo_to_dict(dsn)
        password = params.pop("password", None)
        env = {"PGPASSWORD": str(password)} if password else {}
        if settings:
            options = " ".join(f"-c {k}={v}" for k, v in settings.items())
            env["PGOPTIONS"] = f"{os.environ.get('PGOPTIONS', '')} {options}".strip()
        return cls(make_conninfo("", **params), env)


@dataclass(frozen=True)
class Run:
    clients: int
    transactions: int
    tps: float  # without initial connection time
    latencies_ms: tuple[float, ...] = ()  # per transaction, when logged


def candidates() -> list[Path]:
    """pgbench binaries worth asking: $PGBENCH, the Debian layout, pgserver's, PATH."""
    found: list[Path] = []
    if os.environ.get("PGBENCH"):
        found.append(Path(os.environ["PGBENCH"]))
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        found.append(Path(spec.origin).parent / "pginstall" / "bin" / "pgbench")
    on_path = shutil.which("pgbench")
    if on_path:
        found.append(Path(on_path))
    return found


def version_of(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", out)
    return match.group(1) if match else None


def find(server_major: int) -> tuple[Path, str]:
    """The first pgbench whose major version is the server's; (path, version)."""
    seen: list[str] = []
    for binary in candidates():
        if not binary.is_file():
            continue
        version = version_of(binary)
        if version is None:
            continue
        if int(version.split(".")[0]) == server_major:
            return binary, version
        seen.append(f"{binary} ({version})")
    others = f"; found only {', '.join(seen)}" if seen else ""
    raise BenchError(
        f"no pgbench for PostgreSQL {server_major}{others}: install the "
        f"server's client tools, or set PGBENCH=/path/to/pgbench"
    )


def run(
    binary: Path,
    target: Target,
    script_text: str,
    *,
    name: str,
    clients: int,
    seconds: int | None = None,
    transactions: int | None = None,
    defines: Mapping[str, str] | None = None,
    log: bool = False,
) -> Run:
    """One pgbench run of a custom script (simple protocol; no vacuum, no init)."""
    if (seconds is None) == (transactions is None):
        raise ValueError("give exactly one of seconds and transactions")
    with tempfile.TemporaryDirectory(prefix="dpp-bench-") as work:
        path = Path(work) / f"{name}.sql"
        path.write_text(script_text)
        args: list[str] = [
            str(binary),
            "-n",
            "-M",
            "simple",
            "-f",
            str(path),
            "-c",
            str(clients),
            "-j",
            str(min(clients, os.cpu_count() or 1)),
        ]
        args += ["-T", str(seconds)] if seconds is not None else ["-t", str(transactions)]
        for key, value in (defines or {}).items():
            args += ["-D", f"{key}={value}"]
        if log:
            args += ["-l", "--log-prefix", str(Path(work) / "latency")]
        args.append(target.conninfo)
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            cwd=work,
            env={**os.environ, **target.env},
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"pgbench {name} failed: {_first_error(proc.stderr + proc.stdout)}")
        latencies = _latencies(Path(work)) if log else ()
    return _parse(proc.stdout, clients, latencies, name)


def _parse(out: str, clients: int, latencies: Sequence[float], name: str) -> Run:
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if processed is None or tps is None:
        raise BenchError(f"pgbench {name}: could not read its summary: {_first_error(out)}")
    if failed is not None and int(failed.group(1)):
        raise BenchError(f"pgbench {name}: {failed.group(1)} transactions failed")
    return Run(clients, int(processed.group(1)), float(tps.group(1)), tuple(latencies))


def _latencies(work: Path) -> tuple[float, ...]:
    """Per-transaction latencies (ms) from `--log` files: `client tx latency_us script ...`."""
    values: list[float] = []
    for log in sorted(work.glob("latency.*")):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                values.append(int(fields[2]) / 1000.0)
    return tuple(values)


def _first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line or "FATAL" in line or "aborted" in line or "error" in line:
            return line
    return lines[-1] if lines else "no output"
