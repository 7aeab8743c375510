"""``python -m bench backfill``: a consumer's backfill beside the live stream, and the others' freshness.

A hub with N party members projected by the real worker (``sharehub project``) into Dong Thap's and Lang
Son's read models. A thread publishes one fresh member every 50 ms throughout. Then governance replaces
Lang Son's agreement with wider terms: its read model builds a new generation of the dataset beside the rows
it serves (blue/green, projections.generations), backfilled from the topic's start by the running worker,
then swapped in, while Dong Thap's goes on taking the fresh members.

Measured, polled every 200 ms:
- the backfill: from the new generation being opened until it is swapped in; its rate is the events it
  read again per second (the building generation's positions summed when last seen);
- Lang Son's rows served meanwhile: never fewer than before the widening, and every row with the wider
  fields once swapped in;
- the old generation's deletion after the swap;
- freshness: for every fresh member, from its publication acknowledged (acks=all) until it is in Dong
  Thap's read model (polled every 20 ms), before the widening (the baseline), during the backfill, and
  while the old generation is deleted after the swap.

Results go to ``bench/results/backfill.json`` and a section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
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
from projections.read_model import ReadModelStore
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
                build = _Build(hub.store("langson-ppc"), topic)
                opened_at = wait_for(build.opened, 60, "the new generation", 0.2)
                log("Lang Son's read model builds a new generation; backfilling")
                swapped_at = wait_for(build.swapped, 7200, "the swap", 0.2)
                log("swapped in; deleting the old generation")
                retired_at = wait_for(build.deleted, 7200, "the old generation's deletion", 0.2)
                wide = all(
                    set(r["fields"]) == set(WIDE) for r in hub.store("langson-ppc").page(DATASET, limit=1000)
                )
            finally:
                fresh.stop()
        finally:
            stop_group(worker)
            hub.close()
    seconds = swapped_at - opened_at
    return {
        "members": members,
        "first_projection_s": round(first_s, 1),
        "first_projection_rate": members / first_s,
        "opened_after_s": round(opened_at - widened_at, 2),
        "backfill_s": round(seconds, 1),
        "backfilled_events": build.events,
        "backfill_rate": build.events / seconds,
        "served_least": build.least_served,
        "served_before": members,
        "wide_after_swap": wide,
        "retired_deleted_s": round(retired_at - swapped_at, 1),
        "fresh_every_s": FRESH_EVERY_S,
        "freshness_before": fresh.between(widened_at - BASELINE_S, widened_at),
        "freshness_during": fresh.between(opened_at, swapped_at),
        "freshness_deleting": fresh.between(swapped_at, retired_at),
    }


class _Build:
    """Lang Son's new generation of the dataset as the poll sees it, and the rows it serves meanwhile."""

    def __init__(self, store: ReadModelStore, topic: str) -> None:
        self._store, self._topic = store, topic
        self.events = 0
        self.least_served: int | None = None

    def opened(self) -> bool:
        return self._store.generations()[DATASET].building is not None

    def swapped(self) -> bool:
        served = self._store.count(DATASET)
        self.least_served = served if self.least_served is None else min(self.least_served, served)
        gen = self._store.generations()[DATASET]
        if gen.building is not None:
            self.events = sum(self._store.positions(building=self._topic).values())
        return gen.building is None

    def deleted(self) -> bool:
        return self._store.generations()[DATASET].retired is None


def lines(result: dict[str, Any]) -> list[str]:
    before, during = result["freshness_before"], result["freshness_during"]
    return [
        "## A backfill beside the live stream",
        "",
        f"`{result['command']}`, {result['date']}, code {result['code']}. {result['members']:,} party "
        "members projected by the real worker into Dong Thap's and Lang Son's read models (first pass "
        f"{result['first_projection_rate']:,.0f} ev/s); then Lang Son's terms are widened on the log, so its "
        "read model builds a new generation of the dataset beside the rows it serves (blue/green), "
        "backfilled by the running worker and then swapped in, while a fresh member is published every "
        f"{result['fresh_every_s'] * 1000:.0f} ms. Freshness: from a fresh member's publication acknowledged "
        "until it is in Dong Thap's read model (polled every 20 ms). Target: p99 <= 2 s during the backfill "
        "and the deletion.",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| new generation opened after the widening | {result['opened_after_s']:.2f} s |",
        f"| backfill, until swapped in | {result['backfilled_events']:,} events in "
        f"{result['backfill_s']:,.1f} s ({result['backfill_rate']:,.0f} ev/s) |",
        f"| Lang Son's rows served during the build (least seen) | {result['served_least']:,} "
        f"(first pass: {result['served_before']:,}) |",
        f"| every row served with the wider fields after the swap | {_yes(result['wide_after_swap'])} |",
        f"| old generation deleted after the swap | {result['retired_deleted_s']:,.1f} s |",
        f"| freshness before (p50 / p99 / max) | {_summary(before)} |",
        f"| freshness during the backfill (p50 / p99 / max) | {_summary(during)} |",
        *_deleting(result),
        "",
    ]


def _deleting(result: dict[str, Any]) -> list[str]:
    """Freshness while the old generation was deleted (results of before it was sampled have none)."""
    deleting = result.get("freshness_deleting")
    if deleting is None:
        return []
    return [f"| freshness while the old generation is deleted (p50 / p99 / max) | {_summary(deleting)} |"]


def _yes(holds: bool) -> str:
    return "yes" if holds else "no"


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
