"""The scale run's section of BENCHMARKS.md: phases, query latency, memory samples, and what 5M would take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGET = 5_000_000
#: What runs the full size, by the backend the report names.
MAKE_SCALE = {"SQLite": "make bench-scale", "PostgreSQL": "make bench-scale SCALE_ON=postgres"}


def _rate_between(samples: list[dict[str, float]], start: float, end: float) -> float:
    """Events per second between the samples nearest to fractions ``start`` and ``end`` of the run."""
    first = samples[int(start * (len(samples) - 1))]
    last = samples[int(end * (len(samples) - 1))]
    return (last["events"] - first["events"]) / max(1e-9, last["t"] - first["t"])


def scale_lines(scale: dict[str, Any], backend: str, chart: Path, samples_file: Path) -> list[str]:
    """The section of the run on ``backend``'s read models (SQLite or PostgreSQL): its chart at ``chart``,
    every memory sample in ``samples_file``."""
    pub, proj, q = scale["publish"], scale["projection"], scale["query"]
    samples = proj["samples"]
    later = [s["rss_mib"] for s in samples[len(samples) // 4 :]] or [0.0]
    publisher_rss = [s["rss_mib"] for s in pub["samples"]] or [pub["peak_rss_mib"]]
    first_quarter, last_quarter = _rate_between(samples, 0.0, 0.25), _rate_between(samples, 0.75, 1.0)
    lines = [
        f"## Scale run: {backend} read models",
        "",
        f"Started {scale['date']} on code {scale.get('code', 'unknown')} with `{scale['command']}`: "
        f"{scale['members']:,} synthetic party members through publish → projection → query, "
        f"{scale['wall_s'] / 60:,.0f} minutes of wall time in all.",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in scale["machine"].items()],
        "",
        "| phase | events | seconds | events/s | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| publish (generate → validate → subject keys → seal → sign → produce) | {pub['events']:,} "
        f"| {pub['seconds']:,.0f} | {pub['rate']:,.0f} | {pub['peak_rss_mib']:,.0f} MiB (publisher) |",
        f"| projection (faust worker, {len(proj['consumers'])} read models, {backend}) | {proj['events']:,} "
        f"| {proj['seconds']:,.0f} | {proj['rate']:,.0f} ({proj['rate_after_start']:,.0f} after a "
        f"{proj['start_s']:.0f} s start) | {proj['peak_rss_mib']:,.0f} MiB (worker) |",
        "",
        f"Projection rate over the first quarter of the run: {first_quarter:,.0f} events/s; over the last "
        f"quarter: {last_quarter:,.0f} events/s. Publisher RSS while publishing: "
        f"{min(publisher_rss):.0f}–{max(publisher_rss):.0f} MiB.",
        "",
        *_cpu_lines(proj),
    ]
    if scale["members"] < TARGET:
        publish_min = TARGET / pub["rate"] / 60
        project_min = TARGET / proj["rate_after_start"] / 60
        lines += [
            f"**Not 5,000,000.** At these rates a {TARGET:,}-member run would take about "
            f"{(publish_min + project_min) / 60:.1f} hours ({publish_min:,.0f} minutes to publish, "
            f"{project_min:,.0f} to project). `{MAKE_SCALE[backend]}` runs the full 5,000,000.",
            "",
        ]
    lines += [
        f"Query, {q['requests']:,} GETs of random members at {q['rate']:.0f} req/s over {q['rows']:,} rows "
        f"(the consumer's read model, {q['read_model_bytes'] / 2**30:.1f} GiB):",
        "",
        "| | p50 | p99 | max |",
        "| --- | ---: | ---: | ---: |",
        _latency_row("query API (uvicorn, HTTP)", q["api"]),
        _latency_row("bare SQLAlchemy read", q["bare_sqlalchemy"]),
        *(
            [_latency_row("broker round trip, one message acks=all", q["broker_round_trip"])]
            if "broker_round_trip" in q  # runs from before it was measured have none
            else []
        ),
        "",
        f"Query API server peak RSS: {q['api_server_peak_rss_mib']:.0f} MiB. Projection worker RSS over the "
        f"last three quarters of the run: {min(later):.0f}–{max(later):.0f} MiB.{_client_pauses(q)}"
        f"{_late_answers(q)}",
        "",
        f"![projector memory during the scale run]({chart})",
        "",
        "Projection worker RSS, sampled every 5 s (about 20 of the samples shown; all are in "
        f"`{samples_file}`):",
        "",
        "| seconds | events projected | worker RSS (MiB) |",
        "| ---: | ---: | ---: |",
    ]
    step = max(1, len(samples) // 20)
    shown = samples[::step]
    if shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    lines += [f"| {s['t']:,.0f} | {s['events']:,} | {s['rss_mib']:,.0f} |" for s in shown]
    lines += [""] + [f"- {note}" for note in scale.get("notes", [])]
    return lines


def _cpu_lines(projection: dict[str, Any]) -> list[str]:
    """Where the projection's CPU went, per event (runs of before it was measured have no such line)."""
    cpu = projection.get("cpu_us_per_event") or {}
    if not (cpu.get("worker") and cpu.get("engine")):
        return []
    return [
        f"CPU per event projected, over the whole phase (start-up included; from /proc): the worker's faust "
        f"process {cpu['worker']:,.0f} µs, its engine process {cpu['engine']:,.0f} µs. Each process has "
        f"one core at most, so the busier one bounds the rate: {1e6 / max(cpu.values()):,.0f} events/s.",
        "",
    ]


def _latency_row(name: str, summary: dict[str, float]) -> str:
    """One row of the query table: a series' p50, p99 and max (:func:`bench.load.latency_summary`)."""
    p50, p99, longest = summary["p50_ms"], summary["p99_ms"], summary["max_ms"]
    return f"| {name} | {p50:.2f} ms | {p99:.2f} ms | {longest:.1f} ms |"


#: How the report names each timed series of the query phase.
_SERIES = {"api": "the API's", "bare_sqlalchemy": "the bare read's", "broker_round_trip": "the broker's"}


def _late_answers(query: dict[str, Any]) -> str:
    """Each series' runs of late answers in a row (a pause makes one), at the seconds after the API's first
    request was due, so that a pause of the whole machine lines up across series; nothing for a run from
    before they were kept."""
    late = query.get("late")
    if not late:
        return ""
    origin = late["api"]["started_at"]
    told = []
    for series, name in _SERIES.items():
        runs = late[series]["runs"]
        offset = late[series]["started_at"] - origin
        where = ", ".join(
            f"{offset + r['at_s']:,.1f} s ({r['requests']:,.0f} answers, up to {r['longest_ms']:,.0f} ms)"
            for r in runs
        )
        told.append(f"{name} at {where}" if runs else f"{name}: none")
    return (
        f" Answers later than {late['over_ms']:.0f} ms, by runs in a row (one pause makes one run), in "
        f"seconds after the API's first request: {'; '.join(told)}."
    )


def _client_pauses(query: dict[str, Any]) -> str:
    """What the query client's own garbage collections took while it sent the API's requests (its pauses
    count in the latencies it measures); nothing for a run from before they were measured."""
    pauses = query.get("client_collections")
    if pauses is None:
        return ""
    return (
        f" The query client collected garbage {pauses['count']:,} times while it sent the API's requests, "
        f"the longest for {pauses['longest_ms']:.1f} ms."
    )
