"""What the numbers were measured on: CPU, cores, memory, and the versions of everything in the path."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from tooling.kafka_local import KAFKA_VERSION

LIBRARIES = (
    "confluent-kafka",
    "faust-streaming",
    "aiokafka",
    "fastavro",
    "cryptography",
    "SQLAlchemy",
    "orjson",
    "fastapi",
    "uvicorn",
    "aiohttp",
    "httpx2",
    "Faker",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def code_version() -> str:
    """The commit measured, and whether the work tree differed from it."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"
    return f"{commit} with uncommitted changes" if dirty else commit


def describe(kafka: str | None = None) -> dict[str, str]:
    """Machine and versions as label → value, in display order."""
    import sqlite3

    import confluent_kafka

    out = {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{memory_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Kafka": kafka or f"{KAFKA_VERSION} (local KRaft broker, single node)",
        "librdkafka": confluent_kafka.libversion()[0],
        "SQLite": sqlite3.sqlite_version,
    }
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_header(command: str) -> dict[str, Any]:
    """What every stored result starts with: when, by which command, on which machine and code."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": describe(),
        "code": code_version(),
    }
