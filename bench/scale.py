"""The scale run: N synthetic party members through publish → projection → query, memory sampled.

1. **Publish**: ``generate_party_members`` streams straight into :class:`connectors.publisher.Publisher`
   (validate → seal → produce, acks=all); the rate includes generating the records.
2. **Projection**: the real worker (``sharehub project``, faust-streaming) in its own process, reading the
   topic from the start. Its RSS is sampled every few seconds with the events its read models hold, until
   every read model's stored positions reach the topic's end.
3. **Query**: the real API (``sharehub serve``, uvicorn) over the filled read model, at a fixed rate, random
   keys over all N members; then, at the same rate, a bare SQLAlchemy read of other random members and the
   broker's round trip of one message (acks=all), the two parts of a query's latency it does not add.

The read models are SQLite files, or with ``--postgres`` a schema per consumer in a PostgreSQL database
(:func:`bench.environment.postgres`: the one SHAREHUB_BENCH_POSTGRES_URL names, or one started for the run),
whose schemas of an earlier run are dropped first. Results go to ``bench/results/scale.json`` and
``scale.png`` (``scale_postgresql.json`` and ``scale_postgresql.png`` on PostgreSQL), and ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

from bench import charts, machine, report
from bench.environment import (
    BENCH_HOME,
    DATASET,
    OWNER,
    SCALE_KAFKA_PORT,
    broker,
    hub_env,
    new_hub,
    postgres,
)
from bench.kafka_io import RoundTrips, end_offsets
from bench.load import (
    BENCH_PURPOSE,
    CLIENT_CONNECTIONS,
    LATE_MS,
    collector_pauses,
    command_line,
    cpu_seconds,
    family,
    family_rss_kb,
    late_runs,
    latency_summary,
    paced,
    paced_gets,
    peak_rss_kb,
    projection_worker,
    query_api,
    rss_kb,
    stop_group,
)
from bench.model import save
from bench.read_models import (
    bare_engine,
    described,
    disk_bytes,
    drop_schemas,
    events_projected,
    server_settings,
    stored_bytes,
)
from projections.worker import BATCH_SIZE
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.collector import freeze_startup_objects
from sharehub.kafka import ensure_topics
from tooling.synthetic import generate_party_members

SAMPLE_EVERY_S = 5.0
PROGRESS_EVERY = 100_000
CONSUMER = "dongthap-ppc"


def notes(read_models: dict[str, Any]) -> list[str]:
    """What the report says of how the run was made, true of the backend that ran (``read_models``, from
    :func:`bench.read_models.server_settings`)."""
    if read_models["backend"] == "postgresql":
        each = f"a schema of its own in one database of {described(read_models)}"
    else:
        each = "a SQLite file in WAL mode with synchronous=FULL"
    return [
        "Phases run one after the other on the same 2-core machine as the broker: publishing is finished "
        "before the worker starts, so the projection rate is the worker catching up on a full topic.",
        "The projection writes every event to both party-members read models (Dong Thap and Lang Son), each "
        f"{each}, one transaction per batch of up to {BATCH_SIZE:,} events.",
        "Query latency is measured from when each request was due at the fixed rate (no coordinated "
        "omission), once the projection's writes have reached the disk (os.sync()). The bare read and the "
        "broker's round trips follow the API's requests, at the same rate; the bare read asks for other "
        "random members than the API did. Before the requests, the client (the process that published) "
        "freezes what it holds out of its garbage collector's sight, as the hub's processes do.",
    ]


def log(message: str) -> None:
    print(f"[scale {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def publish(hub: Hub, members: int, seed: int) -> dict[str, Any]:
    """Stream the generator through ``publish_records``, the batched path ``sharehub publish`` takes."""
    publisher = hub.publisher(OWNER, DATASET)
    samples: list[dict[str, float]] = []
    started = time.monotonic()

    def counted() -> Iterator[dict[str, Any]]:
        for i, record in enumerate(generate_party_members(members, seed), start=1):
            yield record
            if i % PROGRESS_EVERY == 0:
                elapsed = time.monotonic() - started
                rss = rss_kb(os.getpid()) / 1024
                samples.append({"t": round(elapsed, 1), "events": i, "rss_mib": round(rss, 1)})
                log(f"handed over {i:,} in {elapsed:,.0f} s ({i / elapsed:,.0f} ev/s), RSS {rss:.0f} MiB")

    report = publisher.publish_records(counted())
    publisher.close()
    seconds = time.monotonic() - started
    if report.rejected or report.published != members:
        raise RuntimeError(
            f"published {report.published:,} of {members:,}; first refusal {report.rejected[:1]}"
        )
    return {
        "events": members,
        "seconds": round(seconds, 1),
        "rate": members / seconds,
        "peak_rss_mib": peak_rss_kb(os.getpid()) / 1024,
        "samples": samples,
    }


def project(hub: Hub, deadline_s: float) -> dict[str, Any]:
    topic = hub.governance.dataset(DATASET).topic
    total = sum(end_offsets(hub.kafka, topic).values())
    consumers = hub.consumers()
    worker_log = hub.home / "projector.log"
    proc = projection_worker(hub_env(hub), worker_log)
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    first_event_at: float | None = None
    peak = 0
    try:
        while True:
            time.sleep(SAMPLE_EVERY_S)
            elapsed = time.monotonic() - started
            if proc.poll() is not None:
                raise RuntimeError(f"the projection worker exited with {proc.returncode}; see {worker_log}")
            done = events_projected(hub, consumers, topic)
            current, highest = family_rss_kb(proc.pid)  # the worker and its engine process
            rss = current / 1024
            peak = max(peak, highest)
            samples.append({"t": round(elapsed, 1), "events": done, "rss_mib": round(rss, 1)})
            if done and first_event_at is None:
                first_event_at = elapsed - SAMPLE_EVERY_S / 2
            if len(samples) % 12 == 0 or done >= total:
                log(f"projected {done:,}/{total:,} in {elapsed:,.0f} s, worker RSS {rss:.0f} MiB")
            if done >= total:
                break
            if elapsed > deadline_s:
                raise RuntimeError(
                    f"projection did not finish within {deadline_s:.0f} s ({done:,}/{total:,})"
                )
        cpu = worker_cpu_seconds(proc.pid)
    finally:
        peak = max(peak, family_rss_kb(proc.pid)[1])
        stop_group(proc)
    seconds = samples[-1]["t"]
    steady = seconds - (first_event_at or 0.0)
    return {
        "events": total,
        "seconds": seconds,
        "rate": total / seconds,
        "rate_after_start": total / steady if steady > 0 else 0.0,
        "start_s": round(first_event_at or 0.0, 1),
        "peak_rss_mib": peak / 1024,
        "cpu_us_per_event": {role: round(used * 1e6 / total, 1) for role, used in cpu.items()},
        "samples": samples,
        "consumers": consumers,
    }


def worker_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds the projection worker ``pid`` (``sharehub project``) has used, per process that does its
    work: ``worker``, the faust app that takes batches from Kafka; ``engine``, the process that opens them
    and writes the read models. Its supervisor and multiprocessing's resource tracker only wait. A role no
    process was found in is left out (the report then says nothing of the CPU), never counted as none."""
    used: dict[str, float] = {}
    for member in family(pid):
        command = command_line(member)
        role = "engine" if "spawn_main" in command else "worker" if " project run" in command else None
        if role is not None:
            used[role] = used.get(role, 0.0) + cpu_seconds(member)
    return used


def query(hub: Hub, members: int, requests: int, rate: float, seed: int, bootstrap: str) -> dict[str, Any]:
    """The API's latencies; then, at the same rate, a bare read of other random members (none of the pages
    the API's requests brought into memory favours it), and the broker's round trip of one message
    acknowledged by every replica (what each answer waits for its access record)."""
    import httpx2
    from sqlalchemy import text

    token = issue_credential(hub, CONSUMER)
    #: When each series began (seconds since the epoch), to line its late answers up with the others'.
    started: dict[str, float] = {}
    keys = _random_members(members, requests, seed)
    bare_keys = _random_members(members, requests, seed + 1)
    path = f"/v1/consumers/{CONSUMER}/datasets/{DATASET}/records/"
    auth = {"Authorization": f"Bearer {token}"}
    with (
        query_api(hub_env(hub), hub.home / "api.log") as server,
        httpx2.Client(base_url=server.base, headers=auth, verify=server.tls) as client,
    ):
        # The client published every member in this process: what survives of that leaves the collector's
        # sight (as the hub's own processes do once started), or a full collection walks it all in the
        # middle of the requests (162 ms pauses at 5,000,000 members), timed as the API's latency.
        freeze_startup_objects()
        # Warm-up: connection, caches.
        paced_gets(min(50, requests), rate, server.base + path, keys, auth, server.tls)
        started["api"] = time.time()
        with collector_pauses() as pauses:
            api = paced_gets(
                requests, rate, server.base + path, keys, auth, server.tls, connect_first=CLIENT_CONNECTIONS
            )
        page = client.get(
            f"/v1/consumers/{CONSUMER}/datasets/{DATASET}/records", params={"limit": 1000, **BENCH_PURPOSE}
        )
        page.raise_for_status()
    engine, table = bare_engine(hub, CONSUMER)
    statement = text(f"SELECT fields FROM {table} WHERE dataset = :d AND record_key = :k")

    def read(i: int) -> None:
        with engine.connect() as conn:  # a pooled connection per read, as the API's store takes
            found = conn.execute(statement, {"d": DATASET, "k": bare_keys[i]}).scalar_one_or_none()
        if found is None:
            raise RuntimeError(f"{bare_keys[i]} is not in the read model")

    started["bare_sqlalchemy"] = time.time()
    bare = paced(requests, rate, read)
    round_trip_topic = f"{hub.governance.topic_prefix}.bench.round-trips"
    ensure_topics(bootstrap, [(round_trip_topic, 1)])
    one_at_a_time = RoundTrips(bootstrap, round_trip_topic)
    try:
        one_at_a_time.send()  # the connection and the topic's metadata, not timed
        started["broker_round_trip"] = time.time()
        round_trips = paced(requests, rate, one_at_a_time.send)
    finally:
        one_at_a_time.close()
    with engine.connect() as conn:
        rows = int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    engine.dispose()
    series_latencies = {"api": api, "bare_sqlalchemy": bare, "broker_round_trip": round_trips}
    return {
        "requests": requests,
        "rate": rate,
        "rows": rows,
        "api": latency_summary(api),
        "bare_sqlalchemy": latency_summary(bare),
        "broker_round_trip": latency_summary(round_trips),
        "api_server_peak_rss_mib": server.peak_rss_kb / 1024,
        "client_collections": {"count": len(pauses), "longest_ms": max(pauses, default=0.0)},
        "read_model_bytes": stored_bytes(hub, CONSUMER),
        "late": {
            "over_ms": LATE_MS,
            **{
                series: {"started_at": started[series], "runs": late_runs(latencies, rate)}
                for series, latencies in series_latencies.items()
            },
        },
    }


def _random_members(members: int, count: int, seed: int) -> list[str]:
    """``count`` keys of members drawn at random (with repeats) from the ``members`` published."""
    return [f"PM{n:010d}" for n in random.Random(seed).choices(range(1, members + 1), k=count)]


def main(argv: list[str], command: str) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description="The scale run.")
    parser.add_argument("--members", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=384)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--deadline-minutes", type=float, default=240.0, help="give up projecting after this")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="PostgreSQL read models: SHAREHUB_BENCH_POSTGRES_URL, or a server started for the run",
    )
    parser.add_argument("--note", action="append", default=[], help="a line to add to the report's notes")
    parser.add_argument(
        "--keep", action="store_true", help="keep the read models (files or schemas) and topics afterwards"
    )
    args = parser.parse_args(argv)
    if args.members < 1 or args.requests < 1 or args.rate <= 0:
        parser.error("--members and --requests must be positive, --rate more than 0")
    with postgres() if args.postgres else nullcontext(None) as read_model_url:
        result = run(args, command, read_model_url)
    files = report.SCALE_RUNS[result["read_models"]["backend"]]
    save(files.json, result)
    charts.scale_chart(result, files.chart)
    log(f"wrote {files.json}, {report.write_report()} and {files.chart}")


def run(args: argparse.Namespace, command: str, read_model_url: str | None) -> dict[str, Any]:
    """Publish, project and query on a fresh hub whose read models are SQLite files, or where
    ``read_model_url`` says."""
    home = BENCH_HOME / "scale"
    result: dict[str, Any] = {**machine.run_header(command), "members": args.members}
    wall = time.monotonic()
    try:
        with broker(home / "kafka-home", SCALE_KAFKA_PORT) as bootstrap:
            hub = new_hub(home / "hub", bootstrap, read_model_url)
            read_models = (hub.settings.read_model_url_template, hub.consumers())
            drop_schemas(*read_models)  # what an earlier run left in the database
            try:
                result["read_models"] = server_settings(hub)
                result |= phases(hub, args, bootstrap)
            finally:
                hub.close()
                if not args.keep:
                    drop_schemas(*read_models)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - wall, 1)
    result["notes"] = notes(result["read_models"]) + args.note
    return result


def phases(hub: Hub, args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    """The three phases, one after the other, and what the read models take on disk at the end
    (``bootstrap``: the broker's address with its super user's login, which times the broker's round
    trips on a topic of its own)."""
    log(f"publishing {args.members:,} party members to {hub.governance.dataset(DATASET).topic}")
    published = publish(hub, args.members, args.seed)
    log(f"publish: {published['rate']:,.0f} ev/s; starting the projection worker")
    projected = project(hub, args.deadline_minutes * 60)
    log(f"projection: {projected['rate']:,.0f} ev/s; querying")
    os.sync()  # the projection's writes reach the disk now, not while requests are measured
    queried = query(hub, args.members, args.requests, args.rate, args.seed, bootstrap)
    return {
        "publish": published,
        "projection": projected,
        "query": queried,
        "disk": {"read_models_bytes": disk_bytes(hub)},
    }
