"""The evidence pack checked offline, with the public keys its governance log gives and nothing else.

:func:`verify_pack` needs no broker, no hub and no network: only the pack and a trust anchor the auditor
holds apart from it (:func:`~sharehub.evidence_pack.trust_fingerprint`, the same as its site's
``trust.json``). A pack carrying its own keys could be forged whole; so the pack's governance log must start
from that anchor: its first event must be signed by the operator key the anchor pins, and every later one by
an operator key the log itself registered, in one hash chain. Then, with the same functions as
``sharehub audit verify``:

- each governance record is applied (:meth:`GovState.take`): one not applied is a finding at its offset;
- each dataset event verifies on its own (:meth:`DatasetCodec.verify`: its inclusion path up to its batch's
  signed Merkle root, a key of the owner valid then, the lane it was signed for); in each lane the events
  must link (``prev_hash``) up to the owner's signed checkpoint: an event in scope is *covered* when a
  checkpoint at or after it holds (one not yet checkpointed is counted, not a finding);
- each checkpoint is signed by the owner and matches the event it names;
- each access record is signed by an operator key valid at its time;
- every record marked in scope is in it (dataset, subject, time), and the reports are what the evidence
  gives, byte for byte; the zip is canonical and the manifest holds.

:func:`reports` computes the two report members; ``audit pack`` writes them, and ``verify-pack`` recomputes
them to compare.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sharehub import chain
from sharehub.access_records import open_access
from sharehub.checkpoints import open_checkpoint
from sharehub.codec import codecs_by_topic
from sharehub.envelope import Envelope
from sharehub.errors import EnvelopeError, UnknownReferenceError
from sharehub.evidence_pack import (
    MANIFEST,
    Evidence,
    PackRecord,
    canonical_zip,
    manifest,
    parse_members,
    read_members,
    trust_fingerprint,
    write_pack,
)
from sharehub.gov.log import Logged
from sharehub.gov.state import GovState, version_json
from sharehub.gov.verify import operator_key

#: The kinds of record a pack holds, as its summary names them.
KINDS = ("governance", "events", "checkpoints", "access-log")
#: How a link that does not continue its lane is named (the audit's reason codes).
_CHAIN_REASONS = {
    chain.GAP: "gap",
    chain.FORK: "broken_link",
    chain.DUPLICATE: "duplicate",
    chain.REPLAYED: "out_of_order",
}


#: (producer, dataset, lane)
_Lane = tuple[str, str, int]


@dataclass(frozen=True)
class Finding:
    kind: str
    topic: str
    partition: int
    offset: int
    reason: str
    detail: str


@dataclass
class Tally:
    records: int = 0
    verified: int = 0
    findings: int = 0


@dataclass
class Verdict:
    """What the check found: per kind of record, the findings, and the coverage of events in scope."""

    anchor: str
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    findings: list[Finding] = field(default_factory=list)
    selected: int = 0
    covered: int = 0
    legacy_access: int = 0
    governance_head: int = 0
    governance_state_sha256: str = ""
    #: The lane and sequence of each event in scope that verified.
    in_scope: list[tuple[_Lane, int]] = field(default_factory=list)
    #: The governance the pack's log builds from the anchor (what every signature was checked against).
    state: GovState | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def note(self, kind: str, record: PackRecord | None, reason: str | None, detail: str = "") -> None:
        tally = self.tallies.setdefault(kind, Tally())
        tally.records += record is not None
        if reason is None:
            tally.verified += 1
            return
        tally.findings += 1
        where = record or PackRecord("-", -1, -1, b"")
        self.findings.append(Finding(kind, where.topic, where.partition, where.offset, reason, detail))


def seal_pack(evidence: Evidence) -> bytes:
    """The pack's bytes, with the reports :func:`verify_pack` will recompute (checked against the pack's own
    trust: the auditor's anchor is ``verify-pack``'s to bring)."""
    verdict = check(evidence, trust_fingerprint(evidence.trust))
    return write_pack(dataclasses.replace(evidence, reports=reports(evidence, verdict)))


def verify_pack(data: bytes, anchor: str) -> tuple[Evidence, Verdict]:
    """Check a pack's bytes against ``anchor``; PackInvalid when it is no pack at all."""
    members = read_members(data)
    evidence = parse_members(members)
    verdict = check(evidence, anchor)
    if canonical_zip(list(members.items())) != data:
        verdict.note(
            "pack", None, "not_canonical", "the zip differs from its canonical form (headers changed)"
        )
    if manifest(members) != members[MANIFEST]:
        verdict.note("pack", None, "manifest_mismatch", "a member's SHA-256 is not the manifest's")
    if reports(evidence, verdict) != evidence.reports:
        verdict.note("pack", None, "report_mismatch", "the reports are not what the evidence gives")
    return evidence, verdict


def check(evidence: Evidence, anchor: str) -> Verdict:
    """Every record of ``evidence`` verified under the governance its own log builds from ``anchor``."""
    verdict = Verdict(trust_fingerprint(evidence.trust))
    if verdict.anchor != anchor:
        verdict.note(
            "pack", None, "anchor_mismatch", f"the pack's trust is {verdict.anchor}, not the anchor {anchor}"
        )
    state = _governance(evidence, verdict)
    lanes = _events(evidence, state, verdict)
    _checkpoints(evidence, state, lanes, verdict)
    _access(evidence, state, verdict)
    return verdict


def reports(evidence: Evidence, verdict: Verdict) -> tuple[bytes, bytes]:
    """The pack's two reports (JSON, text): what the evidence is and what checking it found."""
    state = verdict.state or GovState(evidence.trust.trust, evidence.trust.topic_prefix)
    body = {
        "scope": evidence.scope.to_json(),
        "created_at": evidence.created_at,
        "anchor": verdict.anchor,
        "governance": {"head": verdict.governance_head, "state_sha256": verdict.governance_state_sha256},
        "records": {kind: asdict(verdict.tallies[kind]) for kind in KINDS},
        "events_in_scope": verdict.selected,
        "events_covered_by_checkpoints": verdict.covered,
        "unsigned_legacy_access_records": verdict.legacy_access,
        "agreements": _agreements(evidence, state),
        "keys": _keys(state, verdict.in_scope),
        "findings": [asdict(f) for f in verdict.findings if f.kind != "pack"],
    }
    text = json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"
    return text, _text(body).encode()


# --- each kind of record --------------------------------------------------------------------------------


def _governance(evidence: Evidence, verdict: Verdict) -> GovState:
    state = GovState(evidence.trust.trust, evidence.trust.topic_prefix)
    for record in evidence.governance:
        skipped = state.take(Logged(record.offset, record.value))
        if skipped is not None:
            verdict.note("governance", record, skipped.reason, skipped.detail)
        elif record.topic != state.governance_topic:
            verdict.note("governance", record, "malformed", "not on the governance topic")
        else:
            verdict.note("governance", record, None)
    if not evidence.governance:
        verdict.note("governance", None, "chain_gap", "the pack holds no governance log")
    verdict.governance_head, verdict.governance_state_sha256 = state.head_sequence, state.state_hash()
    verdict.state = state
    return state


#: (producer, dataset, lane) → sequence → hash of the event the pack holds there.
_Lanes = dict[tuple[str, str, int], dict[int, bytes]]


def _events(evidence: Evidence, state: GovState, verdict: Verdict) -> _Lanes:
    """Each event verified alone; in each lane, each linked to the one before it in the pack."""
    codecs = codecs_by_topic(state.datasets(), state, None)  # public keys only
    lanes: _Lanes = {}
    for record in evidence.events:
        verdict.selected += record.selected
        codec = codecs.get(record.topic)
        if codec is None:
            verdict.note("events", record, "unknown_dataset", "no dataset of the pack's governance")
            continue
        try:
            envelope = codec.verify(record.value, record.partition)
        except EnvelopeError as exc:
            verdict.note("events", record, exc.reason, str(exc))
            continue
        header, link = envelope.header, chain.link_of(envelope)
        lane = (header.producer, header.dataset, header.lane)
        held = lanes.setdefault(lane, {})
        broken = None if not held else chain.judge_link(chain.ChainHead(*_last(held)), link)
        held[header.sequence] = link.hash
        outside = _outside(evidence, envelope) if record.selected else ""
        if broken is not None:
            verdict.note("events", record, _CHAIN_REASONS[broken], f"sequence {header.sequence}")
        elif outside:
            verdict.note("events", record, "out_of_scope", outside)
        else:
            verdict.note("events", record, None)
            if record.selected:
                verdict.in_scope.append((lane, header.sequence))
    return lanes


def _last(held: dict[int, bytes]) -> tuple[int, bytes]:
    """The lane's head as the pack holds it so far: the event added last."""
    return next(reversed(held.items()))


def _outside(evidence: Evidence, envelope: Envelope) -> str:
    """Why an event marked in scope is not in it ("" when it is)."""
    scope, header = evidence.scope, envelope.header
    if not scope.holds_time(header.occurred_at):
        return f"occurred at {header.occurred_at.isoformat()}, outside the pack's time range"
    if scope.dataset is not None and header.dataset != scope.dataset:
        return f"an event of {header.dataset!r}, not of {scope.dataset!r}"
    if scope.subject_ref is not None and not header.subject_key_id.endswith("/" + scope.subject_ref):
        return "an event of another subject"
    return ""


def _checkpoints(evidence: Evidence, state: GovState, lanes: _Lanes, verdict: Verdict) -> None:
    reach: dict[tuple[str, str, int], int] = {}
    for record in evidence.checkpoints:
        try:
            checkpoint = open_checkpoint(record.value, state)
            owner = state.dataset_owner(checkpoint.dataset)
        except (EnvelopeError, UnknownReferenceError) as exc:
            verdict.note("checkpoints", record, getattr(exc, "reason", "unknown_dataset"), str(exc))
            continue
        lane = (checkpoint.producer, checkpoint.dataset, checkpoint.lane)
        held = lanes.get(lane, {}).get(checkpoint.sequence)
        reason = None
        if checkpoint.producer != owner or record.topic != state.checkpoint_topic(owner):
            reason = "not_owner"
        elif held is None:
            reason = "truncated"
        elif held != checkpoint.head_hash:
            reason = "checkpoint_mismatch"
        else:
            reach[lane] = max(reach.get(lane, 0), checkpoint.sequence)
        where = f"{checkpoint.dataset} lane {checkpoint.lane} sequence {checkpoint.sequence}"
        verdict.note("checkpoints", record, reason, where if reason else "")
    verdict.covered = sum(1 for lane, seq in verdict.in_scope if seq <= reach.get(lane, 0))


def _access(evidence: Evidence, state: GovState, verdict: Verdict) -> None:
    keys = functools.partial(operator_key, state, state.trust)
    for record in evidence.access:
        try:
            opened = open_access(record.value, keys)
        except EnvelopeError as exc:
            verdict.note("access-log", record, exc.reason, str(exc))
            continue
        verdict.legacy_access += opened.legacy
        if record.topic != state.access_log_topic:
            verdict.note("access-log", record, "malformed", "not on the access log's topic")
        elif record.selected and not evidence.scope.holds_access(opened.fields):
            detail = f"access record {opened.fields['request_id']} is not in the pack's scope"
            verdict.note("access-log", record, "out_of_scope", detail)
        else:
            verdict.note("access-log", record, None)


# --- the report -------------------------------------------------------------------------------------------


def _agreements(evidence: Evidence, state: GovState) -> list[dict[str, Any]]:
    """Every version of the agreements the scope concerns (the consumer's, or the dataset's), up to its
    end: which terms were in force, from which governance event."""
    scope, end = evidence.scope, evidence.scope.end
    out = []
    for agreement_id, versions in sorted(state.versions.items()):
        terms = versions[-1].terms
        if scope.consumer not in (None, terms.consumer) or scope.dataset not in (None, terms.dataset):
            continue
        kept = [version_json(v) for v in versions if end is None or v.at < end]
        out.append(
            {"id": agreement_id, "consumer": terms.consumer, "dataset": terms.dataset, "versions": kept}
        )
    return out


def _keys(state: GovState, in_scope: list[tuple[_Lane, int]]) -> dict[str, list[dict[str, Any]]]:
    """The public keys of the operator and of every agency whose signature the pack holds, with the windows
    in which they were valid."""
    agencies = {state.operator} | {producer for (producer, _, _), _ in in_scope}
    return {
        a: [k.model_dump(mode="json") for k in state.agency(a).keys]
        for a in sorted(agencies)
        if a in state.agencies_
    }


def _text(body: dict[str, Any]) -> str:
    scope = body["scope"]
    asked = ", ".join(f"{k} {v}" for k, v in scope.items() if v is not None) or "everything"
    lines = [
        f"Evidence pack: {asked}",
        f"made {body['created_at']}; trust anchor {body['anchor']}",
        f"governance: {body['governance']['head']} events, state {body['governance']['state_sha256']}",
    ]
    for kind, tally in body["records"].items():
        records, verified, findings = tally["records"], tally["verified"], tally["findings"]
        lines.append(f"{kind}: {records} records, {verified} verified, {findings} findings")
    in_scope, covered = body["events_in_scope"], body["events_covered_by_checkpoints"]
    lines.append(f"events in scope: {in_scope}, covered by a signed checkpoint: {covered}")
    for agreement in body["agreements"]:
        last = agreement["versions"][-1] if agreement["versions"] else None
        state = f"{last['stage']} since event {last['sequence']}" if last else "not yet proposed"
        lines.append(f"agreement {agreement['id']}: {len(agreement['versions'])} versions, {state}")
    counts = Counter(f["reason"] for f in body["findings"])
    lines.append("findings: " + (", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none"))
    return "\n".join(lines) + "\n"
