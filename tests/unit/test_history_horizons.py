"""Each dataset's history horizon: the later of the hub's (SHAREHUB_HISTORY_DAYS) and the dataset's own
declared retention, each when set; none when neither is."""

from __future__ import annotations

import datetime as dt

from sharehub.gov.views import Dataset
from sharehub.history import history_horizon, history_horizons
from sharehub.settings import Settings

NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
DAY_MS = 86_400_000


def dataset(id: str, retention_ms: int) -> Dataset:
    return Dataset(
        id=id, owner="coc", classification="internal", key_field="member_id", retention_ms=retention_ms
    )


def hub(history_days: float | None) -> Settings:
    return Settings(history_days=history_days)


def test_retention_alone_sets_the_horizon() -> None:
    horizon = history_horizon(hub(None), dataset("party-members", 7 * DAY_MS), NOW)
    assert horizon is not None
    assert horizon.at == NOW - dt.timedelta(days=7)
    assert horizon.kept == "dataset 'party-members' is retained for 7 days (its retention_ms, 604800000)"


def test_the_hubs_history_days_alone_set_the_horizon() -> None:
    horizon = history_horizon(hub(30), dataset("party-members", -1), NOW)
    assert horizon is not None
    assert horizon.at == NOW - dt.timedelta(days=30)
    assert horizon.kept == "the hub's read models keep 30 days of history (SHAREHUB_HISTORY_DAYS)"


def test_with_both_the_later_horizon_wins() -> None:
    shorter_retention = history_horizon(hub(30), dataset("documents", 2 * DAY_MS), NOW)
    assert shorter_retention is not None and shorter_retention.at == NOW - dt.timedelta(days=2)
    assert "retained for 2 days" in shorter_retention.kept
    shorter_history = history_horizon(hub(1.5), dataset("documents", 2 * DAY_MS), NOW)
    assert shorter_history is not None and shorter_history.at == NOW - dt.timedelta(days=1.5)
    assert "keep 1.5 days of history" in shorter_history.kept


def test_with_neither_the_dataset_keeps_every_version() -> None:
    assert history_horizon(hub(None), dataset("party-members", -1), NOW) is None


def test_every_dataset_with_a_bound_has_its_own_horizon_and_the_others_are_absent() -> None:
    datasets = [dataset("party-members", 7 * DAY_MS), dataset("documents", 3_600_000), dataset("tasks", -1)]
    found = history_horizons(hub(None), datasets, NOW)
    assert {d: h.at for d, h in found.items()} == {
        "party-members": NOW - dt.timedelta(days=7),
        "documents": NOW - dt.timedelta(hours=1),
    }
    assert "retained for 1 hour (its retention_ms, 3600000)" in found["documents"].kept
    with_days = history_horizons(hub(3), datasets, NOW)
    assert {d: h.at for d, h in with_days.items()} == {
        "party-members": NOW - dt.timedelta(days=3),
        "documents": NOW - dt.timedelta(hours=1),
        "tasks": NOW - dt.timedelta(days=3),
    }


def test_a_bound_longer_than_any_representable_time_keeps_everything_instead_of_failing() -> None:
    assert history_horizon(hub(None), dataset("archive", 10**17), NOW) is None  # over 3 million years
    assert history_horizon(hub(10**12), dataset("archive", -1), NOW) is None
    short = history_horizon(hub(10**12), dataset("archive", 1000), NOW)
    assert short is not None and short.at == NOW - dt.timedelta(seconds=1)
