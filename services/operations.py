"""Operations view of a hub: per consumer and dataset, how far behind the log each read model is (lag, in
events), how fresh it is, and what the projection refused (quarantine counts by reason). Served as JSON
(``/v1/status``) and as Prometheus metrics (``/metrics``), both for the operator's credential."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client import Counter as PromCounter

from projections.projector import QUALITY_RULE
from projections.quarantine import quarantine_entry
from services.api.auth import AuthCounts
from services.parts import KeptGovernance, ReadModels
from sharehub.kafka import KafkaAccess, read_topic, reader_config, records, watermarks

#: Reading the quarantine topic is a scan: at most this often.
QUARANTINE_CACHE_S = 5.0


@dataclass(frozen=True)
class QuarantineCounts:
    """The quarantine counted: records by reason, by dataset and reason, and quality-rule breaks by dataset
    and rule."""

    by_reason: dict[str, int]
    quality_rule_breaks: dict[str, dict[str, int]]
    #: dataset (or, for what no dataset's topic carries, the source topic) -> reason -> records
    by_dataset: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ReadModelStatus:
    consumer: str
    dataset: str
    agreement: str | None
    rows: int
    lag_events: int
    seconds_since_last_write: float | None


class Operations:
    """``governance`` as the hub keeps it; the consumers' ``read_models``; the broker login that
    reads the dataset topics' ends and the quarantine; the API's ``auth`` counts, if it serves them."""

    def __init__(
        self,
        governance: KeptGovernance,
        read_models: ReadModels,
        kafka: KafkaAccess,
        auth: AuthCounts | None = None,
    ) -> None:
        self._governance = governance
        self._read_models = read_models
        self._kafka = kafka
        self._auth = auth
        #: When the quarantine was last counted, and what it held.
        self._quarantine: tuple[float, QuarantineCounts] | None = None
        self._lock = threading.Lock()

    def status(self) -> dict[str, Any]:
        gov = self._governance.governance
        now = dt.datetime.now(dt.UTC)
        ends = self._topic_ends([d.topic for d in gov.datasets()])
        models = []
        for consumer in self._read_models.consumers():
            store = self._read_models.store(consumer)
            stored = store.positions()
            for ds in gov.datasets():
                agreement = gov.active_agreement(consumer, ds.id, now)
                ever = any(a.consumer == consumer and a.dataset == ds.id for a in gov.agreements())
                if not ever:
                    continue
                lag = sum(end - stored.get((ds.topic, p), 0) for p, end in ends[ds.topic].items())
                last = store.last_applied(ds.id)
                models.append(
                    ReadModelStatus(
                        consumer=consumer,
                        dataset=ds.id,
                        agreement=agreement.id if agreement else None,
                        rows=store.count(ds.id),
                        lag_events=max(lag, 0),
                        seconds_since_last_write=(now - last).total_seconds() if last else None,
                    )
                )
        quarantined = self._quarantined()  # one count for both figures, never two different snapshots
        return {
            "at": now.isoformat(),
            "governance_head": gov.head_sequence,
            "read_models": [asdict(m) for m in models],
            "quarantined": quarantined.by_reason,
            "quality_rule_breaks": quarantined.quality_rule_breaks,
            "quarantined_by_dataset": quarantined.by_dataset,
        }

    def metrics(self) -> bytes:
        status = self.status()
        registry = CollectorRegistry()
        labels = ["consumer", "dataset"]
        rows = Gauge("sharehub_read_model_rows", "Rows in a consumer's read model", labels, registry=registry)
        lag = Gauge("sharehub_read_model_lag_events", "Events on the log not yet in the read model", labels,
                    registry=registry)  # fmt: skip
        age = Gauge("sharehub_read_model_seconds_since_last_write", "Seconds since a row was last written",
                    labels, registry=registry)  # fmt: skip
        active = Gauge("sharehub_agreement_active", "1 while the consumer holds an active agreement", labels,
                       registry=registry)  # fmt: skip
        for m in status["read_models"]:
            key = (m["consumer"], m["dataset"])
            rows.labels(*key).set(m["rows"])
            lag.labels(*key).set(m["lag_events"])
            active.labels(*key).set(1 if m["agreement"] else 0)
            if m["seconds_since_last_write"] is not None:
                age.labels(*key).set(m["seconds_since_last_write"])
        refused = "Events the projection refused, by reason"
        quarantined = Gauge("sharehub_quarantined_events", refused, ["reason"], registry=registry)
        for reason, count in status["quarantined"].items():
            quarantined.labels(reason).set(count)
        broke = "Records the projection quarantined for breaking a quality rule of their dataset"
        breaks = Gauge("sharehub_quality_rule_breaks", broke, ["dataset", "rule"], registry=registry)
        for dataset, by_rule in status["quality_rule_breaks"].items():
            for rule, count in by_rule.items():
                breaks.labels(dataset, rule).set(count)
        Gauge("sharehub_governance_head", "Sequence of the last governance event", registry=registry).set(
            status["governance_head"]
        )
        if self._auth is not None:
            failures = PromCounter(
                "sharehub_api_auth_failures",
                "Requests refused with 401 by this API process, by reason",
                ["reason"],
                registry=registry,
            )
            failures.labels("unknown_credential").inc(self._auth.unknown_credential)
            failures.labels("missing_credential").inc(self._auth.missing_credential)
            for ended in ("expired_credential", "replaced_credential", "revoked_credential"):
                failures.labels(ended).inc(self._auth.ended[ended])
            PromCounter(
                "sharehub_api_auth_throttled",
                "Requests refused with 429 by this API process (too many failed authentications)",
                registry=registry,
            ).inc(self._auth.throttled)
        return bytes(generate_latest(registry))

    def _topic_ends(self, topics: list[str]) -> dict[str, dict[int, int]]:
        consumer = Consumer(reader_config(self._kafka))
        try:
            out: dict[str, dict[int, int]] = {}
            for topic in topics:
                described = consumer.list_topics(topic, timeout=10).topics[topic]
                out[topic] = {p: watermarks(consumer, topic, p, timeout=10)[1] for p in described.partitions}
            return out
        finally:
            consumer.close()

    def _quarantined(self) -> QuarantineCounts:
        with self._lock:
            if self._quarantine is None or time.monotonic() - self._quarantine[0] > QUARANTINE_CACHE_S:
                gov = self._governance.governance
                dataset_of = {d.topic: d.id for d in gov.datasets()}
                reasons: Counter[str] = Counter()
                broken: Counter[tuple[str, str]] = Counter()
                refused: Counter[tuple[str, str]] = Counter()
                for record in records(read_topic(self._kafka, gov.quarantine_topic)):
                    entry = quarantine_entry(record)
                    reasons[entry["reason"]] += 1
                    dataset = dataset_of.get(entry["source_topic"], entry["source_topic"])
                    refused[(dataset, entry["reason"])] += 1
                    if entry["reason"] == QUALITY_RULE:
                        broken[(dataset, entry["detail"])] += 1
                self._quarantine = (
                    time.monotonic(),
                    QuarantineCounts(dict(sorted(reasons.items())), _nested(broken), _nested(refused)),
                )
            return self._quarantine[1]


def _nested(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """{(a, b): n} as {a: {b: n}}, both levels sorted."""
    out: dict[str, dict[str, int]] = {}
    for (outer, inner), count in sorted(counts.items()):
        out.setdefault(outer, {})[inner] = count
    return out
