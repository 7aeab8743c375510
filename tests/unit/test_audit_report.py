"""The audit report's bookkeeping: what it keeps of each record, and how a lane's result (from this process
or a worker) is merged into it."""

from __future__ import annotations

import datetime as dt
import pickle
from collections import Counter

import pytest

from services.audit import DELETED, AuditReport, EventStatus, TimeWindow
from services.audit_lanes import LaneAudit, lanes_of
from sharehub.gov.verify import Trust
from sharehub.kafka import Record
from tests.gov_support import Clock, seeded

TOPIC = "t-party-members"
JAN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def record(offset: int, at: dt.datetime = JAN) -> Record:
    return Record(TOPIC, 0, offset, None, b"", int(at.timestamp() * 1000), ())


@pytest.mark.parametrize("every_event", [True, False])
def test_a_report_counts_every_record_and_keeps_findings_always_the_rest_if_asked(every_event: bool) -> None:
    report = AuditReport(every_event=every_event)
    ok = EventStatus(TOPIC, 0, 0)
    bad = EventStatus(TOPIC, 0, 1, signature="bad_signature", chain="-")
    report.note(ok, record(0))
    report.note(bad, record(1))
    assert report.events == ([ok, bad] if every_event else [bad])
    assert report.findings == [bad]
    summary = report.topics[TOPIC]
    assert (summary.records, summary.verified, summary.findings) == (2, 1, 1)


def test_a_lane_result_adds_its_counts_findings_and_custody_and_an_empty_one_adds_no_topic() -> None:
    report = AuditReport(every_event=False)
    finding = EventStatus(TOPIC, 2, 7, producer="coc", sequence=8, chain="gap")
    report.add_lane(TOPIC, LaneAudit(5, 4, [finding], Counter({"coc": 3})))
    report.add_lane(TOPIC, LaneAudit(2, 2, [], Counter({"coc": 1, "go": 2})))
    report.add_lane("t-documents", LaneAudit())
    summary = report.topics[TOPIC]
    assert (summary.records, summary.verified, summary.findings) == (7, 6, 1)
    assert report.findings == [finding]
    assert report.sealed_in_custody == Counter({"coc": 4, "go": 2})
    assert "t-documents" not in report.topics and report.to_json()["events"] == 7


def test_the_whole_log_window_holds_every_time_and_a_bounded_one_only_its_range() -> None:
    assert TimeWindow().whole_log and TimeWindow().holds(0)
    window = TimeWindow(JAN, JAN + dt.timedelta(days=1))
    assert not window.whole_log
    stamp = int(JAN.timestamp() * 1000)
    assert window.holds(stamp) and not window.holds(stamp - 1) and not window.holds(stamp + 86_400_000)


def test_governance_state_reaches_a_worker_process_whole() -> None:
    """A worker is handed the rebuilt governance state, public keys and all (they pickle as raw bytes)."""
    from multiprocessing.reduction import ForkingPickler

    import services.audit_lanes  # noqa: F401  (registers how public keys travel)

    state = seeded(Clock()).state
    assert isinstance(state.trust, Trust)
    copy = pickle.loads(ForkingPickler.dumps(state))
    assert copy.state_hash() == state.state_hash()
    assert copy.trust.anchors.keys() == state.trust.anchors.keys()


def test_records_gone_from_a_lane_are_judged_by_the_retentions_in_force_until_the_audit() -> None:
    """Kept for ever, then a month: records gone before the month could delete any are a finding; after,
    retained away; kept for ever again, what the month could delete stays retained away."""
    clock = Clock()
    svc = seeded(clock)
    day_ms, month = 24 * 3600 * 1000, dt.timedelta(days=30)

    def start_of(at: dt.datetime) -> AuditReport:
        report = AuditReport()
        for lane in lanes_of(svc.state.dataset("tasks"), {0: (5, 9), 1: (0, 3)}, at):
            report.start_of(lane)
        return report

    kept = start_of(JAN + month)
    assert [(f.offset, f.chain) for f in kept.findings] == [(5, DELETED)]
    assert kept.findings[0].detail == "offsets 0..4 are gone, but tasks keeps its events for ever"

    clock.advance(dt.timedelta(days=1))
    svc.set_dataset_retention("go", "tasks", 30 * day_ms, "a month")
    early = start_of(JAN + 2 * dt.timedelta(days=1))
    assert [(f.offset, f.chain) for f in early.findings] == [(5, DELETED)]
    assert early.findings[0].detail == (
        "offsets 0..4 are gone, but tasks kept its events for ever, and no retention of it could delete "
        "one before 2026-01-31T00:00:00+00:00"
    )
    topic = svc.state.dataset("tasks").topic
    later = start_of(JAN + month)
    assert later.findings == [] and later.topics[topic].retained_away == 5

    clock.advance(month)
    svc.set_dataset_retention("go", "tasks", -1, "kept for ever again")
    again = start_of(JAN + 2 * month)
    assert again.findings == [] and again.topics[topic].retained_away == 5
