"""The console's audit jobs: a verify run of the whole log (``sharehub audit verify --json --quiet``) or an
evidence pack (``sharehub audit pack``), each the hub's own command line run in the background under the
API's home and environment, so a run that takes minutes never runs inside a request.

A job is a folder, owner-only, ``<home>/console/audits/<id>/``: ``job.json`` (what was asked, by whom,
when), the process's pid file and log (its stderr), and what the command wrote: ``report.json`` (verify) or
``evidence.zip`` and ``stdout.txt`` (pack, with the trust anchor it prints). A job's state is read from
those files: running while its process runs; then done when its output is whole (a verify run with
findings exits 1 but printed its report: done), failed otherwise, with the last line of its stderr.
The command's arguments are built from validated fields only, never through a shell.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import processes
from sharehub.errors import InputError, UnknownReferenceError
from sharehub.evidence_pack import Scope
from sharehub.settings import Settings

VERIFY, PACK = "verify", "pack"
RUNNING, DONE, FAILED = "running", "done", "failed"
#: The name of a job's process (its pid file and log in the job's folder).
PROCESS = "audit"
REPORT, SUMMARY, PACK_FILE, PACK_OUT = "report.json", "summary.json", "evidence.zip", "stdout.txt"
_JOB_ID = re.compile(r"[0-9a-f]{16}")
_ANCHOR = re.compile(r"^anchor ([0-9a-f]{64})$", re.M)
#: How a time goes on the command line (UTC, as ``--from``/``--to`` read a time without a zone).
_ARG_TIME = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    started_by: str
    started_at: str
    #: A pack's scope as ``Scope.to_json`` writes it; None for a verify run.
    scope: dict[str, Any] | None
    state: str = RUNNING
    #: A failed job's reason: its stderr's last line.
    error: str = ""
    #: A done verify run's totals and findings; a done pack's trust anchor.
    summary: dict[str, Any] | None = None
    anchor: str = ""


def jobs_dir(home: Path) -> Path:
    return home / "console" / "audits"


def environment(settings: Settings) -> dict[str, str]:
    """The API's own settings as the command line reads them: the same home, broker and read models."""
    env = {
        "SHAREHUB_HOME": str(settings.home),
        "SHAREHUB_KAFKA_BOOTSTRAP": settings.bootstrap,
        "SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE": str(settings.admin_password_path),
        "SHAREHUB_KAFKA_CA_FILE": str(settings.kafka_ca_path),
        "SHAREHUB_KAFKA_MTLS_BOOTSTRAP": settings.mtls_bootstrap,
        "SHAREHUB_CACHE_DIR": str(settings.cache_dir),
    }
    if settings.read_model_url:
        env["SHAREHUB_READ_MODEL_URL"] = settings.read_model_url
    return env


def pack_scope(fields: dict[str, str], known: Any) -> Scope:
    """A pack's scope from a form (consumer, or dataset and subject_ref; since, until as ISO 8601 times):
    InputError unless ``audit pack`` would take it; UnknownReferenceError for an agency or dataset that
    governance (``known``) does not hold."""
    given = {k: fields.get(k, "").strip() or None for k in ("consumer", "dataset", "subject_ref")}
    if given["consumer"] is not None:
        known.agency(given["consumer"])
    if given["dataset"] is not None:
        known.dataset(given["dataset"])
    since, until = (_moment(fields.get(k, ""), k) for k in ("since", "until"))
    return Scope.asked(given["consumer"], given["dataset"], given["subject_ref"], since, until)


def _moment(text: str, name: str) -> dt.datetime | None:
    if not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{name}: {text.strip()!r} is not an ISO 8601 time such as 2026-12-06T08:00"
        ) from None
    return (moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment).astimezone(dt.UTC)


def _pack_args(folder: Path, scope: Scope) -> list[str]:
    args = ["audit", "pack", str(folder / PACK_FILE)]
    if scope.consumer is not None:
        args += ["--consumer", scope.consumer]
    else:
        args += ["--dataset", str(scope.dataset), "--subject-ref", str(scope.subject_ref)]
    for option, moment in (("--from", scope.start), ("--to", scope.end)):
        if moment is not None:
            args += [option, moment.astimezone(dt.UTC).strftime(_ARG_TIME)]
    return args


def start(settings: Settings, kind: str, started_by: str, scope: Scope | None = None) -> Job:
    """Start a verify run (``scope`` None) or a pack of ``scope``, owner-only in a folder of its own."""
    job = Job(
        id=secrets.token_hex(8),
        kind=kind,
        started_by=started_by,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        scope=scope.to_json() if scope is not None else None,
    )
    folder = jobs_dir(settings.home) / job.id
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(jobs_dir(settings.home), 0o700)
    what = {k: getattr(job, k) for k in ("id", "kind", "started_by", "started_at", "scope")}
    (folder / "job.json").write_text(json.dumps(what))
    if scope is None:
        args, output = ["audit", "verify", "--json", "--quiet"], folder / REPORT
    else:
        args, output = _pack_args(folder, scope), folder / PACK_OUT
    processes.start(folder, PROCESS, args, environment(settings), stdout_file=output)
    return job


def found(home: Path, job_id: str) -> Job:
    """The job ``job_id`` with its state now; UnknownReferenceError if there is none."""
    folder = jobs_dir(home) / job_id
    if not _JOB_ID.fullmatch(job_id) or not (folder / "job.json").is_file():
        raise UnknownReferenceError(f"no audit job {job_id!r}")
    asked = json.loads((folder / "job.json").read_text())
    if processes.running_pid(folder, PROCESS) is not None:
        return Job(**asked)
    if asked["kind"] == VERIFY:
        summary = _verify_summary(folder)
        if summary is not None:
            return Job(**asked, state=DONE, summary=summary)
    else:
        anchor = _ANCHOR.search(_text(folder / PACK_OUT))
        if anchor is not None and (folder / PACK_FILE).is_file():
            return Job(**asked, state=DONE, anchor=anchor.group(1))
    return Job(**asked, state=FAILED, error=_last_line(folder))


def listed(home: Path) -> list[Job]:
    """Every job, newest first."""
    root = jobs_dir(home)
    ids = [p.name for p in root.iterdir() if _JOB_ID.fullmatch(p.name)] if root.is_dir() else []
    jobs = [found(home, i) for i in ids]
    return sorted(jobs, key=lambda j: (j.started_at, j.id), reverse=True)


def still_running(home: Path, kind: str, started_by: str) -> Job | None:
    """A job of ``kind`` that ``started_by`` started and that still runs: one at a time each."""
    return next(
        (j for j in listed(home) if (j.kind, j.started_by, j.state) == (kind, started_by, RUNNING)), None
    )


def latest_run(home: Path) -> Job | None:
    """The newest verify run (the operator's home page shows it)."""
    return next((j for j in listed(home) if j.kind == VERIFY), None)


def pack_file(home: Path, job_id: str, asked_by: str) -> Path:
    """A done pack's file, for the agency that asked for it only (another is told there is none)."""
    job = found(home, job_id)
    if job.kind != PACK or job.started_by != asked_by or job.state != DONE:
        raise UnknownReferenceError(f"no evidence pack {job_id!r} of {asked_by!r} ready")
    return jobs_dir(home) / job_id / PACK_FILE


def _verify_summary(folder: Path) -> dict[str, Any] | None:
    """A done run's totals and findings (from its report, read once, then kept); None unless the report
    is whole."""
    kept = folder / SUMMARY
    if kept.is_file():
        summary: dict[str, Any] = json.loads(kept.read_text())
        return summary
    try:
        report = json.loads(_text(folder / REPORT))
    except ValueError:
        return None
    if not isinstance(report, dict) or "results" not in report:
        return None
    findings = [r for r in report["results"] if r.get("reason") != "ok"]
    by_reason: dict[str, int] = {}
    for finding in findings:
        by_reason[finding["reason"]] = by_reason.get(finding["reason"], 0) + 1
    summary = {
        "events": report["events"],
        "checkpoints": report["checkpoints"],
        "topics": report["topics"],
        "governance": report["governance"],
        "findings": findings,
        "by_reason": dict(sorted(by_reason.items())),
    }
    kept.write_text(json.dumps(summary))
    return summary


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _last_line(folder: Path) -> str:
    log = _text(folder / "run" / f"{PROCESS}.log").strip().splitlines()
    return log[-1] if log else "the command stopped without a word"
