"""Audit: replay the hub's log from offset 0, with public keys only, and check every record.

The governance log first: every event signed by the operator key valid at its time, one hash chain whose
sequences run without gap or repeat; a record that is not an event, a forgery or a broken link is a finding
and is not applied (:meth:`~sharehub.gov.state.GovState.take`), and the state the log builds is hashed.
Then the dataset topics, verified under that state. For each event: does it parse, does the producer's
signature verify over the exact bytes, does the producer own the dataset, is it in the lane (partition) it
was signed for. For each (producer, lane) chain, in log order: sequences run 1, 2, 3… and each ``prev_hash``
is the SHA-256 of the event before; a gap, a duplicate, an event out of order, a fork and a broken link are
each named. Then every signed checkpoint is held against the log: a checkpointed event that is missing means
the lane was cut short (truncated), one with another hash means it was rewritten. Each owner's checkpoints
are on a topic only that owner may write, so whatever is found there (a checkpoint, or garbage) is that
owner's statement: a finding there is the owner's, named as its producer. Last, the access log: each record
signed by the operator key valid at its time, and each API instance's records one chain, judged like a
dataset lane (records from before they were signed are counted as unsigned legacy records, form only); then
each API instance's signed checkpoints of its lane are held against the access log as the owners' are against
the dataset lanes (truncated, checkpoint_mismatch; one not signed by an operator key is a finding where it
lies); and, from the hub, the quarantine's form. No decryption key is needed or used. The report also counts,
per producer, the authentic events the hub sealed on its behalf (custodial mode: a custody key signed them,
see :mod:`sharehub.gov.custody`).

With a time window, every record is still read (a chain needs its whole history) but only those the broker
stamped inside the window are reported.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from services.audit_forms import NotOfItsKind, record_id
from sharehub import chain
from sharehub.access_records import open_access, open_lane_checkpoint
from sharehub.checkpoints import Checkpoint, open_checkpoint
from sharehub.codec import DatasetCodec, codecs_by_topic
from sharehub.envelope import Envelope
from sharehub.errors import ChainViolation, EnvelopeError
from sharehub.gov.custody import sealed_in_custody
from sharehub.gov.log import Logged
from sharehub.gov.state import RULE_VIOLATION, GovState
from sharehub.gov.verify import DUPLICATE, FORK, GAP, REPLAYED, operator_key
from sharehub.kafka import Record, TopicReader

#: Told a topic's name and its number of records; returns the callback that hears how many more are read.
Progress = Callable[[str, int], Callable[[int], None]]
#: What the audit checks of the access log (and what it cannot of records from before they were signed).
ACCESS_LOG_NOTE = "signed by the operator key, chained per API instance"
LEGACY_NOTE = "unsigned legacy record (from before access records were signed): form only"
#: A record in the unsigned form after a signed one in its partition: written since, by whoever could.
UNSIGNED = "unsigned"
QUARANTINE_NOTE = "form only: quarantine records are not signed"
ACCESS_CHECKPOINT_NOTE = "each API instance's signed lane heads, held against the access log"
_GOVERNANCE_CHAIN_REASONS = {GAP, DUPLICATE, REPLAYED, FORK, RULE_VIOLATION}


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
    #: misrouted, truncated, checkpoint_mismatch (governance: chain_gap, duplicate, replayed_sequence,
    #: chain_fork, rule_violation); "-" when the record is not authentic.
    chain: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.signature == "ok" and self.chain == "ok"

    @property
    def reason(self) -> str:
        """The one reason code of a finding (what is wrong first), or ok."""
        return self.signature if self.signature != "ok" else self.chain


@dataclass
class TopicSummary:
    records: int = 0
    verified: int = 0
    findings: int = 0
    note: str = ""


@dataclass(frozen=True)
class TimeWindow:
    """Report only records the broker stamped in [start, end); either end open when None."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def holds(self, timestamp_ms: int) -> bool:
        at = dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


@dataclass
class AuditReport:
    events: list[EventStatus] = field(default_factory=list)
    checkpoints: int = 0
    #: Producer → authentic events the hub sealed on its behalf (signed with a custody key, see
    #: :mod:`sharehub.gov.custody`); every other authentic event was sealed at the agency's own site.
    sealed_in_custody: Counter[str] = field(default_factory=Counter)
    #: topic -> what was read there and what was found.
    topics: dict[str, TopicSummary] = field(default_factory=dict)
    #: The governance state the log builds: its last sequence and its hash (``sharehub gov verify``'s).
    governance_head: int = 0
    governance_state_sha256: str = ""
    window: TimeWindow = field(default_factory=TimeWindow)

    @property
    def findings(self) -> list[EventStatus]:
        return [e for e in self.events if not e.ok]

    def note(self, status: EventStatus, record: Record, *, kept: bool = True) -> None:
        """Count ``status`` (of ``record``) if the window holds it; keep it in :attr:`events` if ``kept`` or
        a finding."""
        if not self.window.holds(record.timestamp_ms):
            return
        summary = self.topics.setdefault(status.topic, TopicSummary())
        summary.records += 1
        summary.verified += status.ok
        summary.findings += not status.ok
        if kept or not status.ok:
            self.events.append(status)

    def to_json(self) -> dict[str, object]:
        return {
            "events": sum(s.records for t, s in self.topics.items() if _is_dataset_topic(t)),
            "checkpoints": self.checkpoints,
            "findings": len(self.findings),
            "sealed_in_custody": dict(sorted(self.sealed_in_custody.items())),
            "results": [{**asdict(e), "reason": e.reason} for e in self.events],
            "topics": {topic: asdict(summary) for topic, summary in sorted(self.topics.items())},
            "governance": {"head": self.governance_head, "state_sha256": self.governance_state_sha256},
            "window": {
                "from": self.window.start.isoformat() if self.window.start else None,
                "to": self.window.end.isoformat() if self.window.end else None,
            },
        }


def _is_dataset_topic(topic: str) -> bool:
    hubs = ("-governance", "-access-log", "-access-log.checkpoints", "-quarantine")
    return not topic.endswith(hubs) and "-checkpoints." not in topic


@dataclass
class _Lane:
    """One (producer, dataset, lane) chain as the audit walks it."""

    head: chain.ChainHead | None = None
    seen: dict[int, bytes] = field(default_factory=dict)


#: (producer, dataset, lane) -> its chain as the audit walked it.
Lanes = dict[tuple[str, str, int], _Lane]


def audit_verify(
    bootstrap: str,
    governance: GovState,
    *,
    timeout: float = 60.0,
    window: TimeWindow | None = None,
    progress: Progress | None = None,
    quarantine: bool = False,
) -> AuditReport:
    """Audit the log of the hub ``governance`` belongs to (its pinned trust and topic prefix; its state is
    rebuilt from the log here, not taken on trust). ``quarantine``: also check the quarantine's form (the
    hub's own audit; an auditor may not read it)."""
    report = AuditReport(window=window or TimeWindow())
    with TopicReader(bootstrap, timeout=timeout) as reader:
        read = _Reading(reader, progress)
        state = _audit_governance(read, GovState(governance.trust, governance.topic_prefix), report)
        lanes = _audit_datasets(read, state, report)
        _audit_checkpoints(read, state, lanes, report)
        access_lanes = _audit_access_log(read, state, report)
        _audit_access_checkpoints(read, state, access_lanes, report)
        if quarantine:
            _audit_form(read, state.quarantine_topic, "quarantine", report, QUARANTINE_NOTE)
    return report


class _Reading:
    """Every topic the audit reads, through one reader, each counted on the progress bar."""

    def __init__(self, reader: TopicReader, progress: Progress | None) -> None:
        self._reader, self._progress = reader, progress

    def records(self, topic: str) -> Iterator[Record]:
        bounds = self._reader.partitions(topic)
        advance = None
        if self._progress is not None:
            advance = self._progress(topic, sum(high - low for low, high in bounds.values()))
        for batch in self._reader.batches(topic, start={p: low for p, (low, _) in bounds.items()}):
            yield from batch
            if advance is not None:
                advance(len(batch))


def _audit_governance(read: _Reading, state: GovState, report: AuditReport) -> GovState:
    """Fold the governance log record by record; a record not applied is a finding at its offset."""
    topic = state.governance_topic
    for record in read.records(topic):
        skipped = state.take(Logged(record.offset, record.value))
        status = EventStatus(topic, record.partition, record.offset, producer=state.operator)
        if skipped is not None:
            status.sequence, status.detail = skipped.sequence, skipped.detail
            if skipped.reason in _GOVERNANCE_CHAIN_REASONS:
                status.chain = skipped.reason
            else:
                status.signature, status.chain, status.producer = skipped.reason, "-", None
        else:
            status.sequence = state.head_sequence
        report.note(status, record)
    report.governance_head, report.governance_state_sha256 = state.head_sequence, state.state_hash()
    return state


def _audit_datasets(
    read: _Reading, state: GovState, report: AuditReport
) -> dict[tuple[str, str, int], _Lane]:
    lanes: dict[tuple[str, str, int], _Lane] = defaultdict(_Lane)
    codecs = codecs_by_topic(state.datasets(), state, None)  # public keys only
    for dataset in state.datasets():
        codec = codecs[dataset.topic]
        for record in read.records(dataset.topic):
            status = EventStatus(dataset.topic, record.partition, record.offset)
            envelope = _verified(codec, record.value, record.partition, status)
            if envelope is not None:
                header = envelope.header
                _walk(lanes[(header.producer, dataset.id, record.partition)], chain.link_of(envelope), status)
                if sealed_in_custody(header.signer_key_id) and report.window.holds(record.timestamp_ms):
                    report.sealed_in_custody[header.producer] += 1
            report.note(status, record)
    return lanes


def _audit_checkpoints(read: _Reading, state: GovState, lanes: Lanes, report: AuditReport) -> None:
    for owner in state.owners():
        topic = state.checkpoint_topic(owner)
        for record in read.records(topic):
            report.checkpoints += 1
            status = EventStatus(topic, record.partition, record.offset, producer=owner)
            _check_checkpoint(record.value, owner, state, lanes, status)
            report.note(status, record, kept=False)


def _audit_access_log(read: _Reading, state: GovState, report: AuditReport) -> dict[str, _Lane]:
    """Each access record signed by an operator key valid at its time, and in its API instance's chain in
    log order (deleted: a gap at the next record; reordered: out of order; duplicated; altered: its
    signature). Legacy records (before records were signed) are counted apart, unless they follow a signed
    record in their partition."""
    topic, legacy, signed_in = state.access_log_topic, 0, set[int]()
    lanes: dict[str, _Lane] = defaultdict(_Lane)
    keys = functools.partial(operator_key, state, state.trust)
    for record in read.records(topic):
        status = EventStatus(topic, record.partition, record.offset)
        try:
            opened = open_access(record.value, keys)
        except EnvelopeError as exc:
            status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
            opened = None
        if opened is not None and opened.link is None:
            status.event_id, status.detail = opened.fields["request_id"], LEGACY_NOTE
            if record.partition in signed_in:
                status.signature, status.chain = UNSIGNED, "-"
            legacy += status.ok and report.window.holds(record.timestamp_ms)
        elif opened is not None and opened.link is not None:
            signed_in.add(record.partition)
            status.producer, status.sequence = opened.fields["instance"], opened.link.sequence
            status.event_id = opened.fields["request_id"]
            _walk(lanes[opened.fields["instance"]], opened.link, status)
        report.note(status, record, kept=False)
    legacy_note = f"; {legacy} unsigned legacy records (form only)" if legacy else ""
    report.topics.setdefault(topic, TopicSummary()).note = ACCESS_LOG_NOTE + legacy_note
    return lanes


def _audit_access_checkpoints(
    read: _Reading, state: GovState, lanes: dict[str, _Lane], report: AuditReport
) -> None:
    """Each API instance's checkpoints of its lane against the access log as the audit walked it: signed
    by an operator key valid then, naming the operator, and the record it names in the log, unchanged."""
    topic = state.access_checkpoint_topic
    keys = functools.partial(operator_key, state, state.trust)
    for record in read.records(topic):
        report.checkpoints += 1
        status = EventStatus(topic, record.partition, record.offset)
        try:
            instance, checkpoint = open_lane_checkpoint(record.value, keys)
        except EnvelopeError as exc:
            status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
        else:
            status.producer, status.sequence = instance, checkpoint.sequence
            if checkpoint.producer != state.operator:
                status.signature, status.chain = "not_owner", "-"
                status.detail = f"an access-log checkpoint naming {checkpoint.producer!r}, not the operator"
            else:
                seen = lanes[instance].seen if instance in lanes else {}
                _hold(checkpoint, seen, f"access record of lane {instance}", status)
        report.note(status, record, kept=False)
    report.topics.setdefault(topic, TopicSummary()).note = ACCESS_CHECKPOINT_NOTE


def _audit_form(read: _Reading, topic: str, kind: str, report: AuditReport, note: str) -> None:
    """Each record of an unsigned topic must be of its kind; one that is not is a finding at its offset."""
    for record in read.records(topic):
        status = EventStatus(topic, record.partition, record.offset)
        try:
            status.event_id = record_id(kind, record.value)
        except NotOfItsKind as exc:
            status.signature, status.chain, status.detail = "malformed", "-", str(exc)
        report.note(status, record, kept=False)
    report.topics.setdefault(topic, TopicSummary()).note = note


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
    governance: GovState,
    lanes: Lanes,
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
    seen = lanes[(checkpoint.producer, checkpoint.dataset, checkpoint.lane)].seen
    _hold(checkpoint, seen, f"event {checkpoint.dataset} lane {checkpoint.lane}", status)


def _hold(checkpoint: Checkpoint, seen: dict[int, bytes], lane: str, status: EventStatus) -> None:
    """A checkpoint against the hashes its lane holds by sequence (``lane`` names the lane's records)."""
    where = f"{lane} sequence {checkpoint.sequence}"
    logged = seen.get(checkpoint.sequence)
    if logged is None:
        status.chain, status.detail = "truncated", f"checkpointed {where} is not in the log"
    elif logged != checkpoint.head_hash:
        status.chain, status.detail = "checkpoint_mismatch", f"{where} differs from its checkpoint"


def _walk(lane: _Lane, link: chain.Link, status: EventStatus) -> None:
    """Judge ``link`` against its chain as walked so far (in log order); the finding in ``status``."""
    verdict = chain.judge_link(lane.head, link)
    earlier = lane.seen.get(link.sequence)
    if verdict is None or verdict == chain.GAP:
        if verdict == chain.GAP:
            expected = (lane.head.sequence if lane.head else 0) + 1
            status.chain, status.detail = (
                "gap",
                f"sequences {expected}..{link.sequence - 1} are missing here",
            )
        lane.head = chain.head_after(link)
        lane.seen[link.sequence] = link.hash
    elif verdict == chain.FORK:
        status.chain, status.detail = "broken_link", "prev_hash is not the hash of the previous event"
    elif earlier is None:
        status.chain, status.detail = (
            "out_of_order",
            f"sequence {link.sequence} after {lane.head.sequence if lane.head else 0}",
        )
        lane.seen[link.sequence] = link.hash
    elif earlier == link.hash:
        status.chain, status.detail = "duplicate", f"sequence {link.sequence} appears again"
    else:
        status.chain, status.detail = "fork", f"another record already holds sequence {link.sequence}"
