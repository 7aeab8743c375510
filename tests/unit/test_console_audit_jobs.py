"""A console audit job's state as its folder tells it: a verify run's report summed into its totals and
findings by reason (a run with findings is done, not failed), a job without a whole output failed with the
last line of its stderr, and the run's page listing each finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.audit import AuditReport, TopicSummary
from services.audit_status import EventStatus
from services.console import audit_jobs
from services.console.render import Pages
from sharehub.errors import UnknownReferenceError

JOB_ID = "0123456789abcdef"


def job_folder(home: Path, kind: str = audit_jobs.VERIFY) -> Path:
    folder = audit_jobs.jobs_dir(home) / JOB_ID
    folder.mkdir(parents=True)
    asked = {"id": JOB_ID, "kind": kind, "started_by": "cpo", "started_at": "2026-12-06T22:00:00+00:00"}
    (folder / "job.json").write_text(json.dumps({**asked, "scope": None}))
    return folder


def a_report_with_a_finding() -> AuditReport:
    ok = EventStatus("p-party-members", 0, 0, producer="coc", sequence=1)
    bad = EventStatus("p-party-members", 0, 1, producer="coc", signature="bad_signature", detail="<flipped>")
    report = AuditReport(events=[ok, bad], topics={"p-party-members": TopicSummary(2, 1, 1)})
    report.governance_head = 7
    return report


def test_a_run_with_findings_is_done_and_its_page_lists_each(tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    (folder / audit_jobs.REPORT).write_text(json.dumps(a_report_with_a_finding().to_json()))
    job = audit_jobs.found(tmp_path, JOB_ID)
    assert job.state == audit_jobs.DONE and job.summary is not None
    assert job.summary["by_reason"] == {"bad_signature": 1}
    assert [f["offset"] for f in job.summary["findings"]] == [1]
    assert (folder / audit_jobs.SUMMARY).is_file(), "the report is summed once, then kept"
    page = Pages().render("en", "audit_run.html", job=job, shown=10, agency="cpo", csrf="t").body.decode()
    assert "<td><code>bad_signature</code></td><td>&lt;flipped&gt;</td>" in page, "escaped, never markup"
    assert 'class="badge bad">1<' in page


def test_a_job_without_a_whole_output_failed_with_its_stderrs_last_line(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, audit_jobs.PACK)
    (folder / "run").mkdir()
    (folder / "run" / f"{audit_jobs.PROCESS}.log").write_text(
        "starting\nerror: the broker refused the login\n"
    )
    job = audit_jobs.found(tmp_path, JOB_ID)
    assert (job.state, job.error) == (audit_jobs.FAILED, "error: the broker refused the login")
    with pytest.raises(UnknownReferenceError):
        audit_jobs.pack_file(tmp_path, JOB_ID, "cpo")


@pytest.mark.parametrize("job_id", ["../../etc", "0123456789ABCDEF", "nope"])
def test_an_id_that_is_no_job_is_unknown(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(UnknownReferenceError):
        audit_jobs.found(tmp_path, job_id)
