"""``python -m bench profile``: where publishing and the projection worker spend their time, as py-spy flame
graphs.

Publishing: a process that publishes ``--events`` new party members with the hub's Publisher (the path
``sharehub publish`` takes: validation, subject keys, sealing, batch signatures, produce, acknowledgements),
in chunks of 10,000, recorded by py-spy from its start to its end. Projection: the real ``sharehub project
run`` (the faust worker and its engine process, ``--subprocesses``) over those events into the bench
governance's two read models, recorded until every read model holds them all, then stopped.

The SVGs go to ``bench/results/`` (``flame-publish.svg``, ``flame-worker.svg``) with a JSON beside them
naming the code version, the machine and the command: a later change to either path is judged against a
profile made the same way. py-spy is not a dependency of the hub: it is run with ``uv tool run --from
py-spy==0.4.3`` (``SHAREHUB_PY_SPY`` names another executable).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import machine
from bench.environment import BENCH_HOME, DATASET, OWNER, broker, hub_env, new_hub
from bench.model import save
from bench.records import members
from services.hub import Hub
from sharehub.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
FLAME_JSON = RESULTS / "flame.json"
#: What each graph is read for: (stage, the frame whose samples it counts).
STAGES = {
    "flame-publish.svg": [
        ("publish_records, in all", "Publisher.publish_records"),
        ("validation (JSON to Avro, quality rules)", "Publisher._valid"),
        ("subject keys (made and looked up)", "LocalKeyStore.ensure_subject_keys"),
        ("sealing (seal_many: encode, encrypt, chain, sign)", "DatasetCodec.seal_many"),
        ("batch signatures", "sign_batch"),
        ("the bench's own test data (not the hub's cost)", "members"),
    ],
    "flame-worker.svg": [
        ("engine: judge a batch (verify, open, decrypt, terms)", "Projector.decide"),
        ("engine: open (signatures, chains, decryption)", "DatasetCodec.open_many"),
        ("engine: write the read models", "Projector.commit"),
        ("worker: faust's fetcher", "Fetcher._fetcher"),
        ("worker: taking a batch (parse, hand to the engine)", "ProjectionWorker.take_batch"),
        ("worker: draining the consumer, a batch at a time", "BatchConsumer._drain_messages"),
    ],
}
CHUNK = 10_000
#: Samples a second (py-spy's default is 100).
RATE = 100
_UV = Path(__file__).resolve().parents[1] / ".uv" / "bin" / "uv"


def py_spy() -> list[str]:
    named = os.environ.get("SHAREHUB_PY_SPY")
    if named:
        return [named]
    uv = str(_UV) if _UV.exists() else "uv"
    return [uv, "tool", "run", "--from", "py-spy==0.4.3", "py-spy"]


def record(
    svg: Path, target: list[str], env: dict[str, str], *, subprocesses: bool
) -> subprocess.Popen[bytes]:
    """py-spy recording ``target`` (started by it) into ``svg``."""
    command = [*py_spy(), "record", "--rate", str(RATE), "--format", "flamegraph", "--output", str(svg)]
    if subprocesses:
        command.append("--subprocesses")
    return subprocess.Popen([*command, "--", *target], env=env, stdin=subprocess.DEVNULL)


def publish_child(home: Path, events: int) -> None:
    """The publishing process py-spy records (``python -m bench _profile-publish HOME EVENTS``)."""
    with Hub(Settings()) as hub:
        assert hub.home == home.resolve(), (hub.home, home)
        publisher = hub.publisher(OWNER, DATASET)
        try:
            for start in range(0, events, CHUNK):
                report = publisher.publish_records(members(min(CHUNK, events - start), 7, start_index=start))
                if report.rejected:
                    raise SystemExit(f"rejected: {report.rejected[:1]}")
        finally:
            publisher.close()


def _worker_pid(target: list[str], timeout: float = 60.0) -> int:
    """The worker py-spy started (the process whose command line is ``target``; py-spy's own names it too,
    after its options)."""
    pattern = "^" + " ".join(target)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        if found:
            return int(found[0])
        time.sleep(0.2)
    raise RuntimeError("py-spy did not start the worker")


def project(hub: Hub, env: dict[str, str], total: int, svg: Path) -> float:
    """The worker, recorded, until every read model has taken the topic's ``total`` events; returns the
    seconds it took."""
    stores = [hub.store(consumer) for consumer in hub.consumers()]
    target = [sys.executable, "-m", "services", "project", "run", "--loglevel", "WARNING"]
    started = time.perf_counter()
    recorder = record(svg, target, env, subprocesses=True)
    try:
        worker = _worker_pid(target)
        deadline = time.monotonic() + 1800
        while min(sum(s.positions().values()) for s in stores) < total:
            if recorder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker stopped, or did not finish in 30 minutes")
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        os.kill(worker, signal.SIGTERM)  # py-spy writes the graph once its target has exited
        recorder.wait(120)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    return elapsed


def shares(svg: Path) -> dict[str, float]:
    """Per stage of :data:`STAGES`, the share of the graph's samples that have its frame on the stack
    (wherever it was called from, whichever of its lines: the union of its nodes' sample ranges)."""
    nodes = re.findall(
        r'<title>(.*?) \([^()]*\) \([\d,]+ samples, [\d.]+%\)</title><rect [^>]*fg:x="(\d+)" fg:w="(\d+)"',
        svg.read_text(encoding="utf-8"),
    )
    ranges: dict[str, list[tuple[int, int]]] = {}
    for frame, x, w in nodes:
        ranges.setdefault(html.unescape(frame), []).append((int(x), int(x) + int(w)))
    total = max((end for spans in ranges.values() for _, end in spans), default=0) or 1
    return {
        stage: round(100 * _covered(ranges.get(frame, [])) / total, 1) for stage, frame in STAGES[svg.name]
    }


def _covered(spans: list[tuple[int, int]]) -> int:
    """How many samples the union of ``spans`` ([start, end) each) holds."""
    held, reach = 0, 0
    for start, end in sorted(spans):
        start = max(start, reach)
        if end > start:
            held, reach = held + end - start, end
    return held


def lines(payload: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section of a profile run."""
    out = [
        f"Run {payload['date']} on {payload['code']} with `{payload['command']}`: {payload['events']:,} new "
        f"members published ({payload['publish_s']} s under py-spy), then projected into the bench "
        f"governance's two read models ({payload['project_s']} s), sampled {payload['rate_hz']} times a "
        "second. The graphs: "
        + ", ".join(f"[{name}](bench/results/{name})" for name in payload["graphs"])
        + ". A later change to either path is judged against graphs made the same way. "
        + payload.get("note", ""),
        "",
        "A stage's share counts the samples with its frame anywhere on the stack, so stages overlap (sealing "
        "holds the subject keys and the signatures). The worker's graph holds both of its processes, the "
        "faust worker and its engine, each about half of the samples.",
        "",
        "| graph | stage | share of samples |",
        "| --- | --- | ---: |",
    ]
    for name, stages in payload["shares"].items():
        out += [f"| {name} | {stage} | {share:.1f} % |" for stage, share in stages.items()]
    return out


def main(argv: list[str], command: str) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="members published, then projected")
    parser.add_argument("--note", default="", help="what else the machine was doing, said in the report")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    RESULTS.mkdir(exist_ok=True)
    home = BENCH_HOME / "profile"
    with broker() as bootstrap:
        hub = new_hub(home, bootstrap)
        try:
            env = hub_env(hub)
            publish_svg, worker_svg = RESULTS / "flame-publish.svg", RESULTS / "flame-worker.svg"
            started = time.perf_counter()
            target = [sys.executable, "-m", "bench", "_profile-publish", str(home), str(args.events)]
            publishing = record(publish_svg, target, env, subprocesses=False)
            if publishing.wait() != 0:
                raise SystemExit(f"publishing under py-spy failed ({publishing.returncode})")
            published_s = time.perf_counter() - started
            projected_s = project(hub, env, args.events, worker_svg)
        finally:
            hub.close()
    save(
        FLAME_JSON,
        {
            **machine.run_header(command),
            "events": args.events,
            "publish_s": round(published_s, 1),
            "project_s": round(projected_s, 1),
            "rate_hz": RATE,
            "note": args.note,
            "graphs": [publish_svg.name, worker_svg.name],
            "shares": {svg.name: shares(svg) for svg in (publish_svg, worker_svg)},
        },
    )
    took = f"published {args.events:,} in {published_s:.1f} s, projected in {projected_s:.1f} s"
    print(f"{took} (under py-spy)")
    print(f"wrote {publish_svg} and {worker_svg}; run: {shlex.quote(command)}", file=sys.stderr)
