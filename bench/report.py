"""BENCHMARKS.md from the stored results: the suite's tables and the scale run, each with its machine.

The results live as JSON in ``bench/results/`` so that the report (and the charts) can be rebuilt without
measuring again, and so a suite run does not erase the scale run's section or the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from bench.model import ScenarioResult
from bench.stats import Summary, rates

RESULTS = Path(__file__).resolve().parent / "results"
SUITE_JSON = RESULTS / "suite.json"
SCALE_JSON = RESULTS / "scale.json"
AUDIT_SCALE_JSON = RESULTS / "audit_scale.json"
SUITE_CHART = RESULTS / "suite.png"
SCALE_CHART = RESULTS / "scale.png"
#: The scale run on PostgreSQL read models (``--postgres``).
SCALE_POSTGRESQL_JSON = RESULTS / "scale_postgresql.json"
SCALE_POSTGRESQL_CHART = RESULTS / "scale_postgresql.png"
PURGE_JSON = RESULTS / "purge.json"
GROWTH_JSON = RESULTS / "read_model_growth.json"
#: The same measure on a PostgreSQL read model (``--url``).
GROWTH_POSTGRESQL_JSON = RESULTS / "read_model_growth_postgresql.json"
FLAME_JSON = RESULTS / "flame.json"
BACKFILL_JSON = RESULTS / "backfill.json"
REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


class ScaleRun(NamedTuple):
    """Where the scale run on one read-model backend keeps its result and its chart."""

    #: As the report names it.
    backend: str
    json: Path
    chart: Path


#: By the read models' SQLAlchemy dialect, in the report's order.
SCALE_RUNS = {
    "sqlite": ScaleRun("SQLite", SCALE_JSON, SCALE_CHART),
    "postgresql": ScaleRun("PostgreSQL", SCALE_POSTGRESQL_JSON, SCALE_POSTGRESQL_CHART),
}


def _n(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _machine(machine: dict[str, str]) -> list[str]:
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    return lines


def scenario_table(result: ScenarioResult) -> list[str]:
    lines = [
        "| metric | hub median | hub min–max | baseline median | baseline min–max | hub / baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result.rows:
        hub = result.measurements["hub"][row.hub_key]
        base = result.measurements["baseline"][row.baseline_key]
        if row.kind == "throughput":
            h, b, unit = Summary.of(rates(row.events, hub)), Summary.of(rates(row.events, base)), " ev/s"
        else:
            h, b, unit = Summary.of(hub), Summary.of(base), " ms"
        lines.append(
            f"| {row.metric} | {_n(h.median)}{unit} | {_n(h.low)}–{_n(h.high)} | {_n(b.median)}{unit} "
            f"| {_n(b.low)}–{_n(b.high)} | {h.median / b.median:.2f} |"
        )
    return lines


def summary_table(results: list[ScenarioResult]) -> list[str]:
    """One line per row of every scenario: the medians side by side."""
    from bench.scenarios import SCENARIOS

    names = {s.id: s.name for s in SCENARIOS}
    lines = ["| scenario | metric | hub | baseline | hub / baseline |", "| --- | --- | ---: | ---: | ---: |"]
    for r in results:
        for row in scenario_table(r)[2:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            lines.append(f"| ({r.id}) {names[r.id]} | {cells[0]} | {cells[1]} | {cells[3]} | {cells[5]} |")
    return lines


def suite_section(suite: dict[str, Any]) -> list[str]:
    results = [ScenarioResult.from_json(r) for r in suite["results"]]
    out = [
        "## Hub against baselines",
        "",
        f"Measured {suite['date']} on code {suite.get('code', 'unknown')} with `{suite['command']}` "
        f"({results[0].reps} repetitions per side, "
        "hub and baseline interleaved in the same process, the order alternating each repetition; "
        "each scenario in a fresh subprocess whose garbage collector is tuned as the hub's batch "
        "processes tune theirs, `sharehub.collector.collect_for_batches`). Throughput is events per second "
        "(higher is better); latency is milliseconds (lower is better). *hub / baseline* is the ratio of the "
        "medians.",
        "",
        *_machine(suite["machine"]),
        "",
        *summary_table(results),
        "",
        f"![hub against baselines]({SUITE_CHART.relative_to(REPORT.parent)})",
        "",
    ]
    for r in results:
        out += [f"### ({r.id}) {r.title}", "", f"- hub: {r.hub}", f"- baseline: {r.baseline}"]
        rss = f"{r.peak_rss_kb / 1024:.0f} MiB"
        helpers = "".join(f"; {name} {kb / 1024:.0f} MiB" for name, kb in r.helper_rss_kb.items())
        out += [f"- peak RSS: scenario process {rss}{helpers}; wall time {r.wall_s:.0f} s", ""]
        out += scenario_table(r)
        out += [""] + [f"- {note}" for note in r.notes] + [""]
    return out


def scale_sections(runs: Iterable[ScaleRun] = SCALE_RUNS.values()) -> list[str]:
    """A section per backend the scale run has a result of; SQLite's says so when it has none, the others'
    are left out."""
    from bench.model import load
    from bench.scale_report import scale_lines

    lines: list[str] = []
    for run in runs:
        if run.json.exists():
            lines += scale_lines(load(run.json), run.backend, _from_report(run.chart), _from_report(run.json))
        elif run.backend == "SQLite":
            lines += ["## Scale run: SQLite read models", "", "Not measured yet: run `make bench-scale`.", ""]
    return lines


def _from_report(path: Path) -> Path:
    """``path`` as BENCHMARKS.md links it: relative to the report when it is in the repository."""
    return path.relative_to(REPORT.parent) if path.is_relative_to(REPORT.parent) else path


def purge_section(purge: dict[str, Any]) -> list[str]:
    lines = [
        "## Agreement ends → consumer loses access (R5)",
        "",
        f"`{purge['command']}`, {purge['date']}, code {purge['code']}. {purge['members']:,} party members",
        "in each of three read models; governance ends one consumer's agreement at a time on the log,",
        "and the clock runs from the event being on the broker until the query API refuses that consumer",
        "(403) and until the worker has deleted its rows (polled every 20 ms). Target: under 5 s.",
        "",
        "| consumer | ending | API refuses after | rows purged after |",
        "| --- | --- | ---: | ---: |",
    ]
    for r in purge["runs"]:
        api, rows = r["api_refuses_after_s"], r["rows_purged_after_s"]
        lines.append(f"| {r['consumer']} | {r['ending']} | {api:.2f} s | {rows:.2f} s |")
    lines += [
        "",
        f"Median: the API refuses after {purge['api_refuses_median_s']:.2f} s, the rows are gone after "
        f"{purge['rows_purged_median_s']:.2f} s (worst {purge['rows_purged_max_s']:.2f} s).",
        "",
    ]
    return lines


def write_report() -> Path:
    from bench.model import load

    lines = [
        "# sharehub benchmarks",
        "",
        "Written by `make bench` (the suite: `.venv/bin/python -m bench`) and `make bench-scale`",
        "(`.venv/bin/python -m bench scale`; `SCALE_ON=postgres`, `--postgres`, on PostgreSQL read models),",
        "the audit at scale by `.venv/bin/python -m bench audit-scale`; rebuilt from `bench/results/*.json`",
        "by `.venv/bin/python -m bench report`. Numbers are from one",
        "small machine and one single-node local broker: they compare the hub with plain code doing the same",
        "visible work on the same machine in the same run, and say nothing about a production cluster.",
        "",
    ]
    if SUITE_JSON.exists():
        lines += suite_section(load(SUITE_JSON))
    else:
        lines += ["## Hub against baselines", "", "Not measured yet: run `make bench`.", ""]
    lines += scale_sections()
    if AUDIT_SCALE_JSON.exists():
        from bench.audit_scale_report import audit_scale_lines

        lines += [""] if lines[-1] else []
        lines += audit_scale_lines(load(AUDIT_SCALE_JSON))
    if PURGE_JSON.exists():
        lines += purge_section(load(PURGE_JSON))
    if BACKFILL_JSON.exists():
        from bench.backfill import lines as backfill_lines

        lines += backfill_lines(load(BACKFILL_JSON))
    grown = [load(path) for path in (GROWTH_JSON, GROWTH_POSTGRESQL_JSON) if path.exists()]
    if grown:
        from bench.read_model_growth import lines as growth_lines

        lines += ["## A read model's write rate as it grows", ""]
        for result in grown:
            lines += [*growth_lines(result), ""]
    if FLAME_JSON.exists():
        from bench.profile import lines as flame_lines

        lines += ["## Where the time goes: py-spy flame graphs", "", *flame_lines(load(FLAME_JSON)), ""]
    REPORT.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return REPORT
