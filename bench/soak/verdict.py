"""The soak's pass/fail rule, apart from the processes it judges: pure, so a test can make it fail.

A soak passes when nothing went wrong and nothing grows without bound:

- **rates held**: the events acknowledged and the queries answered over the whole run reach
  :attr:`Limits.rate_share` of the rates asked for (an open loop that fell behind shows here);
- **no error**: no failed publish batch, every query answered with 200 (a 500, a 503, a timeout or no
  answer at all is an error), the projection worker never restarted, every acknowledged event found in
  every read model, no duplicate, every read model hashing like a replay of the log, ``audit verify`` clean;
- **no growth without bound**, judged on the second half of the run (the first half is warm-up: caches
  filling, SQLite pages mapped): each process's RSS rises by less than :attr:`Limits.rss_mib_per_min`
  (a rise under :attr:`Limits.rss_noise_mib` over the half passes whatever its slope: a garbage
  collection is not a leak), each read model's lag rises by less than :attr:`Limits.lag_share` of the
  event rate, the interval's query p99 rises by less than :attr:`Limits.p99_rise_ms` over the half, and
  once the loads stop every read model is back at the log's end within :attr:`Limits.drain_s`.

A rise is the least-squares slope over the half's samples times the half's length, so one spike
moves it little and a steady climb shows whole. Fewer than :data:`MIN_SAMPLES` samples in the half
cannot show a trend: the run is too short to pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Samples the second half needs before a trend is judged.
MIN_SAMPLES = 4


@dataclass(frozen=True)
class Limits:
    #: Share of the asked rate the run must reach, events and queries alike.
    rate_share: float = 0.95
    #: The steepest RSS rise (MiB a minute) over the second half that passes.
    rss_mib_per_min: float = 1.0
    #: A rise over the second half smaller than this (MiB) passes whatever its slope.
    rss_noise_mib: float = 10.0
    #: The steepest lag rise over the second half that passes, as a share of the event rate.
    lag_share: float = 0.01
    #: The largest rise (ms) of the interval's query p99 over the second half that passes.
    p99_rise_ms: float = 100.0
    #: Seconds the read models may take to reach the log's end once the loads stop.
    drain_s: float = 60.0


@dataclass(frozen=True)
class Sample:
    """One interval of the run, ending ``t_s`` seconds after the loads started."""

    t_s: float
    events_per_s: float
    queries_per_s: float
    p50_ms: float
    p99_ms: float
    #: Queries of the interval answered otherwise than with 200 (or not at all).
    query_errors: int
    #: Events on the log not yet in each read model (consumer → events).
    lag: dict[str, int]
    #: Resident memory of each process (name → MiB).
    rss_mib: dict[str, float]
    #: CPU each process used over the interval (name → percent of one core; with its descendants).
    cpu_percent: dict[str, float] = field(default_factory=dict)
    #: How far behind its schedule the publishing load was at worst (seconds).
    publish_behind_s: float = 0.0


@dataclass(frozen=True)
class ReadModelFinding:
    consumer: str
    found: int
    lost: int
    duplicates: int
    hash_matches_replay: bool


@dataclass(frozen=True)
class Totals:
    """What the whole run came to."""

    #: Seconds asked for, and the seconds each load took to do them (longer when it fell behind).
    seconds: float
    publish_seconds: float
    query_seconds: float
    events_per_s_asked: float
    queries_per_s_asked: float
    acknowledged: int
    failed_batches: int
    #: Queries by HTTP status (0: no answer, a timeout).
    queries: dict[int, int]
    worker_restarts: int
    read_models: list[ReadModelFinding]
    audit_findings: int
    #: Seconds from the loads' end until every read model was at the log's end (None: not within the wait).
    drained_s: float | None


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (y units per x unit); 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def second_half(samples: Sequence[Sample]) -> list[Sample]:
    """The samples of the run's second half (by time)."""
    if not samples:
        return []
    middle = samples[-1].t_s / 2
    return [s for s in samples if s.t_s >= middle]


def judge(samples: Sequence[Sample], totals: Totals, limits: Limits = Limits()) -> Verdict:
    return Verdict(_rates(totals, limits) + _errors(totals) + _trends(samples, totals, limits))


def _rates(totals: Totals, limits: Limits) -> list[Check]:
    checks = []
    answered = totals.queries.get(200, 0)
    for name, done, seconds, asked in (
        ("events acknowledged", totals.acknowledged, totals.publish_seconds, totals.events_per_s_asked),
        ("queries answered", answered, totals.query_seconds, totals.queries_per_s_asked),
    ):
        # Over the time the load took, never less than asked: a load that fell behind took longer.
        took = max(seconds, totals.seconds)
        rate = done / took if took > 0 else 0.0
        checks.append(
            Check(
                f"{name} at the rate asked",
                rate >= limits.rate_share * asked,
                f"{rate:,.0f}/s of {asked:,.0f}/s asked ({done:,} in {took:,.0f} s)",
            )
        )
    return checks


def _errors(totals: Totals) -> list[Check]:
    answers = ", ".join(f"{_status(s)}: {n:,}" for s, n in sorted(totals.queries.items())) or "none"
    query_errors = sum(n for status, n in totals.queries.items() if status != 200)
    checks = [
        Check("no failed publish batch", totals.failed_batches == 0, f"{totals.failed_batches} failed"),
        Check("every query answered with 200", query_errors == 0, answers),
        Check(
            "the projection worker never restarted",
            totals.worker_restarts == 0,
            f"{totals.worker_restarts} restart(s)",
        ),
        Check(
            "audit verify of the whole log is clean",
            totals.audit_findings == 0,
            f"{totals.audit_findings} finding(s)",
        ),
    ]
    for m in totals.read_models:
        checks += [
            Check(
                f"{m.consumer}: every acknowledged event found",
                m.lost == 0,
                f"{m.found:,} found, {m.lost:,} lost of {totals.acknowledged:,}",
            ),
            Check(f"{m.consumer}: no duplicate", m.duplicates == 0, f"{m.duplicates:,} duplicate(s)"),
            Check(
                f"{m.consumer}: state hash = replay of the log",
                m.hash_matches_replay,
                "equal" if m.hash_matches_replay else "DIFFERENT",
            ),
        ]
    return checks


def _trends(samples: Sequence[Sample], totals: Totals, limits: Limits) -> list[Check]:
    half = second_half(samples)
    drained = totals.drained_s
    checks = [
        Check(
            "read models at the log's end after the loads",
            drained is not None and drained <= limits.drain_s,
            f"after {drained:.0f} s (limit {limits.drain_s:.0f} s)"
            if drained is not None
            else "not within the wait",
        ),
    ]
    if len(half) < MIN_SAMPLES:
        reason = f"{len(half)} sample(s) in the second half, {MIN_SAMPLES} needed: too short to show a trend"
        return [*checks, Check("no growth without bound", False, reason)]
    for process in sorted(half[0].rss_mib):
        alive = [(s.t_s / 60, s.rss_mib[process]) for s in half if process in s.rss_mib]
        per_min = slope(alive)
        rise = per_min * (alive[-1][0] - alive[0][0])
        ok = per_min < limits.rss_mib_per_min or rise < limits.rss_noise_mib
        checks.append(
            Check(
                f"{process} RSS does not keep rising",
                ok,
                f"{per_min:+.2f} MiB/min over the second half ({rise:+.1f} MiB); "
                f"{alive[0][1]:.0f} → {alive[-1][1]:.0f} MiB",
            )
        )
    allowed = limits.lag_share * totals.events_per_s_asked
    for consumer in sorted(half[0].lag):
        per_s = slope([(s.t_s, float(s.lag.get(consumer, 0))) for s in half])
        checks.append(
            Check(
                f"{consumer} lag does not keep rising",
                per_s < allowed,
                f"{per_s:+,.1f} events/s over the second half (limit {allowed:,.0f}); "
                f"last {half[-1].lag.get(consumer, 0):,} behind",
            )
        )
    # Over the intervals in which requests finished (answered or not): a query load that ended first leaves
    # intervals with none, whose p99 of 0 would pull the line down.
    answered = [(s.t_s, s.p99_ms) for s in half if s.p99_ms > 0]
    p99_rise = slope(answered) * (answered[-1][0] - answered[0][0]) if answered else 0.0
    checks.append(
        Check(
            "query p99 does not keep rising",
            p99_rise < limits.p99_rise_ms,
            f"{p99_rise:+.1f} ms over the second half (limit {limits.p99_rise_ms:.0f} ms)",
        )
    )
    return checks


def _status(status: int) -> str:
    return "no answer" if status == 0 else str(status)
