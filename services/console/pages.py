"""The console's pages: an agency's home (a section per role it holds) and a consumer's record browser.

The record browser answers through the query API's own routes (:mod:`services.api.records`), called with the
signed-in agency as the caller: the same check that the read model is the caller's (403 otherwise), the same
purpose check, and the same access record of every page (R7).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.api import records
from services.api.context import own_read_model
from services.console import audit_jobs, views
from services.console.state import SignedIn

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 50


@router.get("/")
async def home(visit: SignedIn, done: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    ctx = visit.ctx
    state = ctx.governance
    status, erasures = None, None
    if visit.agency == state.operator or any(d.owner == visit.agency for d in state.datasets()):
        status = await run_in_threadpool(ctx.operations.status)
    if visit.agency == state.operator:
        erasures = ctx.erasure_requests.pending()
    page = views.home(state, visit.agency, status, erasures)
    if page.operator is not None:
        page.operator["latest_run"] = await run_in_threadpool(audit_jobs.latest_run, ctx.settings.home)
    return visit.page("home.html", home=page, done=done)


@router.get("/records/{consumer}/{dataset}")
async def record_browser(
    visit: SignedIn,
    consumer: str,
    dataset: str,
    purpose: Annotated[str, Query(max_length=200)] = "",
    filter: Annotated[str, Query(max_length=2000)] = "",
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """A page of ``dataset`` in ``consumer``'s read model, for the purpose stated; the form alone until one
    is stated."""
    reader = await own_read_model(consumer, visit.agency)
    page = None
    if purpose.strip():
        page = await records.list_records(
            consumer=reader,
            dataset=dataset,
            purpose=await records.stated_purpose(purpose),
            ctx=visit.ctx,
            limit=PAGE_SIZE,
            after=after,
            filter=filter.strip() or None,
            sort=None,
            offset=0,
            as_of=None,
        )
    agreement = visit.ctx.governance.active_agreement(consumer, dataset, dt.datetime.now(dt.UTC))
    return visit.page(
        "records.html",
        consumer=consumer,
        dataset=dataset,
        purpose=purpose,
        filter=filter,
        page=page,
        columns=list(agreement.fields) if agreement else [],
    )
