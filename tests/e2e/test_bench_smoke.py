"""The benchmark suite still runs: its scenario without Kafka and the agency-site one, at the --quick sizes,
in this process.

No timing is asserted here (timings belong in BENCHMARKS.md, not in tests); only that the scenario
measures both sides, every repetition, and that its report and chart can be written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.charts import suite_chart
from bench.model import Config, ScenarioResult
from bench.report import scenario_table
from bench.scenarios import envelope, query, site_publish
from bench.stats import Summary, percentile
from sharehub.kafka import KafkaAccess


def test_quick_envelope_scenario_measures_hub_and_baseline(tmp_path: Path) -> None:
    config = Config(quick=True, workdir=tmp_path)
    result = envelope.run(config)
    assert result.id == "a" and result.reps == 2
    for row in result.rows:
        hub = result.measurements["hub"][row.hub_key]
        baseline = result.measurements["baseline"][row.baseline_key]
        assert len(hub) == len(baseline) == config.reps
        assert all(s > 0 for s in hub + baseline)
        assert row.events == config.events
    again = ScenarioResult.from_json(result.to_json())
    assert again == result
    table = scenario_table(result)
    assert len(table) == 2 + len(result.rows) and "ev/s" in table[2]
    assert suite_chart([result], tmp_path / "chart.png").stat().st_size > 10_000


def test_a_scenario_process_runs_at_the_query_rate_asked(tmp_path: Path) -> None:
    """The config a scenario's own process reads back keeps the query rate (--query-rate); a config file
    written before the option runs at the published rate."""
    asked = Config(quick=True, workdir=tmp_path, query_rate=1000.0)
    assert Config.from_json(asked.to_json()).request_rate == 1000.0
    older = {k: v for k, v in asked.to_json().items() if k != "query_rate"}
    assert Config.from_json(older).request_rate == 500.0


def test_summaries() -> None:
    s = Summary.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.low, s.high, s.q1, s.q3) == (3.0, 1.0, 5.0, 2.0, 4.0)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99


@pytest.mark.kafka
def test_quick_site_publish_scenario_runs_against_the_real_broker(
    kafka_admin: KafkaAccess, tmp_path: Path
) -> None:
    """Scenario f end to end at the --quick sizes: an agency site, the key service, mutual TLS, the raw
    producer beside it (and with it scenario b's comparison, which it shares); one process and two."""
    config = Config(quick=True, workdir=tmp_path, bootstrap=kafka_admin)
    result = site_publish.run(config)
    assert result.id == "f"
    hub, baseline = result.measurements["hub"]["publish_s"], result.measurements["baseline"]["produce_s"]
    assert len(hub) == len(baseline) == config.reps and all(s > 0 for s in hub + baseline)
    split = result.measurements["hub"]["publish_split_s"]  # the same from two processes, in the same run
    assert len(split) == config.reps and all(s > 0 for s in split)
    assert [row.hub_key for row in result.rows] == ["publish_s", "publish_split_s"]
    assert any("x the one-process rate" in note for note in result.notes)


@pytest.mark.kafka
def test_quick_query_scenario_says_what_each_request_cost_the_server_and_the_client(
    kafka_admin: KafkaAccess, tmp_path: Path
) -> None:
    """Scenario d end to end at the --quick sizes (the real query API over TLS, its access log on the broker):
    each repetition also measures the CPU the server's processes and the client spent per request, and the
    notes say it."""
    config = Config(quick=True, workdir=tmp_path, bootstrap=kafka_admin)
    result = query.run(config)
    assert result.id == "d"
    for side in ("server_cpu_ms", "client_cpu_ms"):
        spent = result.measurements["hub"][side]
        assert len(spent) == config.reps and all(ms > 0 for ms in spent)
    note = next(n for n in result.notes if n.startswith("CPU per request"))
    assert f"At {config.request_rate:.0f} requests/s the server's processes use" in note
