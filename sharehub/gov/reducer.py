"""How each governance event changes the state: the one reducer used live and on replay.

:func:`mutate` runs only after :func:`sharehub.gov.verify.verify` and :func:`sharehub.gov.rules.check`
passed, so it never refuses and never leaves a state half-changed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, cast

from sharehub.gov import credentials, vocabulary
from sharehub.gov import events as ev
from sharehub.gov.models import AgencyRecord, AgreementRecord, DatasetRecord, KeyRecord, approvals_needed
from sharehub.gov.rules import parse_schema
from sharehub.gov.views import AgencyKind, Classification

if TYPE_CHECKING:
    from sharehub.gov.state import GovState


def mutate(state: GovState, event: ev.GovernanceEvent) -> None:
    p = event.payload
    if isinstance(p, ev.AgencyRegistered):
        state.agencies_[p.id] = AgencyRecord(
            id=p.id,
            name=p.name,
            kind=cast(AgencyKind, p.kind),
            clearance=cast(Classification, p.clearance),
            parent=p.parent,
            registered_at=event.occurred_at,
        )
    elif isinstance(p, ev.SigningKeyAdded):
        _add_key(state, p)
    elif isinstance(p, ev.SigningKeyRevoked):
        agency = state.agencies_[p.agency]
        key = agency.key(p.key_id)
        assert key is not None  # rules.check made sure
        revoked = dataclasses.replace(key, revoked_at=p.effective_at, revoke_reason=p.reason)
        state.agencies_[p.agency] = agency.with_key(revoked)
    elif isinstance(p, ev.DatasetDeclared):
        state.datasets_[p.id] = DatasetRecord(
            id=p.id,
            owner=p.owner,
            description=p.description,
            classification=cast(Classification, p.classification),
            retention_ms=p.retention_ms,
            key_field=p.key_field,
            partitions=p.partitions,
            quality_rules=p.quality_rules,
            purposes=p.purposes,
            retentions=((event.occurred_at, p.retention_ms),),
        )
    elif isinstance(p, ev.DatasetRetentionChanged):
        ds = state.datasets_[p.dataset]
        retentions = (*ds.retentions, (event.occurred_at, p.retention_ms))
        state.datasets_[p.dataset] = dataclasses.replace(
            ds, retention_ms=p.retention_ms, retentions=retentions
        )
    elif isinstance(p, ev.SchemaRegistered):
        ds = state.datasets_[p.dataset]
        schema = parse_schema(p.dataset, p.schema)
        state.datasets_[p.dataset] = dataclasses.replace(ds, schemas=(*ds.schemas, schema))
    elif isinstance(p, ev.CredentialIssued):
        credentials.apply_issued(state, p, event.occurred_at)
    elif isinstance(p, ev.CredentialRevoked):
        credentials.apply_revoked(state, p)
    elif isinstance(p, ev.VocabularyChange | ev.DatasetPurposesChanged):
        vocabulary.mutate(state, event)
    else:
        _agreement(state, event, p)


def _add_key(state: GovState, p: ev.SigningKeyAdded) -> None:
    agency = state.agencies_[p.agency]
    if p.replaces is not None:
        # Rotation: the old key stops counting where the new one starts (or earlier, if it already did).
        old = agency.key(p.replaces)
        assert old is not None
        ends = min(old.valid_until, p.valid_from) if old.valid_until is not None else p.valid_from
        agency = agency.with_key(dataclasses.replace(old, valid_until=ends))
    key = KeyRecord(
        key_id=p.key_id, public_key=p.public_key, valid_from=p.valid_from, valid_until=p.valid_until
    )
    state.agencies_[p.agency] = agency.with_key(key)


def _agreement(state: GovState, event: ev.GovernanceEvent, p: ev.AgreementChange) -> None:
    if isinstance(p, ev.AgreementProposed):
        ds = state.datasets_[p.dataset]
        record = AgreementRecord(
            terms=p,
            owner=ds.owner,
            proposed_by=event.actor,
            required_approvals=approvals_needed(ds, p.fields),
            terms_hash=event.hash,
        )
        state.versions[p.id] = []
    else:
        record = _next(state.agreements_[p.id], p)
    # Every event makes a new version, stamped with the event that made it.
    record = dataclasses.replace(
        record, sequence=event.sequence, event_type=event.type, actor=event.actor, at=event.occurred_at
    ).with_stage_of(event.occurred_at)
    state.agreements_[record.id] = record
    state.versions[record.id].append(record)


def _next(current: AgreementRecord, p: ev.AgreementChange) -> AgreementRecord:
    if isinstance(p, ev.AgreementConsented):
        return dataclasses.replace(current, stage="consented", consented_by=p.by, reason=None)
    if isinstance(p, ev.AgreementApproved):
        approvals = (*current.approvals, p.approver)
        done = len(approvals) >= current.required_approvals
        return dataclasses.replace(
            current,
            approvals=approvals,
            stage="approved" if done else "consented",
            ever_approved=current.ever_approved or done,
            reason=None,
        )
    if isinstance(p, ev.AgreementSuspended):
        return dataclasses.replace(current, stage="suspended", reason=p.reason)
    if isinstance(p, ev.AgreementResumed):
        return dataclasses.replace(current, stage="approved", reason=p.reason)
    if isinstance(p, ev.AgreementRevoked):
        return dataclasses.replace(current, stage="revoked", reason=p.reason)
    raise AssertionError(f"a proposal is not a change of an existing agreement: {p!r}")
