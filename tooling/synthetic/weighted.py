"""A categorical distribution, drawn fast and reproducibly from a caller's ``random.Random``."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Weighted(Generic[_T]):
    """A categorical distribution drawn with one ``random()`` and a bisect (cheaper than ``choices``)."""

    __slots__ = ("_values", "_cumulative", "_total", "_last")

    def __init__(self, items: Iterable[tuple[_T, float]]) -> None:
        values: list[_T] = []
        cumulative: list[float] = []
        total = 0.0
        for value, weight in items:
            if weight > 0:
                total += weight
                values.append(value)
                cumulative.append(total)
        if not values:
            raise ValueError("a weighted table needs at least one positive weight")
        self._values = tuple(values)
        self._cumulative = cumulative
        self._total = total
        self._last = len(values) - 1

    def draw(self, rng: random.Random) -> _T:
        # min(): random() * total can round up to total itself, one past the last bucket.
        return self._values[min(bisect_right(self._cumulative, rng.random() * self._total), self._last)]
