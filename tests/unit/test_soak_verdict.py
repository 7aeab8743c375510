"""The soak's pass/fail rule (bench.soak.verdict) on made-up runs: a steady one passes, and each kind of
trouble the soak is for (a leak, a lag that keeps growing, latency that keeps climbing, a load that fell
behind, an error, a loss) fails it, naming what failed; noise and a run too short to judge are told apart."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest

from bench.soak.publish_load import acknowledged_ranges
from bench.soak.verdict import MIN_SAMPLES, Limits, ReadModelFinding, Sample, Totals, judge, slope

MINUTES = 30.0
EVERY_S = 10.0
EVENTS_PER_S = 2000.0
QUERIES_PER_S = 500.0
PROCESSES = ("projection worker", "query API", "publish load", "query load")
CONSUMERS = ("dongthap-ppc", "langson-ppc")


def run(
    minutes: float = MINUTES,
    rss: Callable[[str, float], float] = lambda process, t: 200.0,
    lag: Callable[[float], float] = lambda t: 0.0,
    p99: Callable[[float], float] = lambda t: 15.0,
    seed: int = 21,
) -> list[Sample]:
    """Samples every EVERY_S seconds over ``minutes``, the curves given as functions of seconds, with the
    jitter a real run has (a few MiB, a batch of lag, a few ms)."""
    rng = random.Random(seed)
    samples = []
    for i in range(1, int(minutes * 60 / EVERY_S) + 1):
        t = i * EVERY_S
        samples.append(
            Sample(
                t_s=t,
                events_per_s=EVENTS_PER_S,
                queries_per_s=QUERIES_PER_S,
                p50_ms=3.0,
                p99_ms=p99(t) + rng.uniform(-5, 5),
                query_errors=0,
                lag={c: max(0, int(lag(t) + rng.uniform(0, 500))) for c in CONSUMERS},
                rss_mib={p: rss(p, t) + rng.uniform(-3, 3) for p in PROCESSES},
            )
        )
    return samples


def clean_totals(samples: list[Sample], **changes: object) -> Totals:
    seconds = samples[-1].t_s if samples else 0.0
    acknowledged = int(EVENTS_PER_S * seconds)
    totals = Totals(
        seconds=seconds,
        publish_seconds=seconds + 0.2,
        query_seconds=seconds + 0.1,
        events_per_s_asked=EVENTS_PER_S,
        queries_per_s_asked=QUERIES_PER_S,
        acknowledged=acknowledged,
        failed_batches=0,
        queries={200: int(QUERIES_PER_S * seconds)},
        worker_restarts=0,
        read_models=[ReadModelFinding(c, acknowledged, 0, 0, True) for c in CONSUMERS],
        audit_findings=0,
        drained_s=3.0,
    )
    return dataclasses.replace(totals, **changes)  # type: ignore[arg-type]


def failed(samples: list[Sample], totals: Totals | None = None) -> list[str]:
    return [c.name for c in judge(samples, totals or clean_totals(samples)).failed()]


def test_a_steady_run_passes_with_every_check_named() -> None:
    samples = run()
    verdict = judge(samples, clean_totals(samples))
    assert verdict.ok, verdict.failed()
    names = {c.name for c in verdict.checks}
    assert {f"{p} RSS does not keep rising" for p in PROCESSES} <= names
    assert {f"{c} lag does not keep rising" for c in CONSUMERS} <= names
    assert {f"{c}: state hash = replay of the log" for c in CONSUMERS} <= names


def test_memory_that_grows_early_and_then_holds_passes() -> None:
    # Caches filling in the first minutes: the first half is warm-up.
    samples = run(rss=lambda p, t: 120 + min(t, 600) / 600 * 150)
    assert failed(samples) == []


def test_a_leak_fails_naming_the_process_that_leaks() -> None:
    leak_per_min = Limits().rss_mib_per_min * 3
    samples = run(rss=lambda p, t: 200 + (leak_per_min * t / 60 if p == "query API" else 0))
    assert failed(samples) == ["query API RSS does not keep rising"]


def test_a_steep_but_small_rise_is_noise_not_a_leak() -> None:
    # Three minutes: a few MiB over the second half is steep per minute but below the noise floor.
    noise = Limits().rss_noise_mib
    samples = run(minutes=3, rss=lambda p, t: 200 + noise * 0.8 * t / 180)
    assert failed(samples) == []
    samples = run(minutes=3, rss=lambda p, t: 200 + noise * 3 * t / 180)
    assert set(failed(samples)) == {f"{p} RSS does not keep rising" for p in PROCESSES}


def test_a_lag_that_keeps_growing_fails_and_a_steady_one_passes() -> None:
    growth = Limits().lag_share * EVENTS_PER_S * 2  # events a second, more than the limit
    samples = run(lag=lambda t: growth * t)
    assert set(failed(samples)) == {f"{c} lag does not keep rising" for c in CONSUMERS}
    assert failed(run(lag=lambda t: 5_000.0)) == []  # behind, but keeping up


def test_latency_that_keeps_climbing_fails() -> None:
    per_s = Limits().p99_rise_ms * 2 / (MINUTES * 60 / 2)  # twice the limit over the second half
    samples = run(p99=lambda t: 15 + per_s * t)
    assert failed(samples) == ["query p99 does not keep rising"]


def test_a_climbing_p99_shows_though_the_query_load_ended_first() -> None:
    # The query load ended 3 minutes before the publishing load: those intervals have no latency (0),
    # which would pull the trend down and hide the climb before them.
    per_s = Limits().p99_rise_ms * 2 / (MINUTES * 60 / 2)
    ended = MINUTES * 60 - 180
    samples = [
        s if s.t_s <= ended else dataclasses.replace(s, queries_per_s=0.0, p99_ms=0.0)
        for s in run(p99=lambda t: 15 + per_s * t)
    ]
    assert failed(samples) == ["query p99 does not keep rising"]
    steady = [s if s.t_s <= ended else dataclasses.replace(s, queries_per_s=0.0, p99_ms=0.0) for s in run()]
    assert failed(steady) == []


def test_a_load_that_fell_behind_fails_its_rate() -> None:
    samples = run()
    totals = clean_totals(samples)
    late = dataclasses.replace(totals, publish_seconds=totals.seconds * 1.2)
    assert failed(samples, late) == ["events acknowledged at the rate asked"]
    short = dataclasses.replace(totals, queries={200: int(totals.queries[200] * 0.9)})
    assert failed(samples, short) == ["queries answered at the rate asked"]


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"failed_batches": 1}, "no failed publish batch"),
        ({"queries": {200: 900_000, 500: 1}}, "every query answered with 200"),
        ({"queries": {200: 900_000, 0: 1}}, "every query answered with 200"),
        ({"queries": {200: 900_000, 503: 1}}, "every query answered with 200"),
        ({"worker_restarts": 1}, "the projection worker never restarted"),
        ({"audit_findings": 2}, "audit verify of the whole log is clean"),
        ({"drained_s": None}, "read models at the log's end after the loads"),
        ({"drained_s": Limits().drain_s + 1}, "read models at the log's end after the loads"),
    ],
)
def test_each_error_fails_the_soak(changes: dict[str, object], check: str) -> None:
    samples = run()
    assert failed(samples, clean_totals(samples, **changes)) == [check]


def test_a_read_model_that_lost_doubled_or_differs_fails() -> None:
    samples = run()
    totals = clean_totals(samples)
    good = totals.read_models[1]
    for bad, check in (
        (dataclasses.replace(good, found=good.found - 1, lost=1), "every acknowledged event found"),
        (dataclasses.replace(good, duplicates=3), "no duplicate"),
        (dataclasses.replace(good, hash_matches_replay=False), "state hash = replay of the log"),
    ):
        broken = dataclasses.replace(totals, read_models=[totals.read_models[0], bad])
        assert failed(samples, broken) == [f"{good.consumer}: {check}"]


def test_a_run_too_short_to_show_a_trend_does_not_pass() -> None:
    count = 2 * MIN_SAMPLES - 3  # samples at 10..50 s: the second half (from 25 s) holds MIN_SAMPLES - 1
    samples = run(minutes=count * EVERY_S / 60)
    assert len(samples) == count
    verdict = judge(samples, clean_totals(samples))
    assert not verdict.ok
    assert [c.name for c in verdict.failed()] == ["no growth without bound"]
    assert "too short" in verdict.failed()[0].detail
    assert not judge([], clean_totals([])).ok


def test_slope_is_the_least_squares_line() -> None:
    rng = random.Random(5)
    a, b = rng.uniform(-10, 10), rng.uniform(-100, 100)
    points = [(x, a * x + b) for x in (rng.uniform(0, 50) for _ in range(20))]
    assert slope(points) == pytest.approx(a)
    assert slope([(1.0, 5.0)]) == 0.0
    assert slope([(2.0, 1.0), (2.0, 9.0)]) == 0.0


def test_acknowledged_batches_merge_into_ranges_with_gaps_kept() -> None:
    batches = [(0, 200), (400, 200), (200, 200), (800, 200), (1000, 150)]
    assert acknowledged_ranges(batches) == [[0, 600], [800, 350]]
    assert acknowledged_ranges([]) == []
