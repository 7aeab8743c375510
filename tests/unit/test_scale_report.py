"""The scale run's sections of BENCHMARKS.md: one per read-model backend that was measured, each naming the
backend it ran on, where its samples are and what reruns it; a backend never measured is left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.model import save
from bench.report import ScaleRun, scale_sections
from bench.scale_report import scale_lines


def scale_result(members: int, notes: list[str]) -> dict[str, Any]:
    """A stored scale run's shape, with as few samples as the report reads."""
    samples = [{"t": 5.0 * i, "events": members * i // 4, "rss_mib": 300.0 + i} for i in range(1, 5)]
    return {
        "date": "2026-12-07 06:00 UTC",
        "command": ".venv/bin/python -m bench scale",
        "code": "abc1234",
        "machine": {"cores": "2"},
        "members": members,
        "wall_s": 600.0,
        "publish": {"events": members, "seconds": 10.0, "rate": members / 10, "peak_rss_mib": 200.0,
                    "samples": [{"t": 1.0, "events": members, "rss_mib": 190.0}]},
        "projection": {"events": members, "seconds": 20.0, "rate": members / 20,
                       "rate_after_start": members / 15, "start_s": 5.0, "peak_rss_mib": 310.0,
                       "samples": samples, "consumers": ["dongthap-ppc", "langson-ppc"]},
        "query": {"requests": 300, "rate": 200.0, "rows": members, "read_model_bytes": 2**30,
                  "api": {"p50_ms": 3.0, "p99_ms": 9.0, "max_ms": 12.0},
                  "bare_sqlalchemy": {"p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0},
                  "api_server_peak_rss_mib": 120.0},
        "notes": notes,
    }  # fmt: skip


def _sqlite_report(result: dict[str, Any]) -> str:
    """The report's text for ``result`` as a run on SQLite."""
    return "\n".join(scale_lines(result, "SQLite", Path("s.png"), Path("s.json")))


def test_a_postgresql_section_names_its_backend_samples_and_rerun() -> None:
    result = scale_result(20_000, ["each a schema of its own in one PostgreSQL 15 database"])
    chart, samples = Path("bench/results/scale_postgresql.png"), Path("bench/results/scale_postgresql.json")
    text = "\n".join(scale_lines(result, "PostgreSQL", chart, samples))
    assert text.startswith("## Scale run: PostgreSQL read models")
    assert "| projection (faust worker, 2 read models, PostgreSQL) | 20,000 |" in text
    assert "SQLite" not in text
    assert "all are in `bench/results/scale_postgresql.json`" in text
    assert f"![projector memory during the scale run]({chart})" in text
    assert "`make bench-scale SCALE_ON=postgres` runs the full 5,000,000" in text
    assert "- each a schema of its own in one PostgreSQL 15 database" in text


def test_a_full_size_run_says_nothing_of_what_five_million_would_take() -> None:
    text = "\n".join(scale_lines(scale_result(5_000_000, []), "SQLite", Path("s.png"), Path("s.json")))
    assert "| projection (faust worker, 2 read models, SQLite) | 5,000,000 |" in text
    assert "Not 5,000,000" not in text


def test_each_measured_backend_has_its_section_and_an_unmeasured_postgresql_none(tmp_path: Path) -> None:
    sqlite = ScaleRun("SQLite", tmp_path / "scale.json", tmp_path / "scale.png")
    postgresql = ScaleRun("PostgreSQL", tmp_path / "scale_postgresql.json", tmp_path / "scale_postgresql.png")
    assert scale_sections([sqlite, postgresql]) == [
        "## Scale run: SQLite read models",
        "",
        "Not measured yet: run `make bench-scale`.",
        "",
    ]
    save(postgresql.json, scale_result(20_000, []))
    headings = [line for line in scale_sections([sqlite, postgresql]) if line.startswith("## ")]
    assert headings == ["## Scale run: SQLite read models", "## Scale run: PostgreSQL read models"]
    save(sqlite.json, scale_result(20_000, []))
    text = "\n".join(scale_sections([sqlite, postgresql]))
    assert "Not measured yet" not in text
    assert text.index("2 read models, SQLite)") < text.index("2 read models, PostgreSQL)")
    assert f"all are in `{postgresql.json}`" in text


def test_the_projections_cpu_per_event_is_reported_per_process_with_the_rate_the_busier_allows() -> None:
    result = scale_result(5_000_000, [])
    result["projection"]["cpu_us_per_event"] = {"worker": 139.4, "engine": 121.0}
    text = _sqlite_report(result)
    assert "the worker's faust process 139 µs, its engine process 121 µs" in text
    assert "the busier one bounds the rate: 7,174 events/s" in text


def test_a_run_of_before_the_cpu_was_measured_or_with_a_process_not_found_has_no_cpu_line() -> None:
    before = scale_result(5_000_000, [])
    one_found = scale_result(5_000_000, [])
    one_found["projection"]["cpu_us_per_event"] = {"worker": 120.0}
    for result in (before, one_found):
        text = _sqlite_report(result)
        assert "CPU per event" not in text


def test_the_query_clients_own_collections_are_reported_and_a_run_without_them_says_nothing() -> None:
    result = scale_result(5_000_000, [])
    before = _sqlite_report(result)
    assert "collected garbage" not in before
    result["query"]["client_collections"] = {"count": 1234, "longest_ms": 187.46}
    text = _sqlite_report(result)
    assert "The query client collected garbage 1,234 times while it sent the API's requests, " in text
    assert "the longest for 187.5 ms." in text


def test_the_brokers_round_trips_get_a_row_beside_the_api_and_a_run_without_them_has_none() -> None:
    result = scale_result(5_000_000, [])
    before = _sqlite_report(result)
    assert "broker round trip" not in before
    result["query"]["broker_round_trip"] = {"p50_ms": 1.234, "p99_ms": 56.78, "max_ms": 123.45}
    lines = scale_lines(result, "SQLite", Path("s.png"), Path("s.json"))
    row = "| broker round trip, one message acks=all | 1.23 ms | 56.78 ms | 123.5 ms |"
    assert row in lines
    assert (
        lines.index(row)
        == next(i for i, line in enumerate(lines) if line.startswith("| bare SQLAlchemy")) + 1
    )


def test_late_answers_are_placed_on_one_clock_across_the_series() -> None:
    result = scale_result(5_000_000, [])
    before = _sqlite_report(result)
    assert "Answers later than" not in before
    result["query"]["late"] = {
        "over_ms": 50.0,
        "api": {"started_at": 1000.0, "runs": [{"at_s": 3.2, "requests": 61, "longest_ms": 205.1}]},
        "bare_sqlalchemy": {
            "started_at": 1016.5,
            "runs": [{"at_s": 2.0, "requests": 1200, "longest_ms": 307.6}],
        },
        "broker_round_trip": {"started_at": 1033.0, "runs": []},
    }
    text = _sqlite_report(result)
    assert (
        " Answers later than 50 ms, by runs in a row (one pause makes one run), in seconds after the API's "
        "first request: the API's at 3.2 s (61 answers, up to 205 ms); the bare read's at 18.5 s "
        "(1,200 answers, up to 308 ms); the broker's: none."
    ) in text
