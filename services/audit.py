"""Audit: replay dataset topics from offset 0, with public keys only, and check every event.

For each event: does it parse, does the producer's signature verify over the exact bytes, does the
producer own the dataset, is it in the lane (partition) it was signed for. For each (producer, lane) chain,
in log order: sequences run 1, 2, 3… and each ``prev_hash`` is the SHA-256 of the event before; a gap, a
duplicate, an event out of order, a fork and a broken link are each named. Then every signed checkpoint
is held against the log: a checkpointed event that is missing means the lane was cut short (truncated),
one with another hash means it was rewritten. Each owner's checkpoints are on a topic only that owner may
write, so whatever is found there (a checkpoint, or garbage) is that owner's statement: a finding there is
the owner's, named as its producer. No decryption key is needed or used. The report also counts, per
producer, the authentic events the hub sealed on its behalf (custodial mode: a custody key signed them, see
:mod:`sharehub.gov.custody`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from sharehub import chain
from sharehub.checkpoints import open_checkpoint
from sharehub.codec import DatasetCodec, codecs_by_topic
from sharehub.envelope import Envelope
from sharehub.errors import ChainViolation, EnvelopeError
from sharehub.gov.custody import sealed_in_custody
from sharehub.gov.views import GovernanceView
from sharehub.kafka import read_topic, records


@dataclass
class EventStatus:
    topic: str
    partition: int
    offset: int
    producer: str | None = None
    sequence: int | None = None
    event_id: str | None = None
    #: ok, or the reason code of the failure (bad_signature, malformed, not_owner, ...).
    signature: str = "ok"
    #: ok, or what is wrong with the chain here: gap, duplicate, out_of_order, fork, broken_link,
    #: misrouted, truncated, checkpoint_mismatch; "-" when the event is not authentic.
    chain: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.signature == "ok" and self.chain == "ok"


@dataclass
class AuditReport:
    events: list[EventStatus] = field(default_factory=list)
    checkpoints: int = 0
    #: Producer → authentic events the hub sealed on its behalf (signed with a custody key, see
    #: :mod:`sharehub.gov.custody`); every other authentic event was sealed at the agency's own site.
    sealed_in_custody: Counter[str] = field(default_factory=Counter)

    @property
    def findings(self) -> list[EventStatus]:
        return [e for e in self.events if not e.ok]

    def to_json(self) -> dict[str, object]:
        return {
            "events": sum(1 for e in self.events if "-checkpoints." not in e.topic),
            "checkpoints": self.checkpoints,
            "findings": len(self.findings),
            "sealed_in_custody": dict(sorted(self.sealed_in_custody.items())),
            "results": [asdict(e) for e in self.events],
        }


@dataclass
class _Lane:
    """One (producer, dataset, lane) chain as the audit walks it."""

    head: chain.ChainHead | None = None
    seen: dict[int, bytes] = field(default_factory=dict)


def audit_verify(bootstrap: str, governance: GovernanceView, *, timeout: float = 60.0) -> AuditReport:
    report = AuditReport()
    lanes: dict[tuple[str, str, int], _Lane] = defaultdict(_Lane)
    codecs = codecs_by_topic(governance.datasets(), governance, None)  # public keys only
    for dataset in governance.datasets():
        codec = codecs[dataset.topic]
        for record in records(read_topic(bootstrap, dataset.topic, timeout=timeout)):
            status = EventStatus(dataset.topic, record.partition, record.offset)
            report.events.append(status)
            envelope = _verified(codec, record.value, record.partition, status)
            if envelope is not None:
                if sealed_in_custody(envelope.header.signer_key_id):
                    report.sealed_in_custody[envelope.header.producer] += 1
                _walk(lanes[(envelope.header.producer, dataset.id, record.partition)], envelope, status)
    owners = sorted({dataset.owner for dataset in governance.datasets()})
    for owner in owners:
        topic = governance.checkpoint_topic(owner)
        for record in records(read_topic(bootstrap, topic, timeout=timeout)):
            report.checkpoints += 1
            status = EventStatus(topic, record.partition, record.offset, producer=owner)
            _check_checkpoint(record.value, owner, governance, lanes, status)
            if not status.ok:
                report.events.append(status)
    return report


def _verified(codec: DatasetCodec, value: bytes, partition: int, status: EventStatus) -> Envelope | None:
    """The event verified with public keys only, its header noted in ``status``; None (and the finding in
    ``status``) when it is not authentic or not in the lane it was signed for."""
    try:
        envelope = codec.parse(value)
    except EnvelopeError as exc:
        status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
        return None
    header = envelope.header
    status.producer, status.sequence, status.event_id = header.producer, header.sequence, header.event_id
    try:
        codec.verify(envelope, partition)
    except ChainViolation as exc:  # authentic, but misrouted
        status.chain, status.detail = exc.reason, f"signed for lane {header.lane}"
        return None
    except EnvelopeError as exc:
        status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
        return None
    return envelope


def _check_checkpoint(
    value: bytes,
    owner: str,
    governance: GovernanceView,
    lanes: dict[tuple[str, str, int], _Lane],
    status: EventStatus,
) -> None:
    """A checkpoint on ``owner``'s topic against the lanes as the log holds them."""
    try:
        checkpoint = open_checkpoint(value, governance)
    except EnvelopeError as exc:
        status.signature, status.chain, status.detail = exc.reason, "-", f"written by {owner!r}: {exc}"
        return
    status.sequence = checkpoint.sequence
    if checkpoint.producer != owner:
        status.signature, status.chain = "not_owner", "-"
        status.detail = f"a checkpoint of {checkpoint.producer!r} on the checkpoint topic of {owner!r}"
        return
    logged = lanes[(checkpoint.producer, checkpoint.dataset, checkpoint.lane)].seen.get(checkpoint.sequence)
    where = f"{checkpoint.dataset} lane {checkpoint.lane} sequence {checkpoint.sequence}"
    if logged is None:
        status.chain, status.detail = "truncated", f"checkpointed event {where} is not in the log"
    elif logged != checkpoint.head_hash:
        status.chain, status.detail = "checkpoint_mismatch", f"event {where} differs from its checkpoint"


def _walk(lane: _Lane, envelope: Envelope, status: EventStatus) -> None:
    header = envelope.header
    verdict = chain.judge(lane.head, envelope)
    earlier = lane.seen.get(header.sequence)
    if verdict is None or verdict == chain.GAP:
        if verdict == chain.GAP:
            expected = (lane.head.sequence if lane.head else 0) + 1
            status.chain, status.detail = (
                "gap",
                f"sequences {expected}..{header.sequence - 1} are missing here",
            )
        lane.head = chain.head_after(envelope)
        lane.seen[header.sequence] = envelope.hash
    elif verdict == chain.FORK:
        status.chain, status.detail = "broken_link", "prev_hash is not the hash of the previous event"
    elif earlier is None:
        status.chain, status.detail = (
            "out_of_order",
            f"sequence {header.sequence} after {lane.head.sequence if lane.head else 0}",
        )
        lane.seen[header.sequence] = envelope.hash
    elif earlier == envelope.hash:
        status.chain, status.detail = "duplicate", f"sequence {header.sequence} appears again"
    else:
        status.chain, status.detail = "fork", f"another event already holds sequence {header.sequence}"
