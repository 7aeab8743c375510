"""``python -m bench read-model-growth``: how a read model's write rate holds up as it grows.

A consumer's read model is written in batches (``ReadModelStore.apply``: the current rows, every version,
each record's subject, positions, one transaction). The rate is measured over consecutive slices of rows
as the store grows, from empty to ``--rows``, and reported against the rate over its first 20,000 rows
(the median of :data:`FIRST_FILLS` fills of empty read models: one takes a fraction of a second):
#22's "no slowdown with size" asks for at least 0.80 at 5,000,000 rows. The same run writes the same rows,
slice by slice and in turn with the hub's, through a plain loop: one sqlite3 table of current rows keyed
by (dataset, key), the same pragmas, one transaction per batch, no history and no subjects. Its own
last/first ratio shows what growth costs a B-tree here at all.

Keys: ``new`` (members in id order, as a backfill or the soak publishes them) or ``random`` (a random
member each time, the keys spread over the whole key space, as updates to an existing register).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import shutil
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import machine, report
from bench.environment import BENCH_HOME, postgres
from bench.load import rss_kb
from bench.model import save
from bench.read_models import described, engine_settings
from projections.read_model import ReadModelStore
from projections.read_model_tables import Row

#: The size the rate is compared with.
FIRST_ROWS = 20_000
#: How many times the first slice is written (into fresh read models): its rate is their median.
FIRST_FILLS = 3
DATASET = "party-members"
_FIELDS = {
    "full_name": "Nguyễn Văn An",
    "gender": "MALE",
    "province_code": "82",
    "commune_code": "30001",
    "party_cell": "CB-30001-001",
    "admission_date": "2001-05-19",
    "official_date": "2002-05-19",
    "status": "OFFICIAL",
}
_PLAIN = """
CREATE TABLE records (dataset TEXT, record_key TEXT, fields TEXT NOT NULL, applied_at TEXT NOT NULL,
                      version INTEGER NOT NULL, PRIMARY KEY (dataset, record_key));
"""
_PLAIN_UPSERT = (
    "INSERT INTO records VALUES (?, ?, ?, ?, 1) ON CONFLICT (dataset, record_key) DO UPDATE SET "
    "fields = excluded.fields, applied_at = excluded.applied_at, version = version + 1"
)


def log(message: str) -> None:
    print(f"[read-model-growth] {message}", file=sys.stderr, flush=True)


def slices(total: int, step: int) -> list[int]:
    """Where each measured slice ends: the first :data:`FIRST_ROWS`, then every ``step`` up to ``total``."""
    ends = [min(FIRST_ROWS, total)]
    while ends[-1] < total:
        ends.append(min(ends[-1] + step, total))
    return ends


def batches(start: int, end: int, size: int, keys: str, rng: random.Random) -> list[list[Row]]:
    occurred = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
    out: list[list[Row]] = []
    for first in range(start, end, size):
        batch = []
        for i in range(first, min(first + size, end)):
            member = i + 1 if keys == "new" else rng.randrange(1, 10_000_000)
            key = f"PM{member:010d}"
            ref = hashlib.sha256(key.encode()).hexdigest()[:32]  # pseudonyms are as random as this
            batch.append(
                Row(DATASET, key, ref, {"member_id": key, **_FIELDS}, str(uuid.uuid4()), occurred, "a")
            )
        out.append(batch)
    return out


class _Plain:
    """The baseline: current rows only, straight through sqlite3."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(_PLAIN)

    def apply(self, rows: list[Row], offset: int) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        self.db.execute("BEGIN")
        self.db.executemany(
            _PLAIN_UPSERT, [(r.dataset, r.record_key, orjson.dumps(r.fields).decode(), now) for r in rows]
        )
        self.db.execute("COMMIT")


def _timed(apply: Callable[[list[Row], int], object], work: list[list[Row]], done: int) -> float:
    started = time.perf_counter()
    for batch in work:
        done += len(batch)
        apply(batch, done)
    return time.perf_counter() - started


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    workdir = args.home
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    url = args.url or f"sqlite:///{workdir}/{{consumer}}.db"
    # The first slice lasts a fraction of a second: it is measured again into fresh read models, and the
    # rate it is compared with is the median of every fill.
    fills = [_fill(url, workdir / f"fill-{i}", args) for i in range(FIRST_FILLS - 1)]
    measured, database = _grow(url, workdir, args)
    fills.append((measured[0]["hub_rows_per_s"], measured[0]["plain_rows_per_s"]))
    first_hub, first_plain = statistics.median(h for h, _ in fills), statistics.median(p for _, p in fills)
    last = measured[-1]
    return {
        **machine.run_header(command),
        "rows": args.rows,
        "batch": args.batch,
        "keys": args.keys,
        "backend": database["backend"],
        "database": database,
        "slices": measured,
        "first_fills": [{"hub_rows_per_s": h, "plain_rows_per_s": p} for h, p in fills],
        "hub_last_vs_first": last["hub_rows_per_s"] / first_hub,
        "plain_last_vs_first": last["plain_rows_per_s"] / first_plain,
    }


def _grow(url: str, workdir: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rates slice by slice, the read model growing from empty to ``args.rows``; and its database
    (:func:`bench.read_models.engine_settings`)."""
    store = ReadModelStore(url, f"growth-{uuid.uuid4().hex[:8]}")
    store.create()
    database = engine_settings(store.engine)
    plain = _Plain(workdir / "plain.db")
    rng = random.Random(args.seed)
    measured: list[dict[str, Any]] = []
    done = 0
    try:
        for end in slices(args.rows, args.slice):
            work = batches(done, end, args.batch, args.keys, rng)
            hub_s = _timed(lambda b, n: store.apply(b, {("growth", 0): n}), work, done)
            plain_s = _timed(plain.apply, work, done)
            rows = end - done
            done = end
            measured.append(
                {
                    "rows_at_end": end,
                    "hub_rows_per_s": rows / hub_s,
                    "plain_rows_per_s": rows / plain_s,
                    "rss_mib": rss_kb(os.getpid()) / 1024,
                }
            )
            log(f"{end:,} rows: hub {rows / hub_s:,.0f} rows/s, plain {rows / plain_s:,.0f} rows/s")
    finally:
        store.drop()
        store.close()
        plain.db.close()
    return measured, database


def _fill(url: str, directory: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(hub, plain) rows/s filling fresh, empty read models with the first slice's rows."""
    directory.mkdir()
    first = argparse.Namespace(**{**vars(args), "rows": min(FIRST_ROWS, args.rows)})
    (filled,), _ = _grow(url, directory, first)
    return filled["hub_rows_per_s"], filled["plain_rows_per_s"]


def lines(result: dict[str, Any]) -> list[str]:
    out = [
        f"`{result['command']}`, {result['date']}, code {result['code']}: {result['rows']:,} rows "
        f"({result['keys']} keys) in batches of {result['batch']:,} into a {result['backend']} read model"
        f"{_server(result)}, and the same rows through the plain loop, slice by slice in turn.",
        "",
        "| rows in the read model | hub rows/s | plain rows/s | hub / plain | RSS |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in result["slices"]:
        ratio = s["hub_rows_per_s"] / s["plain_rows_per_s"]
        out.append(
            f"| {s['rows_at_end']:,} | {s['hub_rows_per_s']:,.0f} | {s['plain_rows_per_s']:,.0f} "
            f"| {ratio:.2f} | {s['rss_mib']:,.0f} MiB |"
        )
    out += [
        "",
        f"Rate at {result['rows']:,} rows against the first {FIRST_ROWS:,}{_filled(result)}: hub "
        f"{result['hub_last_vs_first']:.2f}, plain loop {result['plain_last_vs_first']:.2f} "
        "(target for the hub: at least 0.80 at 5,000,000 rows).",
    ]
    return out


def _server(result: dict[str, Any]) -> str:
    if result["backend"] != "postgresql":
        return ""
    database = result.get("database")  # absent from results made before it was recorded
    return f" ({described(database)})" if database else " (its server's durability settings not recorded)"


def _filled(result: dict[str, Any]) -> str:
    fills = result.get("first_fills")  # absent from results made before the first slice was repeated
    return f" (the median of {len(fills)} fills of empty read models)" if fills else ""


def main(argv: list[str], command: str) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench read-model-growth", description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=1_000, help="rows per transaction (the worker's)")
    parser.add_argument("--slice", type=int, default=250_000, help="rows per measured slice after the first")
    parser.add_argument("--keys", choices=("new", "random"), default="new")
    parser.add_argument("--url", help="read-model URL template ({consumer}); a SQLite file by default")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a PostgreSQL read model: SHAREHUB_BENCH_POSTGRES_URL, or one started for the run",
    )
    parser.add_argument("--home", type=Path, default=BENCH_HOME / "read-model-growth")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-save", action="store_true", help="print only; keep the stored result")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.batch < 1 or args.slice < 1:
        parser.error("--rows, --batch and --slice must be positive")
    if args.postgres and args.url:
        parser.error("--postgres and --url name two read models: give one")
    if args.postgres:
        with postgres() as url:
            args.url = url
            result = run(args, command)
    else:
        result = run(args, command)
    if not args.no_save:
        path = report.GROWTH_POSTGRESQL_JSON if result["backend"] == "postgresql" else report.GROWTH_JSON
        save(path, result)
        log(f"wrote {path} and {report.write_report()}")
    print("\n".join(lines(result)))
