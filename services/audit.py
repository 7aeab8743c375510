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
each API instance's signed checkpoints of its lane are held against the access log as the owners' are
against the dataset lanes (truncated, checkpoint_mismatch; one not signed by an operator key is a finding
where it lies). Checkpoints are read before the records they speak of, so a lane still being written is not
reported cut short. From the hub, the quarantine's form. No decryption key is needed or used. The report
also counts, per producer, the authentic events the hub sealed on its behalf (custodial mode: a custody key
signed them, see :mod:`sharehub.gov.custody`). Every act of a party other than the operator carries that
party's own seal (:mod:`sharehub.gov.acts`); one whose seal is missing, by another agency's key, by a key
not valid then, stale or over other terms is a finding at its offset (``act_*``, its link still counts), as
is an event of a release without seals after one with them (``act_downgrade``); acts written before seals
existed are counted in a note, as attested by the operator only.

With a time window, every record is still read (a chain needs its whole history) but only those the broker
stamped inside the window are reported.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field

from services.audit_forms import NotOfItsKind, record_id
from services.audit_lanes import Lane, LaneAudit, Progress, audit_lanes
from services.audit_status import ChainWalk, walk
from services.audit_status import EventStatus as EventStatus
from services.audit_status import TimeWindow as TimeWindow
from services.audit_status import TopicSummary as TopicSummary
from sharehub.access_records import open_access, open_lane_checkpoint
from sharehub.checkpoints import Checkpoint, open_checkpoint
from sharehub.errors import EnvelopeError
from sharehub.gov import acts
from sharehub.gov.log import Logged
from sharehub.gov.state import RULE_VIOLATION, GovState
from sharehub.gov.verify import DUPLICATE, FORK, GAP, REPLAYED, operator_key
from sharehub.kafka import Record, TopicReader

#: What the audit checks of the access log (and what it cannot of records from before they were signed).
ACCESS_LOG_NOTE = "signed by the operator key, chained per API instance"
LEGACY_NOTE = "unsigned legacy record (from before access records were signed): form only"
#: A record in the unsigned form after a signed one in its partition: written since, by whoever could.
UNSIGNED = "unsigned"
QUARANTINE_NOTE = "form only: quarantine records are not signed"
ACCESS_CHECKPOINT_NOTE = "each API instance's signed lane heads, held against the access log"
#: A lane of a dataset kept for ever that starts after offset 0: records were deleted from it.
DELETED = "deleted_records"
_GOVERNANCE_CHAIN_REASONS = {GAP, DUPLICATE, REPLAYED, FORK, RULE_VIOLATION}


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
    #: Acts of parties other than the operator written before act seals existed: the operator alone
    #: attests them (a note, not a finding).
    governance_legacy_acts: int = 0
    window: TimeWindow = field(default_factory=TimeWindow)
    #: Keep every record's status in :attr:`events` (what ``--json`` and ``--all`` show), or the findings
    #: only (the counts are in :attr:`topics` either way).
    every_event: bool = True

    @property
    def findings(self) -> list[EventStatus]:
        return [e for e in self.events if not e.ok]

    def note(self, status: EventStatus, record: Record, *, kept: bool = True) -> None:
        """Count ``status`` (of ``record``) if the window holds it; keep it in :attr:`events` if a finding,
        or if ``kept`` and the report keeps every event."""
        if not self.window.holds(record.timestamp_ms):
            return
        summary = self.topics.setdefault(status.topic, TopicSummary())
        summary.records += 1
        summary.verified += status.ok
        summary.findings += not status.ok
        if (kept and self.every_event) or not status.ok:
            self.events.append(status)

    def add_lane(self, topic: str, lane: LaneAudit) -> None:
        """What the audit of one lane of a dataset topic found (counted there, within the window)."""
        if lane.records:
            summary = self.topics.setdefault(topic, TopicSummary())
            summary.records += lane.records
            summary.verified += lane.verified
            summary.findings += lane.records - lane.verified
        self.events += lane.statuses
        self.sealed_in_custody.update(lane.sealed_in_custody)

    def start_of(self, lane: Lane) -> None:
        """Where a dataset lane starts: records before its first were retained away under a retention of
        its dataset in force now or before, or, from a dataset kept for ever until no retention could have
        deleted them yet, deleted (a finding)."""
        if not lane.start:
            return
        summary = self.topics.setdefault(lane.topic, TopicSummary())
        if lane.retains:
            summary.retained_away += lane.start
            summary.note = f"{summary.retained_away} records retained away (the dataset's retention)"
            return
        summary.findings += 1
        self.events.append(
            EventStatus(
                lane.topic,
                lane.partition,
                lane.start,
                chain=DELETED,
                detail=f"offsets 0..{lane.start - 1} are gone, but {lane.dataset} {_kept_for_ever(lane)}",
            )  # fmt: skip
        )

    def to_json(self) -> dict[str, object]:
        return {
            "events": sum(s.records for t, s in self.topics.items() if _is_dataset_topic(t)),
            "checkpoints": self.checkpoints,
            "findings": len(self.findings),
            "sealed_in_custody": dict(sorted(self.sealed_in_custody.items())),
            "results": [{**asdict(e), "reason": e.reason} for e in self.events],
            "topics": {topic: asdict(summary) for topic, summary in sorted(self.topics.items())},
            "governance": {
                "head": self.governance_head,
                "state_sha256": self.governance_state_sha256,
                "legacy_acts": self.governance_legacy_acts,
            },
            "window": {
                "from": self.window.start.isoformat() if self.window.start else None,
                "to": self.window.end.isoformat() if self.window.end else None,
            },
        }


def _kept_for_ever(lane: Lane) -> str:
    """Why records gone from ``lane`` cannot have been retained away."""
    if lane.retains_from is None:
        return "keeps its events for ever"
    since = lane.retains_from.isoformat(timespec="seconds")
    return f"kept its events for ever, and no retention of it could delete one before {since}"


def _is_dataset_topic(topic: str) -> bool:
    hubs = ("-governance", "-access-log", "-access-log.checkpoints", "-quarantine")
    return not topic.endswith(hubs) and "-checkpoints." not in topic


def audit_verify(
    bootstrap: str,
    governance: GovState,
    *,
    timeout: float = 60.0,
    window: TimeWindow | None = None,
    progress: Progress | None = None,
    quarantine: bool = False,
    workers: int | None = 1,
    every_event: bool = True,
    part_size: int | None = None,
) -> AuditReport:
    """Audit the log of the hub ``governance`` belongs to (its pinned trust and topic prefix; its state is
    rebuilt from the log here, not taken on trust). ``quarantine``: also check the quarantine's form (the
    hub's own audit; an auditor may not read it). ``workers``: processes auditing the dataset topics' lanes
    (:mod:`services.audit_lanes`; None: one per CPU, for a log large enough; the report is the same with
    any number), each taking parts of ``part_size`` records of a lane at a time (None: enough parts to
    keep every worker busy). ``every_event``: keep every record's status in the report, not only the
    findings.

    The checkpoints are read before the dataset topics, so every event a checkpoint names was written
    before the dataset topics' ends were taken: a lane that is still being written to is not reported
    truncated."""
    report = AuditReport(window=window or TimeWindow(), every_event=every_event)
    with TopicReader(bootstrap, timeout=timeout) as reader:
        read = _Reading(reader, progress)
        state = _audit_governance(read, GovState(governance.trust, governance.topic_prefix), report)
        checkpoints = _read_checkpoints(read, state)
        access_checkpoints = _read_access_checkpoints(read, state)
        held = _audit_datasets(
            bootstrap, reader, state, report, checkpoints, progress, (workers, part_size), timeout
        )
        _audit_checkpoints(checkpoints, held, report)
        access_lanes = _audit_access_log(read, state, report)
        _audit_access_checkpoints(access_checkpoints, access_lanes, report)
        report.topics.setdefault(state.access_checkpoint_topic, TopicSummary()).note = ACCESS_CHECKPOINT_NOTE
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
            elif skipped.reason in acts.REASONS:  # the link counts; the party's seal does not
                status.signature = skipped.reason
            else:
                status.signature, status.chain, status.producer = skipped.reason, "-", None
        else:
            status.sequence = state.head_sequence
        report.note(status, record)
    report.governance_head, report.governance_state_sha256 = state.head_sequence, state.state_hash()
    report.governance_legacy_acts = state.legacy_acts
    if state.legacy_acts:
        summary = report.topics.setdefault(topic, TopicSummary())
        summary.note = (
            f"{state.legacy_acts} acts of parties from before act seals: attested by the operator only"
        )
    return state


def _audit_datasets(
    bootstrap: str,
    reader: TopicReader,
    state: GovState,
    report: AuditReport,
    checkpoints: list[_ReadCheckpoint],
    progress: Progress | None,
    spread: tuple[int | None, int | None],
    timeout: float,
) -> _Held:
    """Every lane of every dataset topic, in lane order, into ``report``; what the lanes hold that the
    checkpoints name. ``spread``: the workers, and the records of each part of a lane they take."""
    checkpointed: dict[tuple[str, str, int], set[int]] = defaultdict(set)
    for read in checkpoints:
        if read.checkpoint is not None:
            c = read.checkpoint
            checkpointed[(c.producer, c.dataset, c.lane)].add(c.sequence)
    audited = audit_lanes(
        bootstrap, state, reader, checkpointed=checkpointed, window=report.window,
        every_event=report.every_event, workers=spread[0], part_size=spread[1], progress=progress,
        timeout=timeout,
    )  # fmt: skip
    held = _Held()
    for lane, found in audited:
        report.add_lane(lane.topic, found)
        report.start_of(lane)
        held.hashes.update({(p, lane.dataset, lane.partition, s): h for (p, s), h in found.logged.items()})
        if lane.retained_away:
            held.retained_lanes.add((lane.dataset, lane.partition))
            held.first.update({(p, lane.dataset, lane.partition): s for p, s in found.first_held.items()})
    return held


@dataclass
class _Held:
    """What the dataset lanes hold that the checkpoints are judged against."""

    #: (producer, dataset, lane, sequence) → the hash the log holds there, for each checkpointed sequence.
    hashes: dict[tuple[str, str, int, int], bytes] = field(default_factory=dict)
    #: (dataset, lane)s whose records before their first were retained away.
    retained_lanes: set[tuple[str, int]] = field(default_factory=set)
    #: In those lanes, (producer, dataset, lane) → the least sequence of its chain held.
    first: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def retained_away(self, checkpoint: Checkpoint) -> bool:
        """Whether the event ``checkpoint`` names was before its lane's first record, retained away."""
        c = checkpoint
        if (c.dataset, c.lane) not in self.retained_lanes:
            return False
        first = self.first.get((c.producer, c.dataset, c.lane))
        return first is None or c.sequence < first


@dataclass
class _ReadCheckpoint:
    """A record of an owner's checkpoint topic, opened (or why not, in ``status``)."""

    record: Record
    status: EventStatus
    checkpoint: Checkpoint | None


def _read_checkpoints(read: _Reading, state: GovState) -> list[_ReadCheckpoint]:
    """Every owner's checkpoint topic: each record opened, with public keys only; judged against the log by
    :func:`_audit_checkpoints` once the dataset topics are read."""
    found = []
    for owner in state.owners():
        topic = state.checkpoint_topic(owner)
        for record in read.records(topic):
            status = EventStatus(topic, record.partition, record.offset, producer=owner)
            found.append(
                _ReadCheckpoint(record, status, _opened_checkpoint(record.value, owner, state, status))
            )
    return found


def _audit_checkpoints(checkpoints: list[_ReadCheckpoint], held: _Held, report: AuditReport) -> None:
    for read in checkpoints:
        report.checkpoints += 1
        if read.checkpoint is not None and held.retained_away(read.checkpoint):
            c = read.checkpoint
            read.status.detail = f"event {c.dataset} lane {c.lane} sequence {c.sequence} was retained away"
        elif read.checkpoint is not None:
            _check_checkpoint(read.checkpoint, held.hashes, read.status)
        report.note(read.status, read.record, kept=False)


def _audit_access_log(read: _Reading, state: GovState, report: AuditReport) -> dict[str, ChainWalk]:
    """Each access record signed by an operator key valid at its time, and in its API instance's chain in
    log order (deleted: a gap at the next record; reordered: out of order; duplicated; altered: its
    signature). Legacy records (before records were signed) are counted apart, unless they follow a signed
    record in their partition."""
    topic, legacy, signed_in = state.access_log_topic, 0, set[int]()
    lanes: dict[str, ChainWalk] = defaultdict(ChainWalk)
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
            walk(lanes[opened.fields["instance"]], opened.link, status)
        report.note(status, record, kept=False)
    legacy_note = f"; {legacy} unsigned legacy records (form only)" if legacy else ""
    report.topics.setdefault(topic, TopicSummary()).note = ACCESS_LOG_NOTE + legacy_note
    return lanes


def _read_access_checkpoints(read: _Reading, state: GovState) -> list[tuple[_ReadCheckpoint, str | None]]:
    """Each API instance's checkpoints of its access-log lane, opened with public keys only (signed by an
    operator key valid then, naming the operator), each with its instance; judged against the access log
    by :func:`_audit_access_checkpoints` once that is read."""
    topic = state.access_checkpoint_topic
    keys = functools.partial(operator_key, state, state.trust)
    found: list[tuple[_ReadCheckpoint, str | None]] = []
    for record in read.records(topic):
        status = EventStatus(topic, record.partition, record.offset)
        try:
            instance, checkpoint = open_lane_checkpoint(record.value, keys)
        except EnvelopeError as exc:
            status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
            found.append((_ReadCheckpoint(record, status, None), None))
            continue
        status.producer, status.sequence = instance, checkpoint.sequence
        if checkpoint.producer != state.operator:
            status.signature, status.chain = "not_owner", "-"
            status.detail = f"an access-log checkpoint naming {checkpoint.producer!r}, not the operator"
            found.append((_ReadCheckpoint(record, status, None), instance))
        else:
            found.append((_ReadCheckpoint(record, status, checkpoint), instance))
    return found


def _audit_access_checkpoints(
    checkpoints: list[tuple[_ReadCheckpoint, str | None]], lanes: dict[str, ChainWalk], report: AuditReport
) -> None:
    for read, instance in checkpoints:
        report.checkpoints += 1
        if read.checkpoint is not None and instance is not None:
            held = lanes[instance].seen.get(read.checkpoint.sequence) if instance in lanes else None
            _hold(read.checkpoint, held, f"access record of lane {instance}", read.status)
        report.note(read.status, read.record, kept=False)


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


def _opened_checkpoint(
    value: bytes, owner: str, governance: GovState, status: EventStatus
) -> Checkpoint | None:
    """A checkpoint on ``owner``'s topic, opened with public keys only; None (the finding in ``status``)
    when it is not one, or is another producer's."""
    try:
        checkpoint = open_checkpoint(value, governance)
    except EnvelopeError as exc:
        status.signature, status.chain, status.detail = exc.reason, "-", f"written by {owner!r}: {exc}"
        return None
    status.sequence = checkpoint.sequence
    if checkpoint.producer != owner:
        status.signature, status.chain = "not_owner", "-"
        status.detail = f"a checkpoint of {checkpoint.producer!r} on the checkpoint topic of {owner!r}"
        return None
    return checkpoint


def _check_checkpoint(
    checkpoint: Checkpoint, logged: Mapping[tuple[str, str, int, int], bytes], status: EventStatus
) -> None:
    """A checkpoint against the lanes as the log holds them."""
    held = logged.get((checkpoint.producer, checkpoint.dataset, checkpoint.lane, checkpoint.sequence))
    _hold(checkpoint, held, f"event {checkpoint.dataset} lane {checkpoint.lane}", status)


def _hold(checkpoint: Checkpoint, held: bytes | None, lane: str, status: EventStatus) -> None:
    """A checkpoint against the hash its lane holds at the sequence it names (None: the lane holds none
    there; ``lane`` names the lane's records)."""
    where = f"{lane} sequence {checkpoint.sequence}"
    if held is None:
        status.chain, status.detail = "truncated", f"checkpointed {where} is not in the log"
    elif held != checkpoint.head_hash:
        status.chain, status.detail = "checkpoint_mismatch", f"{where} differs from its checkpoint"
