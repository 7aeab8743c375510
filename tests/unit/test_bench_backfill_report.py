"""The backfill bench's section of BENCHMARKS.md: what it says of each phase it sampled."""

from __future__ import annotations

import json
from typing import Any

from bench import backfill


def _result(**extra: Any) -> dict[str, Any]:
    sampled = {"p50_ms": 120.0, "p99_ms": 260.0, "max_ms": 330.0, "n": 400}
    return {
        "command": "python -m bench backfill --members 1000", "date": "2026-12-07 16:00 UTC",
        "code": "abc1234",
        "members": 1000, "first_projection_rate": 5000.0, "opened_after_s": 0.8, "backfill_s": 2.0,
        "backfilled_events": 1002, "backfill_rate": 501.0, "served_least": 1000, "served_before": 1000,
        "wide_after_swap": True, "retired_deleted_s": 1.5, "fresh_every_s": 0.05,
        "freshness_before": sampled, "freshness_during": {**sampled, "p99_ms": 371.0}, **extra,
    }  # fmt: skip


def test_freshness_while_the_old_generation_is_deleted_is_reported_when_it_was_sampled() -> None:
    deleting = {"p50_ms": 90.0, "p99_ms": 1500.4, "max_ms": 1800.0, "n": 30}
    section = "\n".join(backfill.lines(_result(freshness_deleting=deleting)))
    row = next(line for line in section.splitlines() if "old generation is deleted" in line)
    assert row.endswith("| 90 / 1,500 / 1,800 ms (30 members) |")
    assert "during the backfill and the deletion" in section


def test_a_deletion_with_no_fresh_member_in_it_says_so() -> None:
    section = backfill.lines(_result(freshness_deleting={"n": 0}))
    assert "| freshness while the old generation is deleted (p50 / p99 / max) | no sample |" in section


def test_results_of_before_the_deletion_was_sampled_still_make_their_section() -> None:
    recorded = json.loads(json.dumps(_result()))  # as read back from an older backfill.json
    section = backfill.lines(recorded)
    assert not any("old generation is deleted" in line for line in section)
    assert any(line.startswith("| freshness during the backfill") for line in section)
