"""A dataset's retention changed after it is declared (``DatasetRetentionChanged``): by its owner or the
operator, within the range a declaration takes, never silently the same; the state keeps each retention
and when it took effect, and records a topic no longer holds are judged by the retentions in force until
then (:func:`sharehub.gov.retention.retains_from`); replay reaches the same state, and a change on the log
that breaks the rules links the chain but changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from sharehub.errors import InputError, NotPermitted, UnknownReferenceError
from sharehub.gov import GovernanceService, fold
from sharehub.gov import events as ev
from sharehub.gov.retention import LONGEST_MS, retains_from
from sharehub.gov.views import KEPT_FOR_EVER
from tests.gov_support import DAY, T0, Clock, logged_past_the_rules
from tests.unit.test_gov_keys import clock, svc
from tests.unit.test_purpose_vocabulary import refused

__all__ = ["clock", "svc"]  # the fixtures: a settable clock, the seeded hub

DATASET = "tasks"  # owner go, declared kept for ever at T0
HOUR = dt.timedelta(hours=1)
DAY_MS = 24 * 3600 * 1000


def test_the_owner_shortens_and_the_state_and_its_view_follow(svc: GovernanceService, clock: Clock) -> None:
    clock.advance(DAY)
    event = svc.set_dataset_retention("go", DATASET, 30 * DAY_MS, "kept a month, as the archive rules say")
    assert event.type == "DatasetRetentionChanged" and event.actor == "go"
    record = svc.state.datasets_[DATASET]
    assert record.retention_ms == 30 * DAY_MS
    assert record.retentions == ((T0, KEPT_FOR_EVER), (T0 + DAY, 30 * DAY_MS))
    view = svc.state.dataset(DATASET)
    assert view.retention_ms == 30 * DAY_MS and view.retains
    # Kept for ever for a day, then a month: nothing it holds can be a month old before T0 + 30 days.
    assert view.retains_from == T0 + 30 * DAY
    assert "retains_from" not in view.model_dump()  # derived from the log: the state's dump is as before


def test_the_operator_may_change_it_and_no_other_agency(svc: GovernanceService) -> None:
    refused(svc, NotPermitted, "only the owner 'go' or the operator changes the retention of 'tasks'",
            lambda: svc.set_dataset_retention("coc", DATASET, DAY_MS, "mine now"))  # fmt: skip
    svc.set_dataset_retention("cpo", "party-members", DAY_MS, "governance decided")
    assert svc.state.dataset("party-members").retention_ms == DAY_MS


@pytest.mark.parametrize("retention_ms", [0, -2, -DAY_MS, LONGEST_MS + 1])
def test_a_retention_outside_the_declared_range_is_refused(svc: GovernanceService, retention_ms: int) -> None:
    message = (
        f"retention_ms must be -1 \\(for ever\\) or from 1 to {LONGEST_MS} milliseconds, not {retention_ms}"
    )
    refused(svc, InputError, message, lambda: svc.set_dataset_retention("go", DATASET, retention_ms, "r"))

    def declare() -> None:
        svc.declare_dataset("cpo", "t3", "go", "internal", "task_id", retention_ms=retention_ms)

    refused(svc, InputError, message, declare)


def test_the_same_retention_again_is_refused_not_logged(svc: GovernanceService) -> None:
    refused(svc, InputError, "'tasks' already keeps its events for ever: the change changes nothing",
            lambda: svc.set_dataset_retention("go", DATASET, KEPT_FOR_EVER, "again"))  # fmt: skip
    svc.set_dataset_retention("go", DATASET, LONGEST_MS, "the longest the log can say")
    refused(svc, InputError, f"already keeps its events {LONGEST_MS} ms",
            lambda: svc.set_dataset_retention("go", DATASET, LONGEST_MS, "again"))  # fmt: skip


def test_an_unknown_dataset_and_no_reason_are_refused(svc: GovernanceService) -> None:
    refused(svc, UnknownReferenceError, "dataset 'nothing' does not exist",
            lambda: svc.set_dataset_retention("cpo", "nothing", DAY_MS, "r"))  # fmt: skip
    refused(svc, InputError, "a reason is required",
            lambda: svc.set_dataset_retention("go", DATASET, DAY_MS, " "))  # fmt: skip


def test_lengthening_to_for_ever_takes_back_nothing_a_retention_could_already_delete(
    svc: GovernanceService, clock: Clock
) -> None:
    clock.advance(DAY)
    svc.set_dataset_retention("go", DATASET, HOUR // dt.timedelta(milliseconds=1), "an hour")
    clock.advance(DAY)
    svc.set_dataset_retention("go", DATASET, KEPT_FOR_EVER, "kept for ever again")
    view = svc.state.dataset(DATASET)
    assert not view.retains and view.retains_from == T0 + DAY
    assert view.retained_away_by(T0 + 2 * DAY) and not view.retained_away_by(T0 + DAY - HOUR)


def test_a_retention_that_ended_before_it_could_delete_anything_counts_for_nothing(
    svc: GovernanceService, clock: Clock
) -> None:
    clock.advance(HOUR)
    svc.set_dataset_retention("go", DATASET, DAY_MS, "a day")
    clock.advance(HOUR)  # T0 + 2 h: no event of it is a day old yet
    svc.set_dataset_retention("go", DATASET, KEPT_FOR_EVER, "changed our mind")
    view = svc.state.dataset(DATASET)
    assert view.retains_from is None and not view.retained_away_by(T0 + 365 * DAY)


def test_the_first_moment_a_retention_could_delete_an_event() -> None:
    """The declaration's retention could from the start (the audit never judged its ages); one after a
    time kept for ever, once it took effect and an event written at the declaration was that old; one
    that ended before that counts for nothing; the earliest of them is the answer."""
    week, day = 7 * DAY_MS, DAY_MS
    assert retains_from([]) is None
    assert retains_from([(T0, KEPT_FOR_EVER)]) is None
    assert retains_from([(T0, week)]) == T0
    assert retains_from([(T0, KEPT_FOR_EVER), (T0 + DAY, week)]) == T0 + 7 * DAY
    assert retains_from([(T0, KEPT_FOR_EVER), (T0 + 30 * DAY, week)]) == T0 + 30 * DAY
    assert retains_from([(T0, KEPT_FOR_EVER), (T0 + DAY, week), (T0 + 2 * DAY, KEPT_FOR_EVER)]) is None
    shortened_again = [(T0, KEPT_FOR_EVER), (T0 + DAY, week), (T0 + 2 * DAY, day)]
    assert retains_from(shortened_again) == T0 + 2 * DAY
    assert retains_from([(T0, day), (T0 + DAY, KEPT_FOR_EVER), (T0 + 9 * DAY, week)]) == T0
    assert retains_from([(T0, KEPT_FOR_EVER), (T0 + DAY, LONGEST_MS)]) == dt.datetime.max.replace(
        tzinfo=dt.UTC
    )


def test_replay_reaches_the_same_state(svc: GovernanceService, clock: Clock) -> None:
    svc.set_dataset_retention("go", DATASET, DAY_MS, "a day")
    clock.advance(DAY)
    svc.set_dataset_retention("cpo", "party-members", 7 * DAY_MS, "a week")
    svc.set_dataset_retention("go", DATASET, KEPT_FOR_EVER, "for ever again")
    replayed = fold(svc._log.read_all(), svc.state.trust, svc.state.topic_prefix)
    assert replayed.state_hash() == svc.state.state_hash()
    assert replayed.skipped == []
    assert replayed.datasets() == svc.state.datasets()  # each with the moment it retains from
    assert [d["retention_ms"] for d in replayed.dump()["datasets"]] == [7 * DAY_MS, KEPT_FOR_EVER]


def test_a_change_on_the_log_that_breaks_a_rule_links_the_chain_but_changes_nothing(
    svc: GovernanceService,
) -> None:
    none_at_all = ev.DatasetRetentionChanged(DATASET, 0, "no retention at all")
    assert "retention_ms must be -1" in logged_past_the_rules(svc, none_at_all)
