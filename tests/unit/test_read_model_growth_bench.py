"""The read-model growth benchmark measures what it says: every row once, in slices that start with the
reference size, against a baseline that wrote the same rows."""

from __future__ import annotations

import argparse
import sqlite3
import statistics
from pathlib import Path

import pytest

from bench import read_model_growth as growth


def test_slices_start_with_the_reference_size_and_end_at_the_total() -> None:
    assert growth.slices(5_000_000, 250_000)[:3] == [20_000, 270_000, 520_000]
    assert growth.slices(5_000_000, 250_000)[-1] == 5_000_000
    assert growth.slices(30_000, 7_000) == [20_000, 27_000, 30_000]
    assert growth.slices(5_000, 1_000) == [5_000]


@pytest.mark.parametrize("keys", ["new", "random"])
def test_a_small_run_writes_every_row_and_reports_each_slice(tmp_path: Path, keys: str) -> None:
    args = argparse.Namespace(rows=23_000, batch=700, slice=2_000, keys=keys, url=None, home=tmp_path, seed=3)
    result = growth.run(args, "test")
    assert [s["rows_at_end"] for s in result["slices"]] == [20_000, 22_000, 23_000]
    assert all(s["hub_rows_per_s"] > 0 and s["plain_rows_per_s"] > 0 for s in result["slices"])
    last = result["slices"][-1]
    fills = result["first_fills"]
    assert (
        len(fills) == growth.FIRST_FILLS
        and fills[-1]["hub_rows_per_s"] == result["slices"][0]["hub_rows_per_s"]
    )
    first_hub = statistics.median(f["hub_rows_per_s"] for f in fills)
    assert result["hub_last_vs_first"] == pytest.approx(last["hub_rows_per_s"] / first_hub)
    plain = sqlite3.connect(tmp_path / "plain.db")
    written = plain.execute("SELECT count(*), sum(version) FROM records").fetchone()
    assert written[1] == 23_000  # every row applied once: new keys each a record, random ones some twice
    assert (written[0] == 23_000) == (keys == "new")
    text = "\n".join(growth.lines(result))
    assert "| 23,000 |" in text and "against the first 20,000 (the median of 3 fills" in text


def test_a_postgresql_result_states_its_servers_durability_or_that_it_was_not_recorded() -> None:
    result = {
        "command": "growth", "date": "today", "code": "abc", "rows": 20_000, "keys": "new", "batch": 1_000,
        "backend": "postgresql", "hub_last_vs_first": 1.0, "plain_last_vs_first": 1.0,
        "slices": [{"rows_at_end": 20_000, "hub_rows_per_s": 1.0, "plain_rows_per_s": 2.0, "rss_mib": 1.0}],
    }  # fmt: skip
    assert "durability settings not recorded" in growth.lines(result)[0]
    database = {"backend": "postgresql", "host": "db", "server_version": "15", "fsync": "off",
                "synchronous_commit": "on", "full_page_writes": "off"}  # fmt: skip
    assert (
        "(PostgreSQL 15 on db (fsync=off, synchronous_commit=on, full_page_writes=off))"
        in growth.lines({**result, "database": database})[0]
    )
