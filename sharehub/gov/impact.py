"""What a new schema version of a dataset would do to the agreements over it, weighed before it is
registered: which agreements it breaks, which consumers' read models it narrows, which grants it widens.

- **breaks**: a field an agreement grants is gone from the new version, or its row filter no longer fits it.
  ``register-schema`` refuses such a version (:class:`SchemaBreaksAgreements`) until the agreement is
  revoked (and its successor proposed without the field).
- **narrows**: a granted field rises above the consumer's clearance; the projection withholds it from that
  consumer's read model from then on (its rows are projected again without it).
- **widens**: an enum a row filter reads gains symbols, so records the filter never saw may now pass it
  (``status != "COMPLETED"`` lets a new ``CANCELLED`` through). (A classification is never lowered:
  :mod:`sharehub.schema_compat` refuses that.)

Agreements that can still take effect are weighed: proposed, approved, suspended (not revoked or expired).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sharehub.avro import RecordSchema
from sharehub.errors import RowFilterError, SchemaBreaksAgreements
from sharehub.gov.models import AgreementRecord
from sharehub.gov.views import level
from sharehub.row_filter import compile_filter

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

Effect = Literal["breaks", "narrows", "widens"]
#: Agreements in these states now are weighed (the others grant nothing and never will again).
WEIGHED = ("proposed", "consented", "approved", "active", "suspended")


@dataclass(frozen=True)
class Impact:
    agreement: str
    consumer: str
    effect: Effect
    #: The field (or row filter) concerned.
    subject: str
    detail: str

    def line(self) -> str:
        return f"agreement {self.agreement!r} ({self.consumer}): {self.effect}: {self.subject}: {self.detail}"


def schema_impact(state: GovState, dataset_id: str, new: RecordSchema, *, at: dt.datetime) -> list[Impact]:
    """Every impact of registering ``new`` as the next version of ``dataset_id`` on the agreements over it
    that ``state`` holds, weighed as they stand at ``at``, in agreement order."""
    dataset = state.datasets_[dataset_id]
    if not dataset.schemas:
        return []
    current = dataset.schemas[-1]
    found: list[Impact] = []
    for _, agreement in sorted(state.agreements_.items()):
        if agreement.terms.dataset != dataset_id or agreement.status_at(at) not in WEIGHED:
            continue
        clearance = state.agencies_[agreement.terms.consumer].clearance
        found += _impact_on(agreement, current, new, clearance)
    return found


def _impact_on(
    agreement: AgreementRecord, current: RecordSchema, new: RecordSchema, clearance: str
) -> list[Impact]:
    terms = agreement.terms

    def impact(effect: Effect, subject: str, detail: str) -> Impact:
        return Impact(terms.id, terms.consumer, effect, subject, detail)

    found = []
    for name in terms.fields:
        now, then = current.fields.get(name), new.fields.get(name)
        if then is None:
            found.append(impact("breaks", name, "granted, and the new version drops it"))
        elif now is not None and level(now.classification) <= level(clearance) < level(then.classification):
            detail = (
                f"rises from {now.classification} to {then.classification}, above the consumer's "
                f"{clearance} clearance: withheld from its read model"
            )
            found.append(impact("narrows", name, detail))
    if terms.row_filter is not None:
        try:
            compiled = compile_filter(terms.row_filter, new, allowed_fields=terms.fields)
        except RowFilterError as exc:
            found.append(
                impact("breaks", "row filter", f"{terms.row_filter!r} does not fit the new version: {exc}")
            )
        else:
            for name in sorted(compiled.fields & current.fields.keys()):
                gained = _symbols(new.fields[name].type) - _symbols(current.fields[name].type)
                if gained:
                    detail = (
                        f"the row filter {terms.row_filter!r} reads {name!r}, whose new symbols "
                        f"{', '.join(sorted(gained))} it was never weighed against"
                    )
                    found.append(impact("widens", name, detail))
    return found


def _symbols(avro_type: Any) -> set[str]:
    """The symbols of an enum type (or of the enum in a union), else none."""
    if isinstance(avro_type, list):
        return set().union(*(_symbols(t) for t in avro_type))
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        return set(avro_type.get("symbols", ()))
    return set()


def refuse_breaking(dataset: str, impacts: list[Impact]) -> None:
    """SchemaBreaksAgreements naming every agreement the new version would break, if there is one."""
    breaking = [i for i in impacts if i.effect == "breaks"]
    if breaking:
        raise SchemaBreaksAgreements(
            f"schema of {dataset!r} breaks {len(breaking)} term(s) of agreements in force; revoke them (and "
            "propose their successors) first, or replace them in the same 'sharehub gov apply' as the "
            "version, or keep the fields: " + "; ".join(i.line() for i in breaking)
        )
