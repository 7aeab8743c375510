"""(d) The query API over HTTP against a bare SQLAlchemy read of the same rows, at the same fixed rate.

Setup (not timed): party members published and projected into the Dong Thap committee's SQLite read
model, a credential issued to it, and ``sharehub serve`` (FastAPI on uvicorn) started in its own process
on 127.0.0.1. Hub: GET ``/v1/consumers/dongthap-ppc/datasets/party-members/records/{key}`` for random
members over keep-alive aiohttp connections (authentication, agreement check, read, access log, JSON).
Baseline: ``SELECT fields FROM records WHERE dataset = ? AND record_key = ?`` with SQLAlchemy on the same
file. Both ask for the same keys at the same fixed rate from one open-loop event loop
(:mod:`bench.load`); latency counts from when each request was due. One unmeasured repetition of each
side comes first. Each hub repetition opens its client's connections (TLS handshakes) before its clock
starts, so that it measures requests over kept-alive connections, as a consumer's client makes them.
"""

from __future__ import annotations

import os
import random
import statistics
import time

from sqlalchemy import create_engine, text

from bench import records
from bench.environment import DATASET, OWNER, hub_env, new_hub
from bench.kafka_io import read_batches
from bench.load import (
    CLIENT_CONNECTIONS,
    family_cpu_seconds,
    latency_summary,
    paced,
    paced_gets,
    query_api,
)
from bench.model import Config, Row, ScenarioResult
from bench.stats import interleaved
from projections.projector import LogMessage, Projector
from services.governance_bootstrap import issue_credential
from services.hub import Hub

CONSUMER = "dongthap-ppc"


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    hub = new_hub(config.workdir / "query", config.bootstrap)
    server_rss = 0
    try:
        n = config.read_model_rows
        members = records.members(n, config.seed)
        publisher = hub.publisher(OWNER, DATASET)
        publisher.publish_records(members)
        publisher.close()
        _fill(hub, hub.kafka)
        token = issue_credential(hub, CONSUMER)
        rng = random.Random(config.seed)
        keys = [str(m["member_id"]) for m in rng.choices(members, k=config.requests)]
        path = f"/v1/consumers/{CONSUMER}/datasets/{DATASET}/records/"
        db = hub.home / "readmodels" / f"{CONSUMER}.db"
        engine = create_engine(f"sqlite:///{db}")
        statement = text("SELECT fields FROM records WHERE dataset = :d AND record_key = :k")
        auth = {"Authorization": f"Bearer {token}"}
        env = hub_env(hub) | {"SHAREHUB_API_WORKERS": str(config.api_workers)}
        with query_api(env, hub.home / "api.log") as server:

            def read(i: int) -> None:
                # A pooled connection per read, as the API's store takes one per request.
                with engine.connect() as conn:
                    found = conn.execute(statement, {"d": DATASET, "k": keys[i]}).scalar_one_or_none()
                if found is None:
                    raise RuntimeError(f"{keys[i]} is not in the read model")

            def hub_side(_rep: int) -> dict[str, float]:
                server_before, client_before = family_cpu_seconds(server.proc.pid), time.process_time()
                latencies = paced_gets(
                    config.requests,
                    config.request_rate,
                    server.base + path,
                    keys,
                    auth,
                    server.tls,
                    connect_first=CLIENT_CONNECTIONS,
                )
                server_spent = family_cpu_seconds(server.proc.pid) - server_before
                client_spent = time.process_time() - client_before
                return {
                    **latency_summary(latencies),
                    "server_cpu_ms": 1000 * server_spent / config.requests,
                    "client_cpu_ms": 1000 * client_spent / config.requests,
                }

            def baseline_side(_rep: int) -> dict[str, float]:
                return latency_summary(paced(config.requests, config.request_rate, read))

            os.sync()  # the setup's writes reach the disk now, not while requests are measured
            # Warm-up, not measured: a whole repetition of each side at the same rate (connection, caches,
            # and the broker's JIT for the access-log writes; the first seconds of a fresh broker are slower).
            hub_side(0)
            baseline_side(0)
            measured = interleaved(config.reps, hub_side, baseline_side)
        server_rss = server.peak_rss_kb
        engine.dispose()
    finally:
        hub.close()
    return ScenarioResult(
        id="d",
        title=f"Query API (uvicorn, HTTP) vs bare SQLAlchemy read, {config.request_rate:.0f} requests/s",
        hub="GET one record through sharehub serve (FastAPI + uvicorn), open-loop aiohttp client",
        baseline="SQLAlchemy SELECT of the same row from the same SQLite file",
        reps=config.reps,
        rows=[
            Row("p50 latency", "latency", "p50_ms", "p50_ms"),
            Row("p99 latency", "latency", "p99_ms", "p99_ms"),
        ],
        measurements=measured,
        notes=[
            f"{config.requests:,} requests per repetition at {config.request_rate:.0f}/s over a read model "
            f"of {n:,} members, after one unmeasured repetition of each side; each hub repetition opens "
            f"its {CLIENT_CONNECTIONS} connections before its clock starts; the client, the server "
            f"({config.api_workers} process{'es' if config.api_workers > 1 else ''}) and the broker share "
            "the machine's 2 cores.",
            _cpu_note(measured["hub"], config.request_rate),
        ],
        helper_rss_kb={"query API server": server_rss},
    )


def _fill(hub: Hub, bootstrap: str) -> None:
    """Project the topic into every read model with the hub's Projector (untimed setup)."""
    stores = {c: hub.store(c) for c in hub.consumers()}
    projector = Projector(hub.governance, hub.keys, stores)
    topic = hub.governance.dataset(DATASET).topic
    for batch in read_batches(bootstrap, topic):
        messages = [LogMessage.of(m) for m in batch]
        decision = projector.decide(messages)
        projector.commit(decision)


def _cpu_note(hub: dict[str, list[float]], rate: float) -> str:
    """What each request cost in CPU, on the server and in the client (medians over the repetitions), the
    opening of the repetition's connections (TLS handshakes) shared among its requests."""
    server, client = statistics.median(hub["server_cpu_ms"]), statistics.median(hub["client_cpu_ms"])
    return (
        f"CPU per request (medians; from /proc, the opening of the connections included): the server "
        f"{server:.2f} ms, the client {client:.2f} ms. At {rate:.0f} requests/s the server's processes use "
        f"{server * rate / 1000:.0%} of a core and the client {client * rate / 1000:.0%}."
    )
