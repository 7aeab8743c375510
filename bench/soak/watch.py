"""What the soak watches while it runs: its two load processes' reports, each read model's lag and every
process's memory, folded every interval into one :class:`~bench.soak.verdict.Sample`."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.environment import REPO
from bench.kafka_io import end_offsets
from bench.load import family, family_rss_kb
from bench.soak.verdict import Sample
from bench.stats import percentile
from services.hub import Hub


@dataclass
class LoadProcess:
    """A load started as ``python -m bench.soak.<load>``: the JSON lines it has written since last asked
    (read from its stdout by a thread of ours), its stderr in ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    #: Monotonic time of the last line taken: the start of the next interval's rate.
    last_t: float = field(default_factory=time.monotonic)
    reader: threading.Thread | None = None
    #: Seconds from go to its end, as the load measured them (None until it ended).
    seconds: float | None = None

    @classmethod
    def start(cls, name: str, command: list[str], env: dict[str, str], log: Path) -> LoadProcess:
        with log.open("ab") as errors:
            proc = subprocess.Popen(
                command,
                cwd=REPO,  # where python -m finds bench
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        load = cls(name, proc)
        assert proc.stdout is not None
        load.reader = threading.Thread(target=load._read, args=(proc.stdout,), name=name, daemon=True)
        load.reader.start()
        return load

    def wait_ready(self, timeout: float) -> None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise SystemExit(f"soak: the {self.name} was not ready within {timeout:.0f} s") from None
        if not line.get("ready"):
            raise SystemExit(f"soak: the {self.name} said {line} before it was ready")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()
        self.last_t = time.monotonic()

    def finish(self, timeout: float) -> int | None:
        """Its exit status once it ended and every line it wrote was read (None: still running)."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self.reader is not None:
            self.reader.join(10)
        return status

    def _read(self, stdout: IO[bytes]) -> None:
        for raw in stdout:
            self.lines.put(json.loads(raw))

    def taken(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return out
            out.append(line)
            self.seconds = line.get("seconds", self.seconds)

    def rate(self, lines: list[dict[str, Any]], key: str) -> float:
        """``key`` summed over ``lines`` per second since the line before them."""
        timed = [line for line in lines if "t" in line]
        if not timed:
            return 0.0
        seconds = timed[-1]["t"] - self.last_t
        self.last_t = timed[-1]["t"]
        return sum(_count(line[key]) for line in timed) / seconds if seconds > 0 else 0.0


def _count(value: int | dict[str, int]) -> int:
    return value if isinstance(value, int) else value.get("200", 0)


def lag(hub: Hub, topic: str, consumers: list[str]) -> dict[str, int]:
    """Events on ``topic`` not yet in each consumer's read model (its stored positions to the log's end)."""
    ends = end_offsets(hub.kafka, topic)
    out = {}
    for consumer in consumers:
        stored = hub.store(consumer).positions()
        out[consumer] = sum(max(end - stored.get((topic, p), 0), 0) for p, end in ends.items())
    return out


def family_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) spent so far by ``pid`` and its descendants that still run."""
    ticks = 0
    for member in family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def supervised_children(supervisor: int) -> list[int]:
    """The processes ``supervisor`` runs now (a new pid each time it restarts the worker)."""
    try:
        return [
            int(pid) for pid in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        ]
    except OSError:
        return []


@dataclass
class Watch:
    """Folds the loads' lines, the read models' lag and the processes' memory into samples."""

    hub: Hub
    topic: str
    consumers: list[str]
    publishing: LoadProcess
    querying: LoadProcess
    #: Processes whose memory and CPU are sampled (name → pid; with its descendants: a worker and its engine).
    processes: dict[str, int]
    worker_supervisor: int
    #: Processes whose CPU alone is sampled (the broker: a JVM's heap grows to its -Xmx by design).
    cpu_only: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    acknowledged: list[list[int]] = field(default_factory=list)
    failed_batches: int = 0
    queries: Counter[int] = field(default_factory=Counter)
    query_failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    workers_seen: set[int] = field(default_factory=set)
    #: CPU seconds of each process at the last sample, and when it was taken.
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_at: float = 0.0

    def start(self) -> None:
        """Both loads at once, when both are ready: t = 0 of the samples."""
        for load in (self.publishing, self.querying):
            load.wait_ready(timeout=300)
        self.started = self.cpu_at = time.monotonic()
        self.cpu_s = {name: family_cpu_s(pid) for name, pid in self._cpu_sampled().items()}
        for load in (self.publishing, self.querying):
            load.go()

    def sample(self) -> Sample:
        published, answered = self.publishing.taken(), self.querying.taken()
        events_per_s = self.publishing.rate(published, "acked")
        queries_per_s = self.querying.rate(answered, "statuses")
        latencies, errors = self._tally(published, answered)
        self.workers_seen.update(supervised_children(self.worker_supervisor))
        rss = {name: family_rss_kb(pid)[0] for name, pid in self.processes.items()}
        now, cpu = time.monotonic(), {name: family_cpu_s(pid) for name, pid in self._cpu_sampled().items()}
        busy = {name: (cpu[name] - self.cpu_s.get(name, 0.0)) / (now - self.cpu_at) * 100 for name in cpu}
        self.cpu_s, self.cpu_at = cpu, now
        sample = Sample(
            t_s=round(time.monotonic() - self.started, 1),
            events_per_s=round(events_per_s, 1),
            queries_per_s=round(queries_per_s, 1),
            p50_ms=round(percentile(latencies, 50), 2) if latencies else 0.0,
            p99_ms=round(percentile(latencies, 99), 2) if latencies else 0.0,
            query_errors=errors,
            lag=lag(self.hub, self.topic, self.consumers),
            rss_mib={name: round(kb / 1024, 1) for name, kb in rss.items() if kb},  # 0: it has ended
            cpu_percent={name: round(percent, 1) for name, percent in busy.items() if rss.get(name, 1)},
            publish_behind_s=round(max((line.get("behind_s", 0.0) for line in published), default=0.0), 2),
        )
        self.samples.append(sample)
        return sample

    def _cpu_sampled(self) -> dict[str, int]:
        return self.processes | self.cpu_only

    def take_the_rest(self) -> None:
        """What the loads wrote last, after the last sample: counted in the totals, not in a sample."""
        self._tally(self.publishing.taken(), self.querying.taken())

    def _tally(
        self, published: list[dict[str, Any]], answered: list[dict[str, Any]]
    ) -> tuple[list[float], int]:
        for line in published:
            self.failed_batches += line.get("failed_batches", 0)
            self.acknowledged += line.get("acknowledged", [])
        latencies: list[float] = []
        errors = 0
        for line in answered:
            latencies += line.get("latencies_ms", [])
            self.query_failures.update(line.get("failures", {}))
            for status, n in line.get("statuses", {}).items():
                self.queries[int(status)] += n
                errors += n if status != "200" else 0
        self.latencies_ms += latencies
        return latencies, errors

    @property
    def worker_restarts(self) -> int:
        return max(len(self.workers_seen) - 1, 0)

    def loads_running(self) -> bool:
        return self.publishing.proc.poll() is None or self.querying.proc.poll() is None
