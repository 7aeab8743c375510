"""``sharehub audit pack``: gather from the broker the records an evidence pack holds
(:mod:`sharehub.evidence_pack`), read with public keys only, from a site (the auditor's) as from the hub.

- the whole governance log (the pack's own check rebuilds governance from it, from the pinned trust);
- the dataset events in scope: a consumer's (every dataset it ever had an agreement for) or one subject's
  of one dataset (its pseudonym is the Kafka key of its events), whose signed ``occurred_at`` is in range;
  and, in each lane, every event after the first of them up to the owner's first signed checkpoint at or
  after the last (the links that tie them to it), with that checkpoint;
- the access records in scope.

Nothing is judged here: a pack of a tampered log holds the tampering, and its report says so.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable

from sharehub.access_records import open_access
from sharehub.checkpoints import Checkpoint, open_checkpoint
from sharehub.envelope import parse
from sharehub.errors import EnvelopeError, InputError
from sharehub.evidence_check import seal_pack
from sharehub.evidence_pack import Evidence, PackRecord, Scope
from sharehub.gov.anchors import Anchors
from sharehub.gov.log import Logged
from sharehub.gov.state import GovState, fold_log
from sharehub.gov.views import Dataset
from sharehub.kafka import Record, TopicReader, records

#: (partition) → the topic's records in that partition, in log order.
_Partitions = dict[int, list[Record]]


def make_pack(bootstrap: str, governance: GovState, scope: Scope, *, timeout: float = 60.0) -> bytes:
    """The pack's bytes, its report computed as ``verify-pack`` will recompute it."""
    trust = Anchors(
        governance.trust.operator,
        governance.topic_prefix,
        {k: v.public_bytes_raw().hex() for k, v in sorted(governance.trust.anchors.items())},
    )
    with TopicReader(bootstrap, timeout=timeout) as reader:
        return seal_pack(gather(lambda topic: records(reader.batches(topic)), trust, scope))


#: Every record of a topic, in order within each partition.
Read = Callable[[str], Iterable[Record]]


def gather(read: Read, trust: Anchors, scope: Scope) -> Evidence:
    """The records of the pack for ``scope``, read with ``read``."""
    gov_topic = f"{trust.topic_prefix}-governance"
    gov_records = list(read(gov_topic))
    state = fold_log((Logged(r.offset, r.value) for r in gov_records), trust.trust, trust.topic_prefix)
    events: list[PackRecord] = []
    checkpoints: list[PackRecord] = []
    for dataset in _datasets(state, scope):
        owner_checkpoints = _checkpoints(read(state.checkpoint_topic(dataset.owner)), state)
        partitions = _by_partition(read(dataset.topic))
        for partition, held in sorted(partitions.items()):
            lane = [c for c in owner_checkpoints if (c[1].dataset, c[1].lane) == (dataset.id, partition)]
            found, checkpoint = _segment(held, lane, scope)
            events += found
            checkpoints += [checkpoint] if checkpoint else []
    access = [
        PackRecord(r.topic, r.partition, r.offset, r.value)
        for r in read(state.access_log_topic)
        if _access_in_scope(r.value, scope)
    ]
    return Evidence(
        scope,
        trust,
        dt.datetime.now(dt.UTC).isoformat(),
        tuple(PackRecord(r.topic, r.partition, r.offset, r.value) for r in gov_records),
        tuple(events),
        tuple(checkpoints),
        tuple(access),
    )


def _datasets(state: GovState, scope: Scope) -> list[Dataset]:
    if scope.dataset is not None:
        return [state.dataset(scope.dataset)]
    if scope.consumer is None:
        raise InputError(
            "a pack is of a consumer's data (--consumer) or of one subject (--dataset, --subject-ref)"
        )
    state.agency(scope.consumer)  # UnknownReferenceError for an agency governance does not know
    granted = {
        v.terms.dataset for vs in state.versions.values() for v in vs if v.terms.consumer == scope.consumer
    }
    return [d for d in state.datasets() if d.id in granted]


def _checkpoints(found: Iterable[Record], state: GovState) -> list[tuple[Record, Checkpoint]]:
    """The authentic checkpoints of an owner's topic, in log order."""
    out = []
    for record in found:
        try:
            out.append((record, open_checkpoint(record.value, state)))
        except EnvelopeError:
            continue
    return out


def _by_partition(found: Iterable[Record]) -> _Partitions:
    partitions: _Partitions = defaultdict(list)
    for record in found:
        partitions[record.partition].append(record)
    return partitions


def _segment(
    held: list[Record], checkpoints: list[tuple[Record, Checkpoint]], scope: Scope
) -> tuple[list[PackRecord], PackRecord | None]:
    """The events of one lane from the first in scope to the last, or on to the first checkpoint at or
    after it (else the last checkpoint at or after the first in scope); and that checkpoint."""
    sequences = [_sequence(r) for r in held]
    chosen = [i for i, r in enumerate(held) if sequences[i] is not None and _in_scope(r, scope)]
    if not chosen:
        return [], None
    low, high = min(sequences[i] or 0 for i in chosen), max(sequences[i] or 0 for i in chosen)
    later = [c for c in checkpoints if c[1].sequence >= high]
    covering = later[0] if later else next((c for c in reversed(checkpoints) if c[1].sequence >= low), None)
    end = chosen[-1]
    if covering is not None and covering[1].sequence in sequences[chosen[0] :]:
        end = max(end, sequences.index(covering[1].sequence, chosen[0]))
    selected = set(chosen)
    segment = [
        PackRecord(r.topic, r.partition, r.offset, r.value, i in selected)
        for i, r in enumerate(held[chosen[0] : end + 1], chosen[0])
    ]
    if covering is None:
        return segment, None
    record = covering[0]
    return segment, PackRecord(record.topic, record.partition, record.offset, record.value)


def _sequence(record: Record) -> int | None:
    try:
        return parse(record.value).header.sequence
    except EnvelopeError:
        return None


def _in_scope(record: Record, scope: Scope) -> bool:
    """Whether an event (one that parses) is in scope: its signed time in range, and its subject."""
    header = parse(record.value).header
    subject = scope.subject_ref is None or header.subject_key_id.endswith("/" + scope.subject_ref)
    return subject and scope.holds_time(header.occurred_at)


def _access_in_scope(value: bytes, scope: Scope) -> bool:
    try:
        return scope.holds_access(open_access(value).fields)
    except EnvelopeError:
        return False
