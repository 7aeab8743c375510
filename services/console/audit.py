"""The access log in the console: an agency's own access history, and the auditor's access search.

Both answer through :func:`services.access_audit.answered`, the function behind ``sharehub audit access``:
an agency's history is the question with its own id as the consumer, so it never holds another agency's
entries; the search is for the auditor (an agency of kind ``inspection-commission``, governance's
:data:`~sharehub.gov.views.AUDITOR_KIND`, the one the broker lets read the access log) and takes any agency,
dataset and time range. Every search is itself recorded in the access log (operation ``audit_access``), so
who searched, and for what, is there too.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.access_audit import AccessQuestion, answered
from services.console.state import SignedIn, Visit
from sharehub.errors import Forbidden, InputError
from sharehub.gov.views import AUDITOR_KIND

router = APIRouter(prefix="/console", include_in_schema=False)
#: The newest entries a page shows.
SHOWN = 200
#: What the access record of a search states as its purpose.
SEARCH_PURPOSE = "access search by the auditor"
Text = Annotated[str, Query(max_length=200)]


def is_auditor(visit: Visit) -> bool:
    return visit.ctx.governance.agency(visit.agency).kind == AUDITOR_KIND


async def _entries(visit: Visit, question: AccessQuestion) -> list[dict[str, Any]]:
    """The newest entries ``question`` holds for, newest first."""
    ctx = visit.ctx
    found = await run_in_threadpool(answered, ctx.kafka, ctx.governance.access_log_topic, question)
    return [{**r, "at": r["at"].astimezone(dt.UTC)} for r in reversed(found[-SHOWN:])]


@router.get("/access")
async def own_access_history(visit: SignedIn) -> Response:
    """The signed-in agency's own entries in the access log."""
    entries = await _entries(visit, AccessQuestion(consumer=visit.agency))
    return visit.page("access.html", entries=entries, shown=SHOWN)


@router.get("/audit/access")
async def access_search(
    visit: SignedIn, agency: Text = "", dataset: Text = "", start: Text = "", end: Text = ""
) -> Response:
    """The auditor's search over the whole access log; the form alone until a criterion is given."""
    if not is_auditor(visit):
        raise Forbidden(f"the access search is for the auditor (an agency of kind {AUDITOR_KIND}), "
                        f"not {visit.agency!r}")  # fmt: skip
    asked = {"agency": agency.strip(), "dataset": dataset.strip(), "start": start.strip(), "end": end.strip()}
    entries = None
    if any(asked.values()):
        question = AccessQuestion(
            consumer=asked["agency"] or None,
            dataset=asked["dataset"] or None,
            start=_moment(asked["start"], "from"),
            end=_moment(asked["end"], "to"),
        )
        await visit.ctx.access.record(
            consumer=visit.agency, purpose=SEARCH_PURPOSE, operation="audit_access", dataset=question.dataset
        )
        entries = await _entries(visit, question)
    return visit.page("audit_access.html", asked=asked, entries=entries, shown=SHOWN)


def _moment(text: str, name: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC unless it names a zone); InputError for anything else."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{name}: {text!r} is not an ISO 8601 time such as 2026-12-06T08:00") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
