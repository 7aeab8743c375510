"""Connector health, from the journals at the site (:mod:`connectors.journal`): per dataset and source,
lines acknowledged, lines pending (lag), rejects and the last error. A file's lag is its lines past the
acknowledged one; an outbox's (:mod:`connectors.outbox`) the rows its table holds beyond the acknowledged
position, as the connector last counted them. ``sharehub connect status`` prints it; a running connector
serves the same as Prometheus metrics (``--metrics-port``), read from the journal at every scrape, so the
two never disagree (the ``file`` label names an outbox by its source,
``outbox:<database>/<schema>.<table>``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.journal import SourceState, journal_dataset, journal_paths, read_journal


@dataclass(frozen=True)
class SourceHealth:
    dataset: str
    name: str
    acknowledged: int
    pending: int | None
    rejected: int
    done: bool
    error: str | None
    #: An outbox: never done, its lag counted at the table.
    endless: bool = False

    @classmethod
    def of(cls, dataset: str, state: SourceState) -> SourceHealth:
        if state.endless:  # positions are not counts: every row went once to one of the three
            acked = state.published + state.skipped + state.rejected
            return cls(dataset, state.name, acked, state.pending, state.rejected, False, state.error, True)
        pending = None if state.total is None else (0 if state.done else max(0, state.total - state.acked))
        acked = state.total if state.done and state.total is not None else state.acked
        return cls(dataset, state.name, acked, pending, state.rejected, state.done, state.error)


def site_health(home: Path) -> list[SourceHealth]:
    """Every source of every dataset journal at the site, by dataset and name."""
    found = []
    for path in journal_paths(home):
        dataset = journal_dataset(path)
        found += [SourceHealth.of(dataset, s) for s in read_journal(path).values()]
    return sorted(found, key=lambda h: (h.dataset, h.name))


class HealthCollector(Collector):
    """Prometheus metrics of the sources ``health`` gives at each scrape."""

    def __init__(self, health: Callable[[], Iterable[SourceHealth]]) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        labels = ["dataset", "file"]
        acked = GaugeMetricFamily(
            "sharehub_connector_lines_acknowledged",
            "Lines on the topic (or rejected), per file",
            labels=labels,
        )
        pending = GaugeMetricFamily(
            "sharehub_connector_lines_pending", "Lines not yet acknowledged (lag), per file", labels=labels
        )
        rejects = GaugeMetricFamily("sharehub_connector_rejects", "Rows rejected, per file", labels=labels)
        failing = GaugeMetricFamily(
            "sharehub_connector_failing", "1 while the file's last attempt failed", labels=labels
        )
        error = InfoMetricFamily("sharehub_connector_last_error", "The last error, per file", labels=labels)
        for h in self._health():
            key = [h.dataset, h.name]
            acked.add_metric(key, h.acknowledged)
            if h.pending is not None:
                pending.add_metric(key, h.pending)
            rejects.add_metric(key, h.rejected)
            failing.add_metric(key, 1 if h.error else 0)
            if h.error:
                error.add_metric(key, {"error": h.error[:200]})
        yield from (acked, pending, rejects, failing, error)
