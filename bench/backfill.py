"""``python -m bench backfill``: a consumer's backfill beside the live stream, and the others' freshness.

A hub with N party members projected by the real worker (``sharehub project``) into Dong Thap's and Lang
Son's read models. A thread publishes one fresh member every 50 ms throughout. Then governance replaces
Lang Son's agreement with wider terms: its read model starts over and is backfilled from the topic's start
by the running worker, while Dong Thap's goes on taking the fresh members.

Measured:
- the backfill: from Lang Son's read model being reset (its positions fall) until they reach Dong Thap's
  again, polled every 200 ms; its rate is the events it read again per second;
- freshness: for every fresh member, from its publication acknowledged (acks=all) until it is in Dong
  Thap's read model (polled every 20 ms), before the widening (the baseline) and during the backfill.

Results go to ``bench/results/backfill.json`` and a section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.environment import BENCH_HOME, DATASET, OWNER, SCALE_KAFKA_PORT, broker, hub_env, new_hub
from bench.load import latency_summary, projection_worker, stop_group, wait_for
from bench.model import save
from bench.read_models import events_projected
from services.hub import Hub
from tooling.synthetic import generate_party_members

RESULTS = report.BACKFILL_JSON
FRESH_EVERY_S = 0.05
POLL_S = 0.02
#: How long freshness is sampled before the widening (the baseline).
BASELINE_S = 20.0
WIDE = ["member_id", "province_code", "commune_code", "status", "party_cell", "official_date"]


def log(message: str) -> None:
    print(f"[backfill {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class _Fresh:
    """One fresh member published every FRESH_EVERY_S; each one's time from acknowledged to projected."""

    def __init__(self, hub: Hub, readmodels: Path, first_index: int) -> None:
        self._hub, self._db, self._next = hub, readmodels / "dongthap-ppc.db", first_index
        self.samples: list[tuple[float, float]] = []  # (acknowledged at, seen after s)
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._publish), threading.Thread(target=self._watch)]
        for thread in self._threads:
            thread.start()

    def _publish(self) -> None:
        publisher = self._hub.publisher(OWNER, DATASET)
        try:
            while not self._stop.wait(FRESH_EVERY_S):
                [member] = generate_party_members(1, seed=385, start_index=self._next)
                self._next += 1
                if publisher.publish_records([member]).published != 1:
                    raise RuntimeError(f"a fresh member was refused: {member['member_id']}")
                with self._lock:
                    self._pending[str(member["member_id"])] = time.monotonic()
        finally:
            publisher.close()

    def _watch(self) -> None:
        with sqlite3.connect(f"file:{self._db}?mode=ro", uri=True, timeout=5) as conn:
            while not self._stop.wait(POLL_S):
                with self._lock:
                    pending = dict(self._pending)
                for key, acknowledged in pending.items():
                    found = conn.execute(
                        "SELECT 1 FROM records WHERE dataset = ? AND record_key = ?", (DATASET, key)
                    ).fetchone()
                    if found:
                        seen = time.monotonic()
                        with self._lock:
                            del self._pending[key]
                            self.samples.append((acknowledged, seen - acknowledged))

    def between(self, start: float, end: float) -> dict[str, Any]:
        seen = [after * 1000 for at, after in self.samples if start <= at <= end]
        return {**latency_summary(seen), "n": len(seen)} if seen else {"n": 0}

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _widen(hub: Hub) -> None:
    with hub.governing() as gov:
        agreement = "langson-ppc.party-members.wide"
        gov.propose("langson-ppc", agreement, "langson-ppc", DATASET, WIDE, "", "regulation-384-art-5",
                    purposes=["party-member-statistics"])  # fmt: skip
        gov.consent(OWNER, agreement)
        gov.approve("cpo", agreement)
        gov.approve("op", agreement)
        gov.revoke("cpo", "langson-ppc.party-members.1", "superseded by wider terms")


def run(members: int) -> dict[str, Any]:
    workdir = BENCH_HOME / "backfill"
    with broker(workdir / "kafka-home", SCALE_KAFKA_PORT) as bootstrap:
        hub = new_hub(workdir / "hub", bootstrap)
        topic = hub.governance.dataset(DATASET).topic
        readmodels = hub.home / "readmodels"
        log(f"publishing {members:,} party members")
        publisher = hub.publisher(OWNER, DATASET)
        publisher.publish_records(generate_party_members(members, seed=384))
        publisher.close()
        worker = projection_worker(hub_env(hub), workdir / "projector.log")
        try:
            started = time.monotonic()
            both = ["dongthap-ppc", "langson-ppc"]
            wait_for(lambda: events_projected(hub, both, topic) >= members, 7200, "the first pass", 2.0)
            first_s = time.monotonic() - started
            log(f"projected into both read models in {first_s:,.0f} s; sampling freshness")
            fresh = _Fresh(hub, readmodels, first_index=members)
            try:
                time.sleep(BASELINE_S)
                widened_at = time.monotonic()
                _widen(hub)
                lang_son = functools.partial(events_projected, hub, ["langson-ppc"], topic)
                reset_at = wait_for(lambda: lang_son() < members, 60, "the reset", 0.2)
                log("Lang Son's read model was reset; backfilling")
                dong_thap = functools.partial(events_projected, hub, ["dongthap-ppc"], topic)
                caught_up_at = wait_for(lambda: lang_son() >= dong_thap(), 7200, "the backfill", 0.2)
                backfilled = lang_son()
            finally:
                fresh.stop()
        finally:
            stop_group(worker)
            hub.close()
    seconds = caught_up_at - reset_at
    return {
        "members": members,
        "first_projection_s": round(first_s, 1),
        "first_projection_rate": members / first_s,
        "reset_after_s": round(reset_at - widened_at, 2),
        "backfill_s": round(seconds, 1),
        "backfilled_events": backfilled,
        "backfill_rate": backfilled / seconds,
        "fresh_every_s": FRESH_EVERY_S,
        "freshness_before": fresh.between(widened_at - BASELINE_S, widened_at),
        "freshness_during": fresh.between(reset_at, caught_up_at),
    }


def lines(result: dict[str, Any]) -> list[str]:
    before, during = result["freshness_before"], result["freshness_during"]
    return [
        "## A backfill beside the live stream",
        "",
        f"`{result['command']}`, {result['date']}, code {result['code']}. {result['members']:,} party "
        "members projected by the real worker into Dong Thap's and Lang Son's read models (first pass "
        f"{result['first_projection_rate']:,.0f} ev/s); then Lang Son's terms are widened on the log, so its "
        "read model is reset and backfilled by the running worker, while a fresh member is published every "
        f"{result['fresh_every_s'] * 1000:.0f} ms. Freshness: from a fresh member's publication acknowledged "
        "until it is in Dong Thap's read model (polled every 20 ms). Target: p99 <= 2 s during the backfill.",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| reset seen after the widening | {result['reset_after_s']:.2f} s |",
        f"| backfill | {result['backfilled_events']:,} events in {result['backfill_s']:,.1f} s "
        f"({result['backfill_rate']:,.0f} ev/s) |",
        f"| freshness before (p50 / p99 / max) | {_summary(before)} |",
        f"| freshness during the backfill (p50 / p99 / max) | {_summary(during)} |",
        "",
    ]


def _summary(latency: dict[str, Any]) -> str:
    if not latency["n"]:
        return "no sample"
    p50, p99, worst = (f"{latency[k]:,.0f}" for k in ("p50_ms", "p99_ms", "max_ms"))
    return f"{p50} / {p99} / {worst} ms ({latency['n']} members)"


def main(argv: list[str], command: str) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    result = {**machine.run_header(command), **run(args.members)}
    save(RESULTS, result)
    for line in lines(result):
        print(line, file=sys.stderr)
    print(f"[backfill] wrote {RESULTS}; {report.write_report()}", file=sys.stderr)
