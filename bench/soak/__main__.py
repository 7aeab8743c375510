"""``python -m bench.soak``: run the soak; exit 1 if any check of the verdict failed."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from bench import charts, report
from bench.environment import BENCH_HOME
from bench.model import save
from bench.soak.runner import Asked, log, run, table
from bench.soak.verdict import Limits

SOAK_JSON = report.RESULTS / "soak.json"
SOAK_CHART = report.RESULTS / "soak.svg"
#: The soak's broker when SHAREHUB_LOCAL_KAFKA_PORT names none: apart from the bench's and the tests'.
SOAK_KAFKA_PORT = 29802


def main(argv: list[str]) -> int:
    # SIGTERM (a timeout, systemd, kill) unwinds as Ctrl-C does: the loads, the worker, the API and the
    # broker are stopped on the way out, rather than left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--events-per-s", type=float, default=2000.0)
    parser.add_argument("--queries-per-s", type=float, default=500.0)
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--home", type=Path, default=BENCH_HOME / "soak", help="the broker's and hub's home")
    parser.add_argument(
        "--kafka-port",
        type=int,
        default=None,
        help=f"the broker's port (default: SHAREHUB_LOCAL_KAFKA_PORT, else {SOAK_KAFKA_PORT})",
    )
    parser.add_argument(
        "--results", type=Path, default=SOAK_JSON, help="where the JSON goes; the chart beside"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the home (topics, read models, logs) on a pass"
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.events_per_s <= 0 or args.queries_per_s <= 0 or args.sample_s <= 0:
        parser.error("--minutes, --events-per-s, --queries-per-s and --sample-s must be positive")
    port = args.kafka_port or int(os.environ.get("SHAREHUB_LOCAL_KAFKA_PORT", SOAK_KAFKA_PORT))
    asked = Asked(args.minutes * 60, args.events_per_s, args.queries_per_s, args.sample_s, port, args.home)
    command = shlex.join(["python", "-m", "bench.soak", *argv])

    def write(result: dict[str, Any]) -> Path:
        save(args.results, result | {"command": command})
        return charts.soak_chart(result, args.results.with_suffix(".svg"))

    def loaded(result: dict[str, Any]) -> None:
        log(f"the load's samples in {args.results} and {write(result)}; now the counts at rest")

    result, verdict = run(asked, Limits(), loaded)
    chart = write(result)
    print(table(verdict))
    log(f"{'pass' if verdict.ok else 'FAIL'}; wrote {args.results} and {chart}")
    if verdict.ok and not args.keep:
        shutil.rmtree(args.home, ignore_errors=True)  # gigabytes of topic and read models
    else:
        log(f"the broker's and the hub's files, logs included, are in {args.home}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
