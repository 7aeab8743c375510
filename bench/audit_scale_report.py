"""The audit scale run's section of BENCHMARKS.md: a plain read against the audit with one worker and with
several, of the same events in the same run, with memory and the machine's load."""

from __future__ import annotations

from typing import Any

#: The size of the party-member database, and the time the audit of it should take on the bench machine.
TARGET_EVENTS = 5_000_000
TARGET_S = 180.0


def audit_scale_lines(result: dict[str, Any]) -> list[str]:
    phases, workers, events = result["phases"], result["workers"], result["events"]
    parallel = phases[f"audit_{workers}"]
    lines = [
        "## Audit at scale",
        "",
        f"Started {result['date']} on code {result.get('code', 'unknown')} with `{result['command']}`: "
        f"{events:,} party-members events (3 lanes), read plainly and audited "
        "(`services.audit.audit_verify`, counts and findings kept, not every event) with 1 worker and with "
        f"{workers}, each phase a fresh process, in this order.",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in result["machine"].items()],
        "",
        "| phase | seconds | events/s | vs plain read | CPU seconds | cores used | events per CPU second "
        "| peak RSS | load (1 min) before → after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, phase in phases.items():
        ratio = result["audit_vs_read"].get(name)
        load = " → ".join(f"{value:.1f}" for value in phase["load_1min"])
        cpu = phase.get("cpu_s")
        used = "-" if cpu is None else f"{cpu:,.0f} | {cpu / phase['seconds']:.2f} | {events / cpu:,.0f}"
        lines.append(
            f"| {name.replace('_', ' ')} | {phase['seconds']:,.1f} | {phase['rate']:,.0f} "
            f"| {'-' if ratio is None else f'{ratio:.2f}'} | {used if cpu else '- | - | -'} "
            f"| {phase['peak_rss_mib']:,.0f} MiB | {load} |"
        )
    projected = TARGET_EVENTS / parallel["rate"]
    lines += [
        "",
        f"{workers} workers against 1: {result['speedup']:.2f}×. At the {workers}-worker rate, "
        f"{TARGET_EVENTS:,} events would take {projected / 60:,.1f} minutes "
        f"(target: {TARGET_S / 60:.0f} minutes, {TARGET_EVENTS / TARGET_S:,.0f} events/s).",
    ]
    if "publish" in result:
        pub = result["publish"]
        lines.append(
            f"Publishing them took {pub['seconds']:,.0f} s ({pub['rate']:,.0f} events/s, "
            f"{pub['processes']} publishers in parallel, one per lane)."
        )
    lines += ["", *[f"- {note}" for note in result.get("notes", [])], ""]
    return lines
