"""Reviewing the quarantine: list what the projection refused, and re-check each refusal under governance
and keys as they are now (after a fix: a key registered late, a schema version added, a data key restored).

A re-check judges each original event on its own: signature, owner, schema, decryption. Chain findings
(gaps, duplicates, forks) depend on the events around them and are only decided by a replay. What passes
now is re-driven by :func:`redrive`: every read model granted a dataset with such events asks the
projection to replay that dataset from its start (the running worker does so within seconds, without
being stopped), or by ``sharehub project rebuild --consumer C`` with the worker stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from projections.quarantine import MALFORMED, quarantine_entry
from services.parts import CurrentGovernance, ReadModels
from sharehub.codec import DatasetKeys, codecs_by_topic
from sharehub.errors import EnvelopeError
from sharehub.kafka import KafkaAccess, read_topic, records

CHAIN_REASONS = {"chain_gap", "replayed_sequence", "duplicate", "chain_fork", "misrouted", "chain_violation"}


@dataclass(frozen=True)
class Review:
    entry: dict[str, Any]
    #: "passes" (would be applied now), "refused" (still, with ``now``), or "chain" (a replay decides)
    verdict: str
    now: str


def quarantined(kafka: KafkaAccess, topic: str) -> Iterator[dict[str, Any]]:
    """Every entry of the quarantine ``topic`` (governance names it), read with the login ``kafka``; junk on
    the topic is an entry of its own (:func:`~projections.quarantine.quarantine_entry`)."""
    for r in records(read_topic(kafka, topic)):
        yield quarantine_entry(r)


def recheck(governance: CurrentGovernance, keys: DatasetKeys, kafka: KafkaAccess) -> Iterator[Review]:
    gov = governance.governance_state(refresh=True)
    codecs = codecs_by_topic(gov.datasets(), gov, keys)
    for entry in quarantined(kafka, gov.quarantine_topic):
        if entry["source_topic"] == gov.quarantine_topic:
            yield Review(entry, "refused", f"{MALFORMED}: junk on the quarantine topic, no event to judge")
            continue
        if entry["reason"] in CHAIN_REASONS:
            yield Review(entry, "chain", "decided by a replay ('sharehub project rebuild')")
            continue
        codec = codecs.get(entry["source_topic"])
        if codec is None:
            yield Review(entry, "refused", f"unknown_dataset: {entry['source_topic']!r} carries no dataset")
            continue
        # On its own: verified, decrypted and decoded under governance and keys as they are now.
        [outcome] = codec.open_many([(entry["source_partition"], entry["original_value"])], heads=None)
        if isinstance(outcome, EnvelopeError):
            yield Review(entry, "refused", f"{outcome.reason}: {outcome}")
            continue
        yield Review(entry, "passes", "would be applied by a rebuild")


def redrive(
    governance: CurrentGovernance, read_models: ReadModels, reviews: list[Review]
) -> dict[str, list[str]]:
    """Have the projection replay each dataset holding an event that passes now, in every read model
    granted it. Returns {dataset: consumers asked}."""
    topics = {d.topic: d.id for d in governance.governance_state(refresh=True).datasets()}
    datasets = sorted({topics[r.entry["source_topic"]] for r in reviews if r.verdict == "passes"})
    consumers = read_models.consumers()
    return {
        dataset: [c for c in consumers if read_models.store(c).request_replay(dataset)]
        for dataset in datasets
    }
