"""What each role's section of the home page shows, built from governance as the agency may see it
(:func:`services.api.governance.as_seen_by`, the API's one visibility rule) and, for the operator, the
operations status.

Roles come from governance: the operator is the state's; a central office (its kind) approves; an owner owns
datasets; a consumer has agreements as consumer; the auditor is of governance's auditor kind. One agency
may hold several.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from services.api.governance import as_seen_by
from services.erasure_requests import ErasureRequest
from sharehub.gov.rules import CENTRAL_OFFICE
from sharehub.gov.state import GovState
from sharehub.gov.views import AUDITOR_KIND

#: Stages an agreement goes through before it takes effect: the queue.
WAITING = ("proposed", "consented")


@dataclass(frozen=True)
class Agreement:
    """An agreement's current version as a page shows it."""

    id: str
    consumer: str
    dataset: str
    owner: str
    stage: str
    approvals: list[str]
    required_approvals: int
    fields: list[str]
    purpose: str
    purposes: list[str]
    valid_until: str | None


@dataclass
class Home:
    """The sections of an agency's home page: one per role it holds (None: not its role)."""

    agency: dict[str, Any]
    operator: dict[str, Any] | None = None
    central_office: list[Agreement] | None = None
    owner: dict[str, Any] | None = None
    consumer: list[Agreement] | None = None
    #: An agency of governance's auditor kind: the access search is its.
    auditor: bool = False
    datasets: list[dict[str, Any]] = field(default_factory=list)


def home(
    state: GovState, who: str, status: dict[str, Any] | None, erasures: list[ErasureRequest] | None = None
) -> Home:
    """``who``'s home page. ``status`` (the operations status) is the operator's, and an owner's for its own
    datasets only; the pending ``erasures`` are the operator's."""
    seen = as_seen_by(state, who)
    agreements = [_agreement(state, versions[-1]) for versions in seen["agreements"].values()]
    me = next(a for a in seen["agencies"] if a["id"] == who)
    page = Home(agency=me, datasets=seen["datasets"])
    if who == seen["operator"]:
        page.operator = {
            "agencies": [_with_key_validity(a) for a in seen["agencies"]],
            "datasets": seen["datasets"],
            "schemas": seen["schemas"],
            "queue": [a for a in agreements if a.stage in WAITING],
            "status": status,
            "erasures": erasures or [],
        }
    if me["kind"] == CENTRAL_OFFICE:
        page.central_office = [a for a in agreements if who not in (a.consumer, a.owner)]
    page.auditor = me["kind"] == AUDITOR_KIND
    owned = [d for d in seen["datasets"] if d["owner"] == who]
    if owned:
        mine = [a for a in agreements if a.owner == who]
        page.owner = {
            "datasets": owned,
            "proposals": [a for a in mine if a.stage == "proposed"],
            "all": mine,
            **_publishing({d["id"] for d in owned}, status),
        }
    as_consumer = [a for a in agreements if a.consumer == who]
    if as_consumer:
        page.consumer = as_consumer
    return page


def _publishing(owned: set[str], status: dict[str, Any] | None) -> dict[str, Any]:
    """What the operations status says of an owner's datasets only: each read model's lag behind them, and
    the events of them the projection refused, by reason."""
    if status is None:
        return {"read_models": [], "rejected": {}}
    return {
        "read_models": [m for m in status["read_models"] if m["dataset"] in owned],
        "rejected": {d: n for d, n in status["quarantined_by_dataset"].items() if d in owned},
    }


def _agreement(state: GovState, version: dict[str, Any]) -> Agreement:
    terms = version["terms"]
    return Agreement(
        id=terms["id"],
        consumer=terms["consumer"],
        dataset=terms["dataset"],
        owner=state.dataset_owner(terms["dataset"]),
        stage=version["stage"],
        approvals=list(version["approvals"]),
        required_approvals=version["required_approvals"],
        fields=list(terms["fields"]),
        purpose=terms["purpose"],
        purposes=list(terms.get("purposes", [])),
        valid_until=terms["valid_until"],
    )


def _with_key_validity(agency: dict[str, Any]) -> dict[str, Any]:
    """The agency with each key marked valid now, not yet valid, or ended."""
    now = dt.datetime.now(dt.UTC)
    keys = []
    for key in agency.get("keys", []):
        start = dt.datetime.fromisoformat(key["valid_from"])
        end = dt.datetime.fromisoformat(key["valid_until"]) if key.get("valid_until") else None
        state = "not_yet" if start > now else "ended" if end is not None and end <= now else "valid"
        keys.append({**key, "state": state})
    return {**agency, "keys": keys}
