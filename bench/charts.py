"""PNG charts of the results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: benchmarks run on machines without a display

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads

from bench.model import ScenarioResult  # noqa: E402
from bench.stats import Summary, rates  # noqa: E402

HUB_COLOUR = "#b22222"
BASELINE_COLOUR = "#7f7f7f"


def suite_chart(results: list[ScenarioResult], path: Path) -> Path:
    """One panel per scenario: hub and baseline medians side by side, min–max as error bars."""
    from bench.scenarios import SCENARIOS

    names = {s.id: s.name for s in SCENARIOS}
    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.9 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(results) :]:
        ax.set_visible(False)
    for ax, result in zip(flat, results, strict=False):
        labels, hub_s, base_s = [], [], []
        for row in result.rows:
            hub = result.measurements["hub"][row.hub_key]
            base = result.measurements["baseline"][row.baseline_key]
            if row.kind == "throughput":
                hub, base = rates(row.events, hub), rates(row.events, base)
            labels.append(row.metric)
            hub_s.append(Summary.of(hub))
            base_s.append(Summary.of(base))
        xs = range(len(labels))
        width = 0.38
        for offset, summaries, colour, name in (
            (-width / 2, hub_s, HUB_COLOUR, "hub"),
            (width / 2, base_s, BASELINE_COLOUR, "baseline"),
        ):
            medians = [s.median for s in summaries]
            errors = [[s.median - s.low for s in summaries], [s.high - s.median for s in summaries]]
            ax.bar([x + offset for x in xs], medians, width, yerr=errors, color=colour, label=name, capsize=3)
        ax.set_xticks(list(xs), labels, fontsize=8)
        kind = result.rows[0].kind
        # Linear from zero: bar heights then show the hub/baseline ratio as it is.
        ax.set_ylabel("events/s (higher is better)" if kind == "throughput" else "ms (lower is better)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"({result.id}) {names[result.id]}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("sharehub against plain baselines: median, min–max over repetitions", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale_chart(scale: dict[str, Any], path: Path) -> Path:
    """Memory over both phases of the scale run: the publisher's, then the projection worker's RSS, each
    beside the events done so far, so a leak would show as a line that keeps climbing."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    phases = (
        ("publish", "publisher", "events handed over"),
        ("projection", "projection worker", "events projected"),
    )
    for ax, (phase, who, done) in zip(axes, phases, strict=True):
        samples = scale[phase]["samples"]
        t = [s["t"] for s in samples]
        style = {"marker": "."} if len(samples) < 50 else {}
        ax.plot(t, [s["rss_mib"] for s in samples], color=HUB_COLOUR, label=f"{who} RSS (MiB)", **style)
        ax.set_xlabel(f"seconds since the {phase} began")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0, top=max([s["rss_mib"] for s in samples] + [1.0]) * 1.6)
        other = ax.twinx()
        other.plot(
            t, [s["events"] / 1e6 for s in samples], color=BASELINE_COLOUR, label=f"{done} (M)", **style
        )
        other.set_ylabel(f"{done} (millions)")
        other.set_ylim(bottom=0)
        mine, theirs = ax.get_legend_handles_labels(), other.get_legend_handles_labels()
        ax.legend(mine[0] + theirs[0], mine[1] + theirs[1], loc="upper left", fontsize=8)
        ax.set_title(f"{phase}: {who} memory", fontsize=10)
    fig.suptitle(f"scale run, {scale['members']:,} party members", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def soak_chart(soak: dict[str, Any], path: Path) -> Path:
    """The soak over time, one panel each: throughput against the rates asked, query latency, each read
    model's lag, each process's memory and CPU. A line that keeps climbing in the lag or memory panel is
    what the soak looks for; CPU shows which process a machine too small runs out for. The chart's file
    type follows ``path`` (SVG for the docs)."""
    samples = soak["samples"]
    asked = soak["asked"]
    minutes = [s["t_s"] / 60 for s in samples]
    fig, (rates, latency, lag, memory, cpu) = plt.subplots(5, 1, figsize=(10, 13.5), sharex=True)
    rates.plot(minutes, [s["events_per_s"] for s in samples], color=HUB_COLOUR, label="events acknowledged/s")
    rates.plot(minutes, [s["queries_per_s"] for s in samples], color="#1f77b4", label="queries answered/s")
    for rate, colour in ((asked["events_per_s"], HUB_COLOUR), (asked["queries_per_s"], "#1f77b4")):
        rates.axhline(rate, color=colour, linestyle=":", linewidth=1)
    rates.set_ylabel("per second (dotted: asked)")
    for key, colour, name in (("p99_ms", HUB_COLOUR, "p99"), ("p50_ms", BASELINE_COLOUR, "p50")):
        # An interval without a finished request (the query load over) has no latency: a gap, not 0 ms.
        latency.plot(minutes, [s[key] if s["p99_ms"] else float("nan") for s in samples],
                     color=colour, label=name)  # fmt: skip
    latency.set_ylabel("query latency (ms)")
    for consumer in samples[0]["lag"] if samples else []:
        lag.plot(minutes, [s["lag"][consumer] for s in samples], label=consumer)
    lag.set_ylabel("read model lag (events)")
    for process in samples[0]["rss_mib"] if samples else []:
        memory.plot(minutes, [s["rss_mib"].get(process, float("nan")) for s in samples], label=process)
    memory.set_ylabel("RSS (MiB)")
    for process in samples[0]["cpu_percent"] if samples else []:
        cpu.plot(minutes, [s["cpu_percent"].get(process, float("nan")) for s in samples], label=process)
    cpu.set_ylabel("CPU (% of one core)")
    cpu.set_xlabel("minutes since the loads started")
    for ax in (rates, latency, lag, memory, cpu):
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    verdict = {True: "pass", False: "FAIL", None: "counts at rest still to come"}[soak["ok"]]
    fig.suptitle(
        f"soak, {asked['seconds'] / 60:g} min at {asked['events_per_s']:,.0f} events/s and "
        f"{asked['queries_per_s']:,.0f} queries/s, {soak['date']}: {verdict}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
