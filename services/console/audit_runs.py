"""The audit page of the console (operator and auditor): verify runs of the whole log and their findings,
and evidence packs, each a background job of :mod:`services.console.audit_jobs` (the hub's own
``sharehub audit verify`` and ``sharehub audit pack``).

These runs are the hub's own check, from its home. An auditor's independent verification is ``sharehub audit
verify`` at its own site with its own identity; a pack verifies offline there (``sharehub audit verify-pack``
against the trust anchor the page shows). A pack is downloaded by the agency that asked for it only.
Starting a run, starting a pack and downloading one are written to the access log (operations
``audit_verify_started``, ``evidence_pack_started``, ``evidence_pack_downloaded``); a refused form starts
nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from services.api.errors import status_of
from services.console import audit_jobs
from services.console.login import redirect
from services.console.render import SECURITY_HEADERS
from services.console.state import PostedForm, SignedIn, Visit
from sharehub.errors import Forbidden, SharehubError, UnknownReferenceError
from sharehub.gov.views import AUDITOR_KIND

router = APIRouter(prefix="/console/audit", include_in_schema=False)
JobId = Annotated[str, Path(max_length=32)]
#: The pack form's fields, as ``audit pack`` takes its scope.
PACK_FIELDS = ("consumer", "dataset", "subject_ref", "since", "until")
#: The newest jobs the page lists.
SHOWN = 50
#: The findings a run's page lists (the counts by reason are of all of them).
SHOWN_FINDINGS = 1000


def _may_audit(visit: Visit) -> None:
    state = visit.ctx.governance
    if visit.agency != state.operator and state.agency(visit.agency).kind != AUDITOR_KIND:
        raise Forbidden(f"the audit page is for the operator and the auditor (an agency of kind "
                        f"{AUDITOR_KIND}), not {visit.agency!r}")  # fmt: skip


@router.get("")
async def audit_page(visit: SignedIn) -> Response:
    _may_audit(visit)
    return await _page(visit, {})


@router.post("/verify")
async def start_verify(visit: SignedIn, _form: PostedForm) -> Response:
    _may_audit(visit)
    busy = await _busy(visit, audit_jobs.VERIFY)
    if busy is not None:
        return busy
    job = await run_in_threadpool(audit_jobs.start, visit.ctx.settings, audit_jobs.VERIFY, visit.agency)
    await visit.ctx.access.record(
        consumer=visit.agency, purpose=f"audit verify run {job.id}", operation="audit_verify_started"
    )
    return redirect(f"/console/audit/runs/{job.id}")


@router.post("/pack")
async def start_pack(visit: SignedIn, form: PostedForm) -> Response:
    _may_audit(visit)
    values = {name: form.get(name, "").strip() for name in PACK_FIELDS}
    try:
        scope = audit_jobs.pack_scope(values, visit.ctx.governance)
    except SharehubError as exc:
        return await _page(visit, values, error=str(exc), status=status_of(exc)[0])
    busy = await _busy(visit, audit_jobs.PACK, values)
    if busy is not None:
        return busy
    job = await run_in_threadpool(audit_jobs.start, visit.ctx.settings, audit_jobs.PACK, visit.agency, scope)
    await visit.ctx.access.record(
        consumer=visit.agency,
        purpose=f"evidence pack {job.id} of {scope.to_json()}",
        operation="evidence_pack_started",
        dataset=scope.dataset,
    )
    return redirect(f"/console/audit/runs/{job.id}")


@router.get("/runs/{job_id}")
async def job_page(visit: SignedIn, job_id: JobId) -> Response:
    _may_audit(visit)
    job = await run_in_threadpool(audit_jobs.found, visit.ctx.settings.home, job_id)
    if job.kind == audit_jobs.PACK and job.started_by != visit.agency:
        raise UnknownReferenceError(f"no audit job {job_id!r}")  # another agency's pack
    return visit.page("audit_run.html", job=job, shown=SHOWN_FINDINGS)


@router.get("/packs/{job_id}/evidence.zip")
async def download_pack(visit: SignedIn, job_id: JobId) -> Response:
    _may_audit(visit)
    path = await run_in_threadpool(audit_jobs.pack_file, visit.ctx.settings.home, job_id, visit.agency)
    await visit.ctx.access.record(
        consumer=visit.agency, purpose=f"evidence pack {job_id}", operation="evidence_pack_downloaded"
    )
    name = f"sharehub-evidence-{job_id}.zip"
    return FileResponse(path, media_type="application/zip", filename=name, headers=dict(SECURITY_HEADERS))


async def _busy(visit: Visit, kind: str, values: dict[str, str] | None = None) -> Response | None:
    """The page with a 409 if the agency's job of ``kind`` still runs (one at a time each), else None."""
    home = visit.ctx.settings.home
    running = await run_in_threadpool(audit_jobs.still_running, home, kind, visit.agency)
    if running is None:
        return None
    error = f"your {kind} job {running.id}, started {running.started_at}, still runs: wait for it to end"
    return await _page(visit, values or {}, error=error, status=409)


async def _page(
    visit: Visit, values: dict[str, str], error: str | None = None, status: int = 200
) -> Response:
    """The audit page; its jobs' states are read off the disk (a report summed once) in a thread."""
    jobs = await run_in_threadpool(audit_jobs.listed, visit.ctx.settings.home)
    runs = [j for j in jobs if j.kind == audit_jobs.VERIFY][:SHOWN]
    packs = [j for j in jobs if j.kind == audit_jobs.PACK and j.started_by == visit.agency][:SHOWN]
    fields = {name: values.get(name, "") for name in PACK_FIELDS}
    return visit.page("audit_runs.html", status, runs=runs, packs=packs, values=fields, error=error)
