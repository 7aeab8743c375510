"""One soak run: a hub of its own on a broker of its own, the real projection worker and query API, the two
open-loop loads, a sample every interval, then the counts at rest and the verdict."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import machine
from bench.chaos.load import DATASET, count
from bench.environment import broker, hub_env, new_hub
from bench.load import projection_worker, query_api, stop_group
from bench.soak.verdict import Limits, ReadModelFinding, Totals, Verdict, judge
from bench.soak.watch import LoadProcess, Watch, lag, supervised_children
from bench.stats import percentile
from services.audit import audit_verify
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub import pki
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafka

#: The consumer whose read model the query load reads (a page of 20 records, as make chaos's queries).
QUERY_CONSUMER = "dongthap-ppc"
#: After the loads, how long to wait for the read models to reach the log's end before counting anyway.
DRAIN_WAIT_S = 900.0


@dataclass(frozen=True)
class Asked:
    seconds: float
    events_per_s: float
    queries_per_s: float
    sample_s: float
    kafka_port: int
    home: Path


def log(message: str) -> None:
    print(f"[soak {dt.datetime.now(dt.UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run(
    asked: Asked, limits: Limits, loaded: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], Verdict]:
    """Run the soak ``asked`` for: its verdict, and the samples, totals and verdict as a JSON-able result.
    ``loaded`` is given the result so far (the samples, no verdict: ``ok`` None) once the loads ended and
    the read models drained, before the counts at rest, which replay the whole log and take longer than
    the load itself at full rates."""
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "code": machine.code_version(),
        "load_average_before": os.getloadavg(),
        "asked": {
            "seconds": asked.seconds,
            "events_per_s": asked.events_per_s,
            "queries_per_s": asked.queries_per_s,
        },
        "limits": asdict(limits),
    }
    with broker(asked.home / "kafka-home", asked.kafka_port) as bootstrap:
        hub = new_hub(asked.home / "hub", bootstrap)
        try:
            watch, drained = _load(hub, asked)
            result["load_average_after"] = os.getloadavg()
            loaded(result | _observed(watch) | {"drained_s": drained, "ok": None})
            totals = _count(hub, asked, watch, drained)
        finally:
            hub.close()
    verdict = judge(watch.samples, totals, limits)
    result.update(
        _observed(watch), totals=asdict(totals), checks=[asdict(c) for c in verdict.checks], ok=verdict.ok
    )
    return result, verdict


def _observed(watch: Watch) -> dict[str, Any]:
    """What the run showed while the loads ran."""
    return {
        "samples": [asdict(s) for s in watch.samples],
        "query_latency_ms": {
            "p50": _pct(watch.latencies_ms, 50),
            "p99": _pct(watch.latencies_ms, 99),
            "max": max(watch.latencies_ms, default=0.0),
        },
        #: Why queries had no answer (the exception's name → how many).
        "query_failures": dict(watch.query_failures),
    }


def _pct(values: list[float], q: float) -> float:
    return round(percentile(values, q), 2) if values else 0.0


def _load(hub: Hub, asked: Asked) -> tuple[Watch, float | None]:
    """Worker, API and loads, sampled until the loads end; then how long the read models took to drain."""
    env = hub_env(hub)
    topic = hub.governance.dataset(DATASET).topic
    consumers = hub.consumers()
    with contextlib.ExitStack() as running:
        worker = projection_worker(env, hub.home / "projector.log")
        running.callback(stop_group, worker)
        server = running.enter_context(query_api(env, hub.home / "api.log"))
        token = issue_credential(hub, QUERY_CONSUMER)
        ca_file = pki.HubCA.paths(pki.tls_dir(hub.home))[0]
        url = f"{server.base}/v1/consumers/{QUERY_CONSUMER}/datasets/{DATASET}/records"
        seconds = str(asked.seconds)
        publishing = LoadProcess.start(
            "publish load",
            [sys.executable, "-m", "bench.soak.publish_load", str(asked.events_per_s), seconds],
            env,
            hub.home / "publish-load.log",
        )
        running.callback(stop_group, publishing.proc)
        querying = LoadProcess.start(
            "query load",
            [
                sys.executable,
                "-m",
                "bench.soak.query_load",
                url,
                str(ca_file),
                str(asked.queries_per_s),
                seconds,
            ],
            env | {"SOAK_QUERY_TOKEN": token},
            hub.home / "query-load.log",
        )
        running.callback(stop_group, querying.proc)
        watch = Watch(
            hub,
            topic,
            consumers,
            publishing,
            querying,
            {
                "projection worker": worker.pid,
                "query API": server.proc.pid,
                "publish load": publishing.proc.pid,
                "query load": querying.proc.pid,
            },
            worker_supervisor=worker.pid,
            cpu_only={"broker": pid} if (pid := broker_pid(asked)) else {},
        )
        log(
            f"{asked.seconds:,.0f} s at {asked.events_per_s:,.0f} events/s and "
            f"{asked.queries_per_s:,.0f} queries/s; logs in {hub.home}"
        )
        watch.start()
        _watch_until_done(watch, asked)
        for load in (publishing, querying):
            status = load.finish(timeout=60)
            if status != 0:
                raise SystemExit(f"soak: the {load.name} ended with {status}; see {hub.home}")
        watch.take_the_rest()
        drained = _drain(watch)
    return watch, drained


def broker_pid(asked: Asked) -> int | None:
    """The soak's own broker's process (none when SHAREHUB_KAFKA_BOOTSTRAP named another broker)."""
    if os.environ.get("SHAREHUB_KAFKA_BOOTSTRAP"):
        return None
    return LocalKafka(asked.home / "kafka-home" / "broker", Settings().cache_dir, asked.kafka_port).pid()


def _watch_until_done(watch: Watch, asked: Asked) -> None:
    next_sample = watch.started + asked.sample_s
    while watch.loads_running():
        time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
        if time.monotonic() >= next_sample:
            log(_line(watch.sample()))
            next_sample += asked.sample_s


def _line(s: Any) -> str:
    lags = "/".join(f"{n:,}" for n in s.lag.values())
    rss = ", ".join(
        f"{name} {cpu:.0f}%" + (f" {s.rss_mib[name]:.0f} MiB" if name in s.rss_mib else "")
        for name, cpu in s.cpu_percent.items()
    )
    return (
        f"{s.t_s:,.0f} s: {s.events_per_s:,.0f} ev/s (behind {s.publish_behind_s:.1f} s), "
        f"{s.queries_per_s:,.0f} q/s, p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f} ms, errors {s.query_errors}, "
        f"lag {lags}; CPU, RSS: {rss}"
    )


def _drain(watch: Watch) -> float | None:
    """Seconds until every read model is at the log's end, or None if not within :data:`DRAIN_WAIT_S`."""
    started = time.monotonic()
    behind: dict[str, int] = {}
    while time.monotonic() - started < DRAIN_WAIT_S:
        watch.workers_seen.update(supervised_children(watch.worker_supervisor))
        behind = lag(watch.hub, watch.topic, watch.consumers)
        if not any(behind.values()):
            drained = time.monotonic() - started
            log(f"every read model at the log's end {drained:.1f} s after the loads")
            return drained
        time.sleep(1.0)
    log(f"read models still behind after {DRAIN_WAIT_S:.0f} s: {behind}")
    return None


def _count(hub: Hub, asked: Asked, watch: Watch, drained: float | None) -> Totals:
    acknowledged = {
        f"PM{index + 1:010d}" for first, n in watch.acknowledged for index in range(first, first + n)
    }
    log(f"counting {len(acknowledged):,} acknowledged events in each read model, replaying the log")
    findings = []
    for consumer in watch.consumers:
        c = count(hub, consumer, acknowledged)
        findings.append(ReadModelFinding(consumer, c.found, c.lost, c.duplicates, c.hash_matches_replay))
    log("audit verify of the whole log")
    audited = audit_verify(hub.kafka, hub.governance, quarantine=True)
    return Totals(
        seconds=asked.seconds,
        publish_seconds=watch.publishing.seconds or 0.0,
        query_seconds=watch.querying.seconds or 0.0,
        events_per_s_asked=asked.events_per_s,
        queries_per_s_asked=asked.queries_per_s,
        acknowledged=len(acknowledged),
        failed_batches=watch.failed_batches,
        queries=dict(watch.queries),
        worker_restarts=watch.worker_restarts,
        read_models=findings,
        audit_findings=len(audited.findings),
        drained_s=drained,
    )


def table(verdict: Verdict) -> str:
    rows = [f"| {c.name} | {'pass' if c.ok else 'FAIL'} | {c.detail} |" for c in verdict.checks]
    return "\n".join(["| check | | measured |", "|---|---|---|", *rows])
