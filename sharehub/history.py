"""How far back the read models keep each dataset's history: reads "as of" a past time answer from it, the
projection worker forgets the versions before it that no such read needs, and the query API refuses an
``as_of`` earlier.

A dataset's horizon is the later of two bounds, each when set: the hub's (``SHAREHUB_HISTORY_DAYS``, the
same for every dataset) and the dataset's own declared retention (``retention_ms``; -1 keeps it for ever).
Retention bounds the dataset's log and its history, not its present: a record's current row stays in a
consumer's read model until its owner replaces or erases it. A dataset with neither bound keeps every
version, and has no horizon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sharehub.gov.views import Dataset
from sharehub.settings import Settings


@dataclass(frozen=True)
class HistoryHorizon:
    """The earliest time a read "as of" may ask for in one dataset, and what set it."""

    at: dt.datetime
    #: What set it, in words a refusal can quote: the hub's history days or the dataset's retention.
    kept: str


def history_horizon(settings: Settings, dataset: Dataset, now: dt.datetime) -> HistoryHorizon | None:
    """``dataset``'s horizon at ``now``: the later of the hub's and the dataset's retention's (the
    retention's when both fall on the same moment); None when neither is set."""
    bounds: list[HistoryHorizon] = []
    if dataset.retains:
        since = _before(now, milliseconds=dataset.retention_ms)
        if since is not None:
            retained = f"{_span(dataset.retention_ms)} (its retention_ms, {dataset.retention_ms})"
            bounds.append(HistoryHorizon(since, f"dataset {dataset.id!r} is retained for {retained}"))
    hub = settings.history_horizon(now)
    if hub is not None:
        kept = f"the hub's read models keep {settings.history_days:g} days of history (SHAREHUB_HISTORY_DAYS)"
        bounds.append(HistoryHorizon(hub, kept))
    return max(bounds, key=lambda bound: bound.at, default=None)


def history_horizons(
    settings: Settings, datasets: Iterable[Dataset], now: dt.datetime
) -> dict[str, HistoryHorizon]:
    """The horizon of every dataset of ``datasets`` that has one, by dataset id (those absent keep every
    version)."""
    found = {}
    for dataset in datasets:
        horizon = history_horizon(settings, dataset, now)
        if horizon is not None:
            found[dataset.id] = horizon
    return found


def _before(now: dt.datetime, *, milliseconds: int) -> dt.datetime | None:
    """``milliseconds`` before ``now``, or None when that is before the first representable time (any read
    is within)."""
    try:
        return now - dt.timedelta(milliseconds=milliseconds)
    except OverflowError:
        return None


def _span(milliseconds: int) -> str:
    """A retention in the largest unit it reaches (days, hours, minutes, seconds), e.g. ``7 days``."""
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000), ("seconds", 1000)):
        if milliseconds >= size:
            count = milliseconds / size
            return f"{count:g} {unit if count != 1 else unit[:-1]}"
    return f"{milliseconds} milliseconds"
