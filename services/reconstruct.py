"""What a consumer's read model held at a past time, rebuilt from the log (``sharehub audit reconstruct``).

A scratch store is filled by the very projector the worker runs, fed only what existed at TIME and judged
under governance as it stood then (bitemporal):

- **Which time counts: the envelope's ``occurred_at``**, for dataset events as for governance events: it is
  signed with the event (by the owner, by the operator), so an auditor need not trust the hub or the broker.
  The broker's timestamp is not signed, and anyone able to rewrite the topics could change it.
- **Dataset events up to TIME**: each partition is read in log order up to its first event stamped later
  than TIME; that event and everything after it in the partition are left out (a record appended after one
  of a later time was appended later still, so chains stay whole). A record that is no event at all carries
  no time: it is judged (and refused) as the worker judged it.
- **Governance as of TIME** (:func:`sharehub.gov.fold_log_as_of`): agreements, their stages, signing keys
  and revocations as the log had them at TIME. A key revoked after TIME, even with an earlier effective
  time, still counted then. The projector's clock is TIME, so validity windows and expiries are TIME's.
- **Erasures known by TIME**: an ERASED event stamped up to TIME purges its subject, as it did live.
- **A subject erased after TIME**: its events existed at TIME and were in the read model, but its key is
  destroyed now, so they can no longer be opened. They are not silently dropped: :attr:`Reconstructed.
  unopenable` counts those records (of datasets the consumer was granted at TIME), and the state hash then
  cannot equal one taken at TIME (the report says so).

At TIME = now, or any time later than every event, this is the replay of ``audit state-hash`` and the hash
equals the live read model's. At a past time it equals the hash the live read model had at TIME once the
worker had projected every event stamped up to then (an event still in flight at TIME is counted). TIME may
not be in the future: a read model's future is not in the log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from projections.projector import LogMessage, Projector, parsed
from projections.read_model import ReadModelStore
from sharehub.codec import DatasetKeys
from sharehub.envelope import Envelope
from sharehub.errors import InputError, SubjectErased
from sharehub.gov import GovState, Trust, fold_log_as_of
from sharehub.gov.log import EventLog
from sharehub.kafka import KafkaAccess, Record, read_topic


@dataclass(frozen=True)
class ReconstructParts:
    """What a reconstruction reads: the governance log and the trust pinned for it, the datasets' keys,
    and the dataset topics (with the operator tools' broker login)."""

    governance_log: EventLog
    trust: Trust
    topic_prefix: str
    keys: DatasetKeys
    kafka: KafkaAccess


@dataclass(frozen=True)
class Reconstructed:
    consumer: str
    at: dt.datetime
    #: The last governance event applied: the state the agreements were read from.
    governance_sequence: int
    #: Dataset events stamped up to ``at`` (projected), and those left out (stamped later, or behind one).
    events: int
    left_out: int
    rows: int
    quarantined: int
    #: Records the consumer was granted at ``at`` whose subject was erased after it: no longer readable.
    unopenable: int
    state_hash: str


def reconstruct(
    parts: ReconstructParts, consumer: str, at: dt.datetime, store: ReadModelStore
) -> Reconstructed:
    """Fill ``store`` (empty) with what ``consumer``'s read model held at ``at`` (see the module)."""
    if at.tzinfo is None:
        raise InputError(f"the time {at.isoformat()} has no zone")
    if at > dt.datetime.now(dt.UTC):
        raise InputError(f"{at.isoformat()} is in the future: a read model's future is not in the log")
    governance = fold_log_as_of(parts.governance_log.entries_all(), parts.trust, at, parts.topic_prefix)
    governance.agency(consumer)  # unknown then: a clear error
    projector = Projector(governance, parts.keys, {consumer: store}, clock=lambda: at)
    projector.reconcile()  # the terms of then
    timeline = _Timeline(at)
    quarantined = 0
    for topic in projector.topics:
        for batch in read_topic(parts.kafka, topic):
            messages = timeline.up_to_time(batch)
            if messages:
                decision = projector.decide(messages)
                projector.commit(decision)
                quarantined += len(decision.quarantined)
    projector.reconcile()
    unopenable = timeline.erased_later(parts.keys, _granted_topics(governance, consumer, at))
    return Reconstructed(
        consumer,
        at,
        governance.head_sequence,
        timeline.events,
        timeline.left_out,
        store.count(),
        quarantined,
        unopenable,
        store.state_hash(),
    )


def _granted_topics(governance: GovState, consumer: str, at: dt.datetime) -> set[str]:
    """The topics of the datasets ``consumer`` held an active agreement on at ``at``."""
    return {
        d.topic for d in governance.datasets() if governance.active_agreement(consumer, d.id, at) is not None
    }


@dataclass
class _Timeline:
    """Cuts each partition at its first event stamped after ``at``, and notes which subjects its events
    name and which it erased."""

    at: dt.datetime
    events: int = 0
    left_out: int = 0
    #: Partitions cut already: (topic, partition).
    cut: set[tuple[str, int]] = field(default_factory=set)
    #: (topic, subject key id) of every subject an event up to ``at`` carried a record of.
    subjects: set[tuple[str, str]] = field(default_factory=set)
    #: (topic, subject key id) of every subject an ERASED event up to ``at`` erased.
    erased: set[tuple[str, str]] = field(default_factory=set)

    def up_to_time(self, batch: list[Record]) -> list[LogMessage]:
        """The batch's messages that existed at ``at``, each with its envelope parsed once."""
        kept: list[LogMessage] = []
        for record in batch:
            envelope = parsed(record.value)
            tp = (record.topic, record.partition)
            if tp in self.cut or (isinstance(envelope, Envelope) and envelope.header.occurred_at > self.at):
                self.cut.add(tp)
                self.left_out += 1
                continue
            if isinstance(envelope, Envelope) and envelope.header.subject_key_id:
                known = self.erased if envelope.header.event_type == "ERASED" else self.subjects
                known.add((record.topic, envelope.header.subject_key_id))
            kept.append(
                LogMessage(record.topic, record.partition, record.offset, record.key, record.value, envelope)
            )
        self.events += len(kept)
        return kept

    def erased_later(self, keys: DatasetKeys, topics: Iterable[str]) -> int:
        """Subjects of ``topics`` with a record up to ``at`` and no erasure by then, whose key is destroyed
        now: erased after ``at``."""
        wanted = set(topics)
        candidates = sorted(s for s in self.subjects - self.erased if s[0] in wanted)
        keys.prefetch_subject_keys(key_id for _, key_id in candidates)
        return sum(1 for _, key_id in candidates if _destroyed(keys, key_id))


def _destroyed(keys: DatasetKeys, key_id: str) -> bool:
    try:
        keys.subject_key(key_id)
    except SubjectErased:
        return True
    return False
