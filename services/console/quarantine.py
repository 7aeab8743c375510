"""The quarantine in the console, for the operator: what the projection refused, by reason; a re-check of each
refusal under governance and keys as they are now; a redrive of the datasets where one passes now.

The same functions as ``sharehub quarantine list``, ``recheck`` and ``redrive``
(:mod:`services.quarantine_review`). A re-check and a redrive are written to the access log (operations
``quarantine_recheck`` and ``quarantine_redrive``, the operator as the consumer), a redrive naming the
datasets it had replayed.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.console.state import PostedForm, SignedIn, Visit
from services.quarantine_review import Review, quarantined, recheck, redrive
from sharehub.errors import Forbidden

router = APIRouter(prefix="/console/quarantine", include_in_schema=False)
#: The most entries a page lists (the counts are of all of them).
SHOWN = 200
PURPOSE = "quarantine review by the operator"


def _operator(visit: Visit) -> None:
    operator = visit.ctx.governance.operator
    if visit.agency != operator:
        raise Forbidden(f"the quarantine is the operator's ({operator!r}), not {visit.agency!r}'s")


@router.get("")
async def quarantine(visit: SignedIn, reason: Annotated[str, Query(max_length=64)] = "") -> Response:
    _operator(visit)
    ctx = visit.ctx
    entries = await run_in_threadpool(lambda: list(quarantined(ctx.kafka, ctx.governance.quarantine_topic)))
    return _page(visit, [Review(e, "", "") for e in entries], reason, checked=False)


@router.post("/recheck")
async def quarantine_recheck(visit: SignedIn, form: PostedForm) -> Response:
    _operator(visit)
    reviews = await _rechecked(visit)
    await visit.ctx.access.record(consumer=visit.agency, purpose=PURPOSE, operation="quarantine_recheck")
    return _page(visit, reviews, form.get("reason", ""), checked=True)


@router.post("/redrive")
async def quarantine_redrive(visit: SignedIn, form: PostedForm) -> Response:
    _operator(visit)
    ctx = visit.ctx
    reviews = await _rechecked(visit)
    asked = await run_in_threadpool(redrive, ctx.desk.governance, ctx.read_models, reviews)
    replayed = ", ".join(asked) or "nothing"
    await ctx.access.record(
        consumer=visit.agency, purpose=f"{PURPOSE}: replayed {replayed}", operation="quarantine_redrive"
    )
    return _page(visit, reviews, form.get("reason", ""), checked=True, redriven=asked)


async def _rechecked(visit: Visit) -> list[Review]:
    ctx = visit.ctx
    return await run_in_threadpool(lambda: list(recheck(ctx.desk.governance, ctx.keys, ctx.kafka)))


def _page(
    visit: Visit,
    reviews: list[Review],
    reason: str,
    *,
    checked: bool,
    redriven: dict[str, list[str]] | None = None,
) -> Response:
    datasets = {d.topic: d.id for d in visit.ctx.governance.datasets()}
    by_reason = Counter(r.entry["reason"] for r in reviews)
    verdicts = Counter(r.verdict for r in reviews) if checked else Counter()
    shown: list[dict[str, Any]] = [
        {**r.entry, "dataset": datasets.get(r.entry["source_topic"], r.entry["source_topic"]),
         "verdict": r.verdict, "now": r.now}
        for r in reviews
        if not reason or r.entry["reason"] == reason
    ]  # fmt: skip
    return visit.page(
        "quarantine.html",
        by_reason=dict(sorted(by_reason.items())),
        reason=reason,
        entries=shown[:SHOWN],
        total=len(shown),
        shown=SHOWN,
        checked=checked,
        verdicts=dict(sorted(verdicts.items())),
        redriven=redriven,
    )
