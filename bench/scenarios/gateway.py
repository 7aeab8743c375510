"""(g) The agency's HTTPS ingest gateway (batch endpoint) against a bare confluent-kafka producer.

Setup (not timed): the owner's connected site (as in scenario f: its own key, mutual TLS, the hub's key
service as a ``sharehub serve`` process) and ``sharehub serve gateway`` run at that site, each in its own
process on 127.0.0.1. Hub: ``POST /v1/datasets/party-members/records`` with ``BATCH`` JSON records per request
and a new Idempotency-Key each, one request after another, from one client: the gateway validates, seals
with the site's key (subject keys from the key service), signs, produces exactly once (its journal) and
answers when the broker acknowledged all. Baseline: the same number of messages of the same sizes, random
bytes, produced by confluent-kafka with the same settings (as in scenario b). Latency: requests of
``PACED_BATCH`` records at ``PACED_RATE`` per second (open loop, from when each was due) against the raw
producer sending and flushing the same number of messages at the same rate.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx2

from bench import records
from bench.environment import DATASET, hub_env, new_hub
from bench.load import gateway, latency_summary, paced, paced_posts, query_api
from bench.model import Config, Row, ScenarioResult
from bench.scenarios.publish import WARM_UP, RawProduce
from bench.scenarios.site_publish import connected_site
from bench.stats import interleaved
from services.hub import Hub

#: Records per request in the throughput rows (the gateway takes up to 10,000).
BATCH = 500
#: The latency rows: requests of this many records, this many per second.
PACED_BATCH = 20
PACED_RATE = 5.0


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    hub = new_hub(config.workdir / "gateway", config.bootstrap)
    helpers: dict[str, int] = {}
    try:
        with query_api(hub_env(hub), hub.home / "api.log") as api:
            site = connected_site(hub, config.bootstrap, api.base)
            env = {k: v for k, v in hub_env(hub).items() if not k.startswith("SHAREHUB_")}
            at_site = {**env, "SHAREHUB_HOME": str(site)}
            unlimited = ["--rate", "10000", "--burst", "10000"]  # its per-agency limit is not what is timed
            with gateway(at_site, hub.home / "gateway.log", unlimited) as served:
                token = (site / "credential").read_text().strip()
                measured, notes = _measure(hub, config, served.base, token, served.tls)
            helpers = {"gateway": served.peak_rss_kb, "key service": api.peak_rss_kb}
    finally:
        hub.close()
    return ScenarioResult(
        id="g",
        title="HTTPS ingest gateway at a site (batch endpoint) vs raw produce",
        hub=f"POST .../records, {BATCH} records a request: validate, seal, sign, produce exactly once",
        baseline="confluent_kafka.Producer.produce of random bytes of the same sizes, then flush",
        reps=config.reps,
        rows=[
            Row("gateway vs produce", "throughput", "gateway_s", "produce_s", config.events),
            Row(f"p50 at {PACED_RATE:.0f} req/s x {PACED_BATCH}", "latency", "p50_ms", "raw_p50_ms"),
            Row(f"p99 at {PACED_RATE:.0f} req/s x {PACED_BATCH}", "latency", "p99_ms", "raw_p99_ms"),
        ],
        measurements=measured,
        notes=notes,
        helper_rss_kb=helpers,
    )


def _measure(
    hub: Hub, config: Config, base: str, token: str, tls: ssl.SSLContext
) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    n = config.events
    url = f"{base}/v1/datasets/{DATASET}/records"
    batches = [records.members(n, config.seed, start_index=rep * n) for rep in range(config.reps)]
    raw = RawProduce.of(hub, config, (config.reps + 1) * n)
    client = httpx2.Client(verify=tls, timeout=120, headers={"Authorization": f"Bearer {token}"})
    post = _poster(client, url)
    post("warm-up", records.members(WARM_UP, config.seed, start_index=config.reps * n))
    paced_count = max(int(PACED_RATE * (4 if config.quick else 20)), 10)
    paced_start = (config.reps + 2) * n
    bodies = [
        json.dumps(
            {"records": records.members(PACED_BATCH, config.seed, paced_start + i * PACED_BATCH)}
        ).encode()
        for i in range(paced_count)
    ]

    def hub_side(rep: int) -> dict[str, float]:
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            post(f"rep-{rep}-{i}", batches[rep][i : i + BATCH])
        elapsed = time.perf_counter() - started
        if rep != config.reps - 1:
            return {"gateway_s": elapsed}
        auth = {"Authorization": f"Bearer {token}"}
        latencies = paced_posts(paced_count, PACED_RATE, url, bodies, auth, tls)
        return {"gateway_s": elapsed, **latency_summary(latencies)}

    def baseline_side(rep: int) -> dict[str, float]:
        measured = raw.side(rep)
        if rep != config.reps - 1:
            return measured
        chunk = raw.payloads[:PACED_BATCH]

        def produce(_i: int) -> None:
            raw.producer.send_all(chunk)

        latencies = paced(paced_count, PACED_RATE, produce)
        return {**measured, **latency_summary(latencies, "raw_")}

    try:
        measured = interleaved(config.reps, hub_side, baseline_side)
    finally:
        client.close()
    notes = [
        *raw.notes,
        f"Throughput: {BATCH} records a request, one request at a time from one client over HTTPS.",
        f"Latency: {paced_count} requests of {PACED_BATCH} records at {PACED_RATE:.0f}/s, open loop, in the"
        " last repetition; the baseline produces and flushes as many messages at the same rate.",
        "The gateway, the key service and the benchmark share the machine's 2 cores.",
    ]
    return measured, notes


def _poster(client: httpx2.Client, url: str) -> Callable[[str, list[dict[str, Any]]], None]:
    def post(key: str, batch: list[dict[str, Any]]) -> None:
        answer = client.post(url, json={"records": batch}, headers={"Idempotency-Key": key})
        if answer.status_code != 200 or answer.json()["published"] != len(batch):
            raise RuntimeError(f"the gateway answered {answer.status_code}: {answer.text[:300]}")

    return post
