"""Summaries of repeated measurements: median, spread, rates and the hub/baseline ratio."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: One repetition of one side: named measurements (seconds, or milliseconds for latencies).
Measure = Callable[[int], dict[str, float]]


@dataclass(frozen=True)
class Summary:
    """Median and spread of one series."""

    median: float
    low: float
    high: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no values to summarise")
        ordered = sorted(values)
        if len(ordered) >= 2:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1 = q3 = ordered[0]
        return cls(statistics.median(ordered), ordered[0], ordered[-1], q1, q3)


def rates(events: int, seconds: Sequence[float]) -> list[float]:
    """Events per second of each repetition."""
    return [events / s if s > 0 else float("inf") for s in seconds]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; values need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def interleaved(reps: int, hub: Measure, baseline: Measure) -> dict[str, dict[str, list[float]]]:
    """Run both sides ``reps`` times, alternating which goes first, so slow drift favours neither."""
    out: dict[str, dict[str, list[float]]] = {"hub": {}, "baseline": {}}
    for rep in range(reps):
        order = [("hub", hub), ("baseline", baseline)]
        if rep % 2:
            order.reverse()
        for side, measure in order:
            for name, value in measure(rep).items():
                out[side].setdefault(name, []).append(value)
    return out
