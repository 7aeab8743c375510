"""The audit at scale: N party-members events, then a plain read of them, the audit with one worker and
the audit with several, timed in the same run, memory sampled.

1. **Publish**: one process per lane of the dataset, in parallel, each the real publisher
   (:meth:`connectors.publisher.Publisher.publish_records`: validate → subject keys → seal → sign →
   produce, acks=all) of the owner, fed the synthetic members whose pseudonym routes them to its lane. The
   events are what one publisher would write (each lane one chain of the owner), written faster.
2. **Read**: a bare confluent-kafka read of the dataset topic from offset 0 to its end (the baseline).
3. **Audit**: ``services.audit.audit_verify`` of the whole hub with 1 worker, then with ``--workers``
   (default: the machine's CPUs), each in a fresh process whose peak RSS (with its workers') is kept.

With ``--keep`` the hub and its topics stay (under ``--home``), and a later run with the same ``--home``
audits them again without publishing (``--events`` must match what is there), or with ``--grow`` first
publishes the members it lacks (from another seed; each lane's publisher goes on from the chain head it
finds on the topic). The run's own broker listens on ``--kafka-port``.

Results go to ``bench/results/audit_scale.json`` and ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.environment import (
    BENCH_HOME,
    DATASET,
    OWNER,
    SCALE_KAFKA_PORT,
    broker,
    hub_env,
    new_hub,
    settings,
)
from bench.kafka_io import end_offsets, read_batches
from bench.load import family_rss_kb, rss_kb
from bench.model import save
from services.hub import Hub
from sharehub.envelope import lane_for, pseudonym
from tooling.synthetic import generate_party_members

SAMPLE_EVERY_S = 2.0
PROGRESS_EVERY = 100_000


def log(message: str) -> None:
    print(f"[audit-scale {dt.datetime.now(dt.UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def lane_members(hub: Hub, members: int, seed: int, lane: int, lanes: int) -> Iterator[dict[str, Any]]:
    """The synthetic members (of all ``members``) whose events go to ``lane``."""
    dataset = hub.governance.dataset(DATASET)
    routing = hub.keys.routing_key(DATASET)
    for record in generate_party_members(members, seed):
        if lane_for(pseudonym(routing, str(record[dataset.key_field])), lanes) == lane:
            yield record


def publish_lane(home: Path, bootstrap: str, members: int, seed: int, lane: int) -> None:
    """One publishing process: the owner's publisher, fed the members of ``lane``; a JSON line of what it
    did on stdout."""
    hub = Hub(settings(home, bootstrap))
    lanes = hub.governance.dataset(DATASET).partitions
    publisher = hub.publisher(OWNER, DATASET)
    started = time.monotonic()
    result = publisher.publish_records(lane_members(hub, members, seed, lane, lanes))
    publisher.close()
    hub.close()
    if result.rejected:
        raise RuntimeError(f"lane {lane}: {len(result.rejected)} refused; first {result.rejected[:1]}")
    print(json.dumps({"lane": lane, "events": result.published, "seconds": time.monotonic() - started}))


def publish(hub: Hub, members: int, seed: int) -> dict[str, Any]:
    """Publish ``members`` events, one process per lane; their RSS sampled together."""
    lanes = hub.governance.dataset(DATASET).partitions
    topic = hub.governance.dataset(DATASET).topic
    argv = [sys.executable, "-m", "bench", "_publish-lane", str(hub.home), hub.settings.bootstrap]
    env = hub_env(hub)
    held = sum(end_offsets(hub.kafka, topic).values())  # a kept hub grown: what was there before
    procs = [
        subprocess.Popen(
            [*argv, str(members), str(seed), str(lane)], env=env, stdout=subprocess.PIPE, text=True
        )
        for lane in range(lanes)
    ]
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    peak = 0
    while any(p.poll() is None for p in procs):
        time.sleep(SAMPLE_EVERY_S * 5)
        elapsed = time.monotonic() - started
        rss = sum(family_rss_kb(p.pid)[0] for p in procs) / 1024
        peak = max(peak, sum(family_rss_kb(p.pid)[1] for p in procs))
        done = sum(end_offsets(hub.kafka, topic).values()) - held
        samples.append({"t": round(elapsed, 1), "events": done, "rss_mib": round(rss, 1)})
        if len(samples) % 6 == 0:
            log(f"published {done:,}/{members:,} in {elapsed:,.0f} s ({done / elapsed:,.0f} ev/s)")
    seconds = time.monotonic() - started
    failed = [str(lane) for lane, p in enumerate(procs) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"the publishers of lanes {', '.join(failed)} failed")
    published = [json.loads(p.stdout.read()) for p in procs if p.stdout is not None]
    if sum(p["events"] for p in published) != members:
        raise RuntimeError(f"published {sum(p['events'] for p in published):,} of {members:,}")
    return {
        "events": members,
        "processes": lanes,
        "seconds": round(seconds, 1),
        "rate": members / seconds,
        "peak_rss_mib": peak / 1024,
        "samples": samples,
    }


def main(argv: list[str], command: str) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench audit-scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=384)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the parallel audit's")
    parser.add_argument("--home", type=Path, default=BENCH_HOME / "audit-scale", help="the bench hub's home")
    parser.add_argument("--keep", action="store_true", help="keep the hub and its topics afterwards")
    parser.add_argument(
        "--kafka-port", type=int, default=SCALE_KAFKA_PORT, help="the port of the run's own broker"
    )
    parser.add_argument("--publish-only", action="store_true", help="publish, keep, and stop there")
    parser.add_argument(
        "--grow", action="store_true", help="a kept hub with fewer events: publish the rest first"
    )
    parser.add_argument("--note", action="append", default=[], help="a line to add to the report's notes")
    args = parser.parse_args(argv)
    hub_home = args.home / "hub"
    result: dict[str, Any] = {**machine.run_header(command), "events": args.events}
    wall = time.monotonic()
    keep = args.keep or args.publish_only
    try:
        kept = (hub_home / "keys.db").exists()
        with broker(args.home / "kafka-home", args.kafka_port, fresh=not kept) as bootstrap:
            hub, held = _kept_hub(hub_home, bootstrap, args.events, grow=args.grow)
            try:
                if hub is None:
                    hub = new_hub(hub_home, bootstrap)
                if held < args.events:
                    log(f"publishing {args.events - held:,} party members, one process per lane")
                    result["publish"] = publish(hub, args.events - held, args.seed + held)
                    log(f"publish: {result['publish']['rate']:,.0f} ev/s")
                else:
                    log(f"auditing the {args.events:,} events kept in {hub_home}")
                if args.publish_only:
                    return
                result.update(measure(hub, args.events, args.workers))
            finally:
                if hub is not None:
                    hub.close()
    finally:
        if not keep:
            shutil.rmtree(args.home, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - wall, 1)
    result["notes"] = args.note
    save(report.AUDIT_SCALE_JSON, result)
    log(f"wrote {report.write_report()}")


def _kept_hub(home: Path, bootstrap: str, events: int, *, grow: bool) -> tuple[Hub | None, int]:
    """The hub a run with ``--keep`` left in ``home`` and the events its dataset topic holds: ``events``,
    or fewer with ``grow``; (None, 0) when there is none."""
    if not (home / "keys.db").exists():
        return None, 0
    hub = Hub(settings(home, bootstrap))
    held = sum(end_offsets(hub.kafka, hub.governance.dataset(DATASET).topic).values())
    if held != events and not (grow and held < events):
        hub.close()
        raise SystemExit(
            f"{home} holds {held:,} events, not {events:,}: remove it, say --events {held}, or --grow"
        )
    return hub, held


def measure(hub: Hub, events: int, workers: int) -> dict[str, Any]:
    """A plain read of the dataset topic, the audit with 1 worker and with ``workers``, and the plain read
    again, each in a fresh process (its RSS, with its workers', sampled)."""
    phases: dict[str, Any] = {}
    for name, argv in [
        ("read", ["read"]),
        ("audit_1", ["audit", "1"]),
        (f"audit_{workers}", ["audit", str(workers)]),
        ("read_again", ["read"]),
    ]:
        log(f"{name} ...")
        load_before = os.getloadavg()[0]
        phases[name] = {**_phase(hub, argv, events), "load_1min": [load_before, os.getloadavg()[0]]}
        log(f"{name}: {phases[name]['rate']:,.0f} ev/s in {phases[name]['seconds']:,.1f} s")
    read_rate = (phases["read"]["rate"] + phases["read_again"]["rate"]) / 2
    return {
        "workers": workers,
        "phases": phases,
        "read_rate": read_rate,
        "audit_vs_read": {name: phases[name]["rate"] / read_rate for name in phases if "audit" in name},
        "speedup": phases[f"audit_{workers}"]["rate"] / phases["audit_1"]["rate"],
    }


def _phase(hub: Hub, argv: list[str], events: int) -> dict[str, Any]:
    """One timed phase in its own process (``python -m bench _audit-phase``), RSS sampled."""
    command = [sys.executable, "-m", "bench", "_audit-phase", str(hub.home), hub.settings.bootstrap, *argv]
    proc = subprocess.Popen(command, env=hub_env(hub), stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    peak = 0
    while proc.poll() is None:
        time.sleep(SAMPLE_EVERY_S)
        current, highest = family_rss_kb(proc.pid)
        peak = max(peak, highest)
        samples.append({"t": round(time.monotonic() - started, 1), "rss_mib": round(current / 1024, 1)})
    if proc.returncode != 0 or proc.stdout is None:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
    done: dict[str, Any] = json.loads(proc.stdout.read())
    if done["events"] != events or done.get("findings"):
        raise RuntimeError(f"{' '.join(argv)}: {done['events']:,} of {events:,} events, {done}")
    return {**done, "rate": events / done["seconds"], "peak_rss_mib": peak / 1024, "samples": samples}


def run_phase(home: Path, bootstrap: str, argv: list[str]) -> None:
    """The process of one phase: a JSON line of how long it took and what it saw, on stdout."""
    from services.audit import audit_verify

    hub = Hub(settings(home, bootstrap))
    topic = hub.governance.dataset(DATASET).topic
    started = time.perf_counter()
    if argv[0] == "read":
        count = sum(len(batch) for batch in read_batches(hub.kafka, topic))
        done: dict[str, Any] = {"events": count, "seconds": time.perf_counter() - started}
    else:
        report = audit_verify(hub.kafka, hub.governance, workers=int(argv[1]), every_event=False)
        seconds = time.perf_counter() - started
        summary = report.topics.get(topic)
        done = {
            "events": summary.verified if summary else 0,
            "seconds": seconds,
            "findings": len(report.findings),
            "records_read": sum(s.records for s in report.topics.values()),
        }
    done["rss_mib_at_end"] = rss_kb(os.getpid()) / 1024
    done["cpu_s"] = _cpu_seconds()
    hub.close()
    print(json.dumps(done))


def _cpu_seconds() -> float:
    """CPU time (user and system) of this process and of the workers it waited for: on a shared machine,
    what a phase cost, whatever share of the CPUs it was given."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
