"""(b) Publishing with the hub's Publisher against a bare confluent-kafka producer of same-size messages.

Hub: ``Publisher.publish_records`` (the path ``sharehub publish`` takes): validate each JSON record, make
the new members' subject keys, seal, sign in batches, produce keyed to the record's lane, checkpoint the
chains, and wait for every acknowledgement. Baseline: the same number of messages of the same sizes,
random bytes under random 16-byte keys, produced to a topic with as many partitions. Both sides use the
hub's producer settings (idempotent, acks=all, linger 10 ms). Each repetition publishes new members, so
both pay for first-time work alike. Each client is made once and warmed up before any timing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench import records
from bench.environment import DATASET, OWNER, new_hub
from bench.kafka_io import RawProducer
from bench.model import Config, Row, ScenarioResult
from bench.stats import interleaved
from connectors.dataset_publishing import DatasetPublishing
from services.hub import Hub
from sharehub.kafka import ensure_topics

WARM_UP = 50


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    hub = new_hub(config.workdir / "publish", config.bootstrap)
    try:
        publisher = hub.publisher(OWNER, DATASET)
        measured, notes = publishers_against_raw_produce(hub, config, {"publish_s": publisher})
    finally:
        hub.close()
    return ScenarioResult(
        id="b",
        title="Publish (Publisher) vs raw confluent-kafka produce of same-size messages",
        hub="Publisher.publish_records: validate, subject keys, seal, batch-sign, produce, acks",
        baseline="confluent_kafka.Producer.produce of random bytes of the same sizes, then flush",
        reps=config.reps,
        rows=[Row("publish vs produce", "throughput", "publish_s", "produce_s", config.events)],
        measurements=measured,
        notes=notes,
    )


@dataclass
class RawProduce:
    """The baseline every publishing scenario shares: confluent-kafka producing random bytes of the sizes the
    hub's events of ``config.events`` members have, under random 16-byte keys, to a topic with as many
    partitions, with the hub's producer settings; made once and warmed up."""

    producer: RawProducer
    payloads: list[tuple[bytes, bytes]]
    notes: list[str]

    @classmethod
    def of(cls, hub: Hub, config: Config, first_unused: int) -> RawProduce:
        """Sized after members from ``first_unused`` on (members no side publishes)."""
        assert config.bootstrap is not None
        dataset = hub.governance.dataset(DATASET)
        raw_topic = f"{hub.governance.topic_prefix}.bench.raw-produce"
        ensure_topics(config.bootstrap, [(raw_topic, dataset.partitions)])
        n = config.events
        sealer = records.Sealer.of(hub)
        # Sizes from other members of the same kind: sealing the timed ones here would make their subject
        # keys before the first repetition, and spare it work the others do.
        others = records.members(n, config.seed, start_index=first_unused)
        sizes = [len(e.raw) for e in sealer.seal_chain(sealer.datums(hub, others))]
        payloads = [(os.urandom(16), os.urandom(size)) for size in sizes]
        producer = RawProducer(config.bootstrap, raw_topic)
        producer.send_all(payloads[:WARM_UP])
        notes = [
            f"{n:,} events per repetition, {sum(sizes) / len(sizes):.0f} bytes on average, "
            f"{dataset.partitions} partitions, one local broker on the same machine.",
            "Both producers use sharehub.kafka.producer_config: idempotent, acks=all, linger.ms=10.",
        ]
        return cls(producer, payloads, notes)

    def side(self, _rep: int) -> dict[str, float]:
        started = time.perf_counter()
        self.producer.send_all(self.payloads)
        return {"produce_s": time.perf_counter() - started}


def publishers_against_raw_produce(
    hub: Hub, config: Config, publishers: Mapping[str, DatasetPublishing]
) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """Each of ``publishers`` (by the name of its measurement) against a raw producer of same-size
    messages, interleaved over ``config.reps`` (the publishers in turn, the first one changing each
    repetition); closes them. Every publish is of members never published before, so each pays for
    first-time work alike; each client is made once and warmed up before any timing."""
    n, sides = config.events, len(publishers)
    batches = [
        [records.members(n, config.seed, start_index=(rep * sides + side) * n) for side in range(sides)]
        for rep in range(config.reps)
    ]
    unused = config.reps * sides * n
    raw = RawProduce.of(hub, config, unused)
    for side, publisher in enumerate(publishers.values()):  # warmed up: connection, producer id, metadata
        warm_up = records.members(WARM_UP, config.seed, start_index=unused + n + side * WARM_UP)
        publisher.publish_records(warm_up)
    named = list(publishers.items())

    def hub_side(rep: int) -> dict[str, float]:
        took = {}
        for side in [(rep + k) % sides for k in range(sides)]:
            name, publisher = named[side]
            started = time.perf_counter()
            report = publisher.publish_records(batches[rep][side])  # returns once the broker acknowledged all
            took[name] = time.perf_counter() - started
            if report.published != n or report.rejected:
                raise RuntimeError(f"{name}: published {report.published} of {n}: {report.rejected[:1]}")
        return took

    try:
        measured = interleaved(config.reps, hub_side, raw.side)
    finally:
        for publisher in publishers.values():
            publisher.close()
    return measured, raw.notes
