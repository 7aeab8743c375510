"""The governed vocabulary of purposes and legal bases: what agreements and datasets name, and queries state.

Governance (the operator only) defines each term once, with a Vietnamese and an English label
(``PurposeDefined``, ``LegalBasisDefined``), and may retire it (``PurposeRetired``, ``LegalBasisRetired``):
a retired term can no longer be named by a new agreement or dataset, while agreements that name it keep it.
Ids are never reused. Once the vocabulary holds a purpose, every new agreement names purposes from it (and
a legal basis from it, once it holds one); agreements proposed before, with free-text ``purpose`` and
``legal_basis``, stay valid on replay and keep being answered as before (:func:`allowed_purposes`).

A dataset's purposes may be changed after it is declared (``DatasetPurposesChanged``, by its owner or the
operator): a narrowing waits until no agreement that can still take effect names a purpose it leaves out.

This module holds the terms' models, their rules (decide before acting: each check raises the specific
:class:`~sharehub.errors.InputError` and changes nothing) and how their events change the state; the
generic rules and reducer hand vocabulary events and the vocabulary parts of other events to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sharehub.errors import DuplicateId, InputError, LifecycleViolation, NotPermitted, UnknownReferenceError
from sharehub.gov import events as ev
from sharehub.gov.views import ID_PATTERN, Agreement

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

_ID = re.compile(ID_PATTERN)
MAX_LABEL = 200
MIN_ID = 3
#: An agreement in these states grants nothing and never will again: a dataset's purposes may leave its out.
ENDED = ("revoked", "expired")


@dataclass(frozen=True, kw_only=True)
class _TermRecord:
    id: str
    label_vi: str
    label_en: str
    defined_at: dt.datetime
    retired_at: dt.datetime | None = None
    retire_reason: str | None = None

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "label_vi": self.label_vi, "label_en": self.label_en}


@dataclass(frozen=True, kw_only=True)
class PurposeRecord(_TermRecord):
    """A purpose of the vocabulary: why data may be shared, in both languages."""


@dataclass(frozen=True, kw_only=True)
class LegalBasisRecord(_TermRecord):
    """A legal basis of the vocabulary: the text an agreement rests on, in both languages."""

    reference: str

    def json(self) -> dict[str, Any]:
        return {**super().json(), "reference": self.reference}


Term = PurposeRecord | LegalBasisRecord


def in_use(terms: Mapping[str, Term]) -> list[str]:
    """The ids of the terms not retired, sorted: what a new agreement may name."""
    return sorted(t.id for t in terms.values() if t.retired_at is None)


def allowed_purposes(agreement: Agreement) -> tuple[str, ...] | None:
    """The purposes a query under an agreement may state: its vocabulary ids, or None for an agreement of
    free-text purpose (proposed before the vocabulary), under which any stated purpose is taken, as before,
    and recorded as stated."""
    return agreement.purposes or None


# --- rules -------------------------------------------------------------------------------------------


def check(state: GovState, p: ev.VocabularyChange, actor: str) -> None:
    """Refuse a vocabulary event that may not be applied: the operator alone defines and retires terms."""
    kind, terms = _kind(state, p)
    if actor != state.operator:
        raise NotPermitted(
            f"only the operator {state.operator!r} may define or retire a {kind}; {actor!r} asked"
        )
    if isinstance(p, ev.PurposeDefined | ev.LegalBasisDefined):
        if not _ID.fullmatch(p.id) or len(p.id) < MIN_ID:
            # A query states a purpose by its id, in 3 to 200 characters.
            raise InputError(
                f"{kind} id {p.id!r}: {MIN_ID}-63 characters a-z 0-9 -, starting with a letter or digit"
            )
        if p.id in terms:
            retired = " (retired: ids are never reused)" if terms[p.id].retired_at is not None else ""
            raise DuplicateId(f"{kind} {p.id!r} is already defined{retired}")
        _text(f"{kind} {p.id!r}: label_vi", p.label_vi)
        _text(f"{kind} {p.id!r}: label_en", p.label_en)
        if isinstance(p, ev.LegalBasisDefined):
            _text(f"{kind} {p.id!r}: reference", p.reference)
        return
    found = terms.get(p.id)
    if found is None:
        raise UnknownReferenceError(f"no {kind} {p.id!r}; defined: {_listed(terms)}")
    if found.retired_at is not None:
        raise LifecycleViolation(f"{kind} {p.id!r} was already retired")
    if not p.reason.strip():
        raise InputError(f"retiring {kind} {p.id!r}: a reason is required (it stays on the log)")


def check_dataset(state: GovState, p: ev.DatasetDeclared) -> None:
    """The purposes a dataset may be shared for: distinct purposes of the vocabulary, none retired."""
    _named(state.purposes_, p.purposes, "purpose", f"dataset {p.id!r}")


def check_purposes_changed(state: GovState, p: ev.DatasetPurposesChanged, at: dt.datetime) -> None:
    """A dataset's new purposes: distinct purposes of the vocabulary, none retired (but one it already
    names, which it may keep, as agreements keep theirs), other than its current ones; and none left out
    that an agreement on it which can still take effect names (revoke that agreement first)."""
    what = f"dataset {p.dataset!r}"
    current = state.datasets_[p.dataset].purposes
    if len(set(p.purposes)) != len(p.purposes):
        raise InputError(f"{what}: purpose ids must not repeat")
    _named(state.purposes_, [x for x in p.purposes if x not in current], "purpose", what)
    if sorted(p.purposes) == sorted(current):
        now = ", ".join(current) or "any purpose (none named)"
        raise InputError(f"{what} may already be shared for {now}: the change changes nothing")
    if not p.purposes:  # any purpose: nothing is left out
        return
    named = _left_out(state, p, at)
    if named:
        raise LifecycleViolation(
            f"{what}: agreements on it name purposes the new list leaves out: {'; '.join(named)}; revoke "
            "them first (and propose their successors within the new purposes)"
        )


def _left_out(state: GovState, p: ev.DatasetPurposesChanged, at: dt.datetime) -> list[str]:
    """Each agreement on the dataset that is not revoked or expired at ``at`` and names a purpose outside
    ``p.purposes``, with those purposes (``agreement-id (purpose, ...)``)."""
    found = []
    for agreement_id, record in sorted(state.agreements_.items()):
        terms = record.terms
        if terms.dataset != p.dataset or record.status_at(at) in ENDED:
            continue
        outside = [x for x in terms.purposes if x not in p.purposes]
        if outside:
            found.append(f"{agreement_id} ({record.status_at(at)}: {', '.join(outside)})")
    return found


def check_agreement(state: GovState, p: ev.AgreementProposed, dataset_purposes: tuple[str, ...]) -> None:
    """An agreement names purposes and a legal basis of the vocabulary once it holds them; each purpose
    must be one its dataset may be shared for (when the dataset names any)."""
    what = f"agreement {p.id!r}"
    if not p.purposes:
        if state.purposes_:
            raise InputError(
                f"{what}: name its purposes by id from governance's vocabulary (purposes); "
                f"in use: {_listed(state.purposes_)}"
            )
    else:
        _named(state.purposes_, p.purposes, "purpose", what)
        outside = [x for x in p.purposes if dataset_purposes and x not in dataset_purposes]
        if outside:
            raise InputError(
                f"{what}: dataset {p.dataset!r} may not be shared for {', '.join(outside)}; it may be for: "
                f"{', '.join(x for x in dataset_purposes if x in in_use(state.purposes_)) or 'nothing now'}"
            )
    if state.legal_bases_ or p.purposes:
        _named(state.legal_bases_, (p.legal_basis,), "legal basis", what)


def _named(terms: Mapping[str, Term], ids: Iterable[str], kind: str, what: str) -> None:
    ids = tuple(ids)
    if len(set(ids)) != len(ids):
        raise InputError(f"{what}: {kind} ids must not repeat")
    for term_id in ids:
        found = terms.get(term_id)
        if found is None:
            raise UnknownReferenceError(f"{what}: no {kind} {term_id!r}; in use: {_listed(terms)}")
        if found.retired_at is not None:
            raise LifecycleViolation(
                f"{what}: {kind} {term_id!r} is retired ({found.retire_reason}); in use: {_listed(terms)}"
            )


def _listed(terms: Mapping[str, Term]) -> str:
    return ", ".join(in_use(terms)) or "none (governance defines them first)"


def _text(what: str, value: str) -> None:
    if not value.strip() or len(value) > MAX_LABEL or value != value.strip():
        raise InputError(f"{what}: 1 to {MAX_LABEL} characters, not only spaces, none around")


def _kind(state: GovState, p: ev.VocabularyChange) -> tuple[str, Mapping[str, Term]]:
    if isinstance(p, ev.PurposeDefined | ev.PurposeRetired):
        return "purpose", state.purposes_
    return "legal basis", state.legal_bases_


# --- how the events change the state -------------------------------------------------------------------


def mutate(state: GovState, event: ev.GovernanceEvent) -> None:
    """Apply a vocabulary event, or a change of a dataset's purposes, that the rules let through."""
    p = event.payload
    at = event.occurred_at
    if isinstance(p, ev.PurposeDefined):
        state.purposes_[p.id] = PurposeRecord(
            id=p.id, label_vi=p.label_vi, label_en=p.label_en, defined_at=at
        )
    elif isinstance(p, ev.LegalBasisDefined):
        state.legal_bases_[p.id] = LegalBasisRecord(
            id=p.id, label_vi=p.label_vi, label_en=p.label_en, reference=p.reference, defined_at=at
        )
    elif isinstance(p, ev.PurposeRetired):
        state.purposes_[p.id] = dataclasses.replace(
            state.purposes_[p.id], retired_at=at, retire_reason=p.reason
        )
    elif isinstance(p, ev.LegalBasisRetired):
        basis = state.legal_bases_[p.id]
        state.legal_bases_[p.id] = dataclasses.replace(basis, retired_at=at, retire_reason=p.reason)
    elif isinstance(p, ev.DatasetPurposesChanged):
        state.datasets_[p.dataset] = dataclasses.replace(state.datasets_[p.dataset], purposes=p.purposes)


def dump(state: GovState) -> dict[str, Any]:
    """The vocabulary, JSON-ready, for the state's canonical dump (every term, retired ones with when)."""

    def entry(t: Term) -> dict[str, Any]:
        retired = t.retired_at.isoformat() if t.retired_at else None
        return {**t.json(), "defined_at": t.defined_at.isoformat(), "retired_at": retired}

    return {
        "purposes": [entry(state.purposes_[k]) for k in sorted(state.purposes_)],
        "legal_bases": [entry(state.legal_bases_[k]) for k in sorted(state.legal_bases_)],
        "dataset_purposes": {d: list(r.purposes) for d, r in sorted(state.datasets_.items()) if r.purposes},
    }
