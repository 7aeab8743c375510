"""What ``sharehub audit verify`` prints: a summary per topic, the findings (a table on a terminal, one
tab-separated line each when piped), and a self-contained HTML report (inline CSS, no external asset); and
what ``audit pack`` and ``audit verify-pack`` print."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.audit import AuditReport, EventStatus
from sharehub.evidence_check import Verdict
from sharehub.evidence_pack import Evidence, parse_members, read_members, trust_fingerprint

COLUMNS = ("topic", "partition", "offset", "event_id", "producer", "sequence", "reason", "detail")


def cells(e: EventStatus) -> tuple[str, ...]:
    return (e.topic, str(e.partition), str(e.offset), e.event_id or "-", e.producer or "?",
            "?" if e.sequence is None else str(e.sequence), e.reason, e.detail)  # fmt: skip


def print_findings(out: Console, rows: list[EventStatus]) -> None:
    if rows and out.is_terminal:
        table = Table(*COLUMNS)
        for row in rows:
            table.add_row(*cells(row))
        out.print(table)
    elif rows:  # piped: one finding per line, tab-separated, never truncated
        print("\t".join(COLUMNS))
        for row in rows:
            print("\t".join(cells(row)))


def print_summary(out: Console, report: AuditReport) -> None:
    table = Table("topic", "records", "verified", "findings", "note", title="audit verify")
    for topic, summary in sorted(report.topics.items()):
        findings = f"[red]{summary.findings}[/red]" if summary.findings else "0"
        table.add_row(topic, str(summary.records), str(summary.verified), findings, summary.note)
    out.print(table)
    out.print(
        f"governance head {report.governance_head}, state sha256 {report.governance_state_sha256}; "
        f"{sum(s.records for s in report.topics.values())} records read, {len(report.findings)} findings"
    )
    custody = ", ".join(f"{agency} {n}" for agency, n in sorted(report.sealed_in_custody.items()))
    out.print(f"sealed by the hub in custody: {custody or 'none'}")
    if report.governance_legacy_acts:
        out.print(
            f"governance acts of parties from before act seals (attested by the operator only): "
            f"{report.governance_legacy_acts}"
        )


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#eee}
.bad{color:#b00;font-weight:bold}.ok{color:#070}code{font-size:12px}"""


def html_report(report: AuditReport) -> str:
    """One HTML page holding the whole report: nothing it shows is fetched from elsewhere."""

    def row(values: tuple[str, ...]) -> str:
        return "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>"

    topics = "".join(
        row((t, str(s.records), str(s.verified), str(s.findings), s.note))
        for t, s in sorted(report.topics.items())
    )
    findings = "".join(row(cells(e)) for e in report.findings)
    verdict = (
        f'<p class="bad">{len(report.findings)} findings</p>'
        if report.findings
        else '<p class="ok">no finding</p>'
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>sharehub audit</title><style>{_CSS}</style>'
        f"</head><body><h1>sharehub audit verify</h1>{verdict}<p>governance head {report.governance_head}, "
        f"state sha256 <code>{report.governance_state_sha256}</code></p>"
        "<h2>Topics</h2><table><tr><th>topic</th><th>records</th><th>verified</th><th>findings</th><th>note</th>"
        f"</tr>{topics}</table><h2>Findings</h2><table><tr>"
        + "".join(f"<th>{c}</th>" for c in COLUMNS)
        + f"</tr>{findings}</table></body></html>\n"
    )


def print_pack_made(out: Console, path: Path, data: bytes) -> None:
    """What ``audit pack`` wrote: where, its hash, and the trust anchor to verify it against."""
    evidence = parse_members(read_members(data))
    selected = sum(r.selected for r in evidence.events)
    out.print(
        f"{path}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}\n"
        f"{len(evidence.governance)} governance records, {selected} events in scope "
        f"({len(evidence.events) - selected} linking to {len(evidence.checkpoints)} checkpoints), "
        f"{len(evidence.access)} access records\n"
        f"anchor {trust_fingerprint(evidence.trust)}"
    )


def print_pack_verdict(out: Console, evidence: Evidence, verdict: Verdict) -> None:
    """``audit verify-pack``'s findings and summary table."""
    if verdict.findings:
        table = Table("kind", "topic", "partition", "offset", "reason", "detail", title="findings")
        for f in verdict.findings:
            table.add_row(f.kind, f.topic, str(f.partition), str(f.offset), f.reason, f.detail)
        out.print(table)
    summary = Table("records", "count", "verified", "findings", title="audit verify-pack")
    for kind, tally in verdict.tallies.items():
        findings = f"[red]{tally.findings}[/red]" if tally.findings else "0"
        summary.add_row(kind, str(tally.records), str(tally.verified), findings)
    out.print(summary)
    out.print(
        f"scope {evidence.scope.to_json()}; anchor {verdict.anchor}\n"
        f"governance head {verdict.governance_head}, state sha256 {verdict.governance_state_sha256}; "
        f"{verdict.selected} events in scope, {verdict.covered} covered by a signed checkpoint; "
        f"{len(verdict.findings)} findings"
    )
