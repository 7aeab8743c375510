"""The rules every governance change must pass, checked against the state just before it.

:func:`check` is called twice for every event: by the service before it signs (so a refused command never
reaches the log) and by the reducer when it applies an event, live or on replay (so a log written by a
faulty or compromised operator that breaks a rule is caught by anyone who rebuilds the state). Time-dependent
rules (expiry) are judged at the event's ``occurred_at``, so replay reaches the same verdicts years later.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sharehub.avro import RecordSchema
from sharehub.errors import (
    ClearanceTooLow,
    DuplicateId,
    InputError,
    LifecycleViolation,
    NotPermitted,
    RowFilterError,
    UnknownReferenceError,
    ValidityExpired,
)
from sharehub.gov import credentials, retention, vocabulary
from sharehub.gov import events as ev
from sharehub.gov.custody import CUSTODY
from sharehub.gov.impact import refuse_breaking, schema_impact
from sharehub.gov.models import AgencyRecord, AgreementRecord, DatasetRecord
from sharehub.gov.views import Agency, Dataset, level
from sharehub.row_filter import compile_filter
from sharehub.schema_compat import require_compatible

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

CENTRAL_OFFICE = "central-office"
#: A dataset of this classification is shared as a whole or not at all: only with agencies cleared for it.
#: Below it, clearance bounds each granted field (portion marking), and secret data needs two approvers.
COMPARTMENTED = "top-secret"
#: The part of a signing key id after ``<agency>/sign/``.
#: Ids the hub's own services log in to the broker under (``<prefix>.hub``, ``.projector``, ``.api``).
RESERVED_AGENCY_IDS = frozenset({"hub", "projector", "api", "governance"})
_KEY_LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_ED25519_P = 2**255 - 19
#: y of the Ed25519 points of small order (1, 2, 4, 8): a public key there verifies forged signatures.
_SMALL_ORDER_Y = frozenset(
    {
        0,
        1,
        _ED25519_P - 1,
        0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826,
        _ED25519_P - 0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826,
    }
)


def check(state: GovState, payload: ev.Payload, actor: str, at: dt.datetime) -> None:
    """Raise the specific InputError subclass that refuses ``payload``; return if it may be applied."""
    if not (isinstance(payload, ev.AgencyRegistered) and payload.id == actor == state.operator):
        # Only the operator's own registration (the log's first act) comes from an agency not yet known.
        _agency(state, actor, "acting agency")
    _CHECKS[type(payload)](state, payload, actor, at)


# --- agencies and keys ---------------------------------------------------------------------------------


def _agency_registered(state: GovState, p: ev.AgencyRegistered, actor: str, at: dt.datetime) -> None:
    _operator_only(state, actor, f"register agency {p.id!r}")
    if p.id in state.agencies_:
        raise DuplicateId(f"agency {p.id!r} is already registered")
    if p.id in RESERVED_AGENCY_IDS:
        raise InputError(
            f"agency id {p.id!r} names one of the hub's own services on the broker; choose another"
        )
    _validate(Agency, id=p.id, name=p.name, kind=p.kind, clearance=p.clearance, parent=p.parent)
    if p.parent is not None:
        _agency(state, p.parent, f"parent of {p.id!r}")


def _key_added(state: GovState, p: ev.SigningKeyAdded, actor: str, at: dt.datetime) -> None:
    agency = _agency(state, p.agency, "key owner")
    if actor not in (p.agency, state.operator):
        raise NotPermitted(f"{actor!r} may not add keys of {p.agency!r}; only the agency or the operator may")
    if any(k.key_id == p.key_id for a in state.agencies_.values() for k in a.keys):
        raise DuplicateId(f"signing key id {p.key_id!r} is already taken")
    prefix = f"{p.agency}/sign/"
    # A custody key (the hub holds it for the agency, see sharehub.gov.custody) is the operator's statement.
    custody = f"{p.agency}/{CUSTODY}/" if actor == state.operator else prefix
    start = custody if p.key_id.startswith(custody) else prefix
    if not (p.key_id.startswith(start) and _KEY_LABEL.fullmatch(p.key_id[len(start) :])):
        raise InputError(
            f"signing key id {p.key_id!r}: must be '{prefix}LABEL', LABEL of 1-64 characters a-z 0-9 . _ - "
            "starting with a letter or digit (or, added by the operator for an agency in the hub's custody, "
            f"'{p.agency}/{CUSTODY}/LABEL')"
        )
    _public_key(p.key_id, p.public_key)
    _window(f"key {p.key_id!r}", p.valid_from, p.valid_until, at)
    if agency.registered_at is not None and p.valid_from < agency.registered_at:
        raise InputError(
            f"key {p.key_id!r}: valid_from {p.valid_from.isoformat()} is before {p.agency!r} was registered "
            f"({agency.registered_at.isoformat()}); a key cannot sign for an agency that did not exist yet"
        )
    if p.replaces is not None:
        old = agency.key(p.replaces)
        if old is None:
            raise UnknownReferenceError(f"agency {p.agency!r} has no signing key {p.replaces!r} to rotate")
        if old.revoked_at is not None:
            raise LifecycleViolation(f"key {p.replaces!r} is revoked; add a new key instead of rotating it")


def _public_key(key_id: str, public_hex: str) -> None:
    """A raw Ed25519 public key in canonical form, and not a point of small order."""
    try:
        raw = bytes.fromhex(public_hex)
        if len(raw) != 32:
            raise ValueError
    except ValueError:
        raise InputError(f"key {key_id!r}: the public key must be 32 bytes of hex (raw Ed25519)") from None
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _ED25519_P:
        raise InputError(f"key {key_id!r}: the public key is not in canonical form")
    if y in _SMALL_ORDER_Y:
        raise InputError(
            f"key {key_id!r}: the public key is a point of small order (such as all zeros), which would "
            "accept forged signatures"
        )


def _key_revoked(state: GovState, p: ev.SigningKeyRevoked, actor: str, at: dt.datetime) -> None:
    key = _agency(state, p.agency, "key owner").key(p.key_id)
    if actor not in (p.agency, state.operator):
        raise NotPermitted(
            f"{actor!r} may not revoke keys of {p.agency!r}; only the agency or the operator may"
        )
    if key is None:
        raise UnknownReferenceError(f"agency {p.agency!r} has no signing key {p.key_id!r}")
    if key.revoked_at is not None:
        raise LifecycleViolation(f"key {p.key_id!r} of {p.agency!r} was already revoked")
    _reason(p.reason, f"revoking key {p.key_id!r}")


# --- datasets and schemas ------------------------------------------------------------------------------


def _dataset_declared(state: GovState, p: ev.DatasetDeclared, actor: str, at: dt.datetime) -> None:
    _operator_only(state, actor, f"declare dataset {p.id!r}")
    if p.id in state.datasets_:
        raise DuplicateId(f"dataset {p.id!r} is already declared")
    _agency(state, p.owner, f"owner of dataset {p.id!r}")
    _validate(
        Dataset,
        id=p.id,
        owner=p.owner,
        description=p.description,
        classification=p.classification,
        key_field=p.key_field,
        partitions=p.partitions,
    )
    retention.check_retention_ms(f"dataset {p.id!r}", p.retention_ms)
    if len(set(p.quality_rules)) != len(p.quality_rules) or any(not r.strip() for r in p.quality_rules):
        raise InputError(f"dataset {p.id!r}: quality rules must be distinct, non-empty expressions")
    vocabulary.check_dataset(state, p)


def _schema_registered(state: GovState, p: ev.SchemaRegistered, actor: str, at: dt.datetime) -> None:
    ds = _dataset(state, p.dataset)
    if actor not in (ds.owner, state.operator):
        raise NotPermitted(f"only the owner {ds.owner!r} or the operator registers schemas of {ds.id!r}")
    if p.version != len(ds.schemas) + 1:
        raise DuplicateId(
            f"dataset {ds.id!r} has {len(ds.schemas)} schema version(s); the next is {len(ds.schemas) + 1}, "
            f"not {p.version}"
        )
    new = parse_schema(ds.id, p.schema)
    if new.fingerprint.hex() != p.fingerprint:
        raise InputError(f"schema of {ds.id!r}: fingerprint {p.fingerprint} is not the schema's")
    key = new.fields.get(ds.key_field)
    if key is None:
        raise InputError(f"schema of {ds.id!r}: key field {ds.key_field!r} is missing")
    if key.personal:
        raise InputError(f"schema of {ds.id!r}: key field {ds.key_field!r} may not be tagged personal")
    require_compatible(new, ds.schemas)
    for rule in ds.quality_rules:  # every rule must keep meaning something for the new version
        try:
            compile_filter(rule, new)
        except RowFilterError as exc:
            raise InputError(f"schema of {ds.id!r}: quality rule {rule!r} does not fit it: {exc}") from None
    if any(old.fingerprint == new.fingerprint and old.fields == new.fields for old in ds.schemas):
        raise DuplicateId(f"dataset {ds.id!r} already has this schema (fingerprint {p.fingerprint})")
    # A version that changes annotations only (classification, personal) has an earlier version's
    # fingerprint: events written under either name both, and the latest annotations rule them all.
    refuse_breaking(ds.id, schema_impact(state, ds.id, new, at=at))


def _purposes_changed(state: GovState, p: ev.DatasetPurposesChanged, actor: str, at: dt.datetime) -> None:
    # The owner decides what its data may be used for; the operator governs every dataset.
    ds = _dataset(state, p.dataset)
    if actor not in (ds.owner, state.operator):
        raise NotPermitted(f"only the owner {ds.owner!r} or the operator changes the purposes of {ds.id!r}")
    _reason(p.reason, f"changing the purposes of {ds.id!r}")
    vocabulary.check_purposes_changed(state, p, at)


def _retention_changed(state: GovState, p: ev.DatasetRetentionChanged, actor: str, at: dt.datetime) -> None:
    # As for its purposes: the owner decides how long its data is kept; the operator governs every dataset.
    ds = _dataset(state, p.dataset)
    if actor not in (ds.owner, state.operator):
        raise NotPermitted(f"only the owner {ds.owner!r} or the operator changes the retention of {ds.id!r}")
    _reason(p.reason, f"changing the retention of {ds.id!r}")
    retention.check_changed(state, p)


def parse_schema(dataset: str, text: str) -> RecordSchema:
    try:
        return RecordSchema.from_json(dataset, json.loads(text))
    except InputError:
        raise
    except Exception as exc:  # not JSON, not Avro: one clear refusal
        raise InputError(f"schema of {dataset!r} is not a valid Avro record schema: {exc}") from None


# --- agreements ----------------------------------------------------------------------------------------


def _proposed(state: GovState, p: ev.AgreementProposed, actor: str, at: dt.datetime) -> None:
    if p.id in state.agreements_:
        raise DuplicateId(f"agreement {p.id!r} already exists; give new terms a new id")
    consumer = _agency(state, p.consumer, f"consumer of agreement {p.id!r}")
    ds = state.datasets_.get(p.dataset)
    if ds is None:
        raise UnknownReferenceError(f"agreement {p.id!r}: dataset {p.dataset!r} does not exist")
    if actor not in (p.consumer, ds.owner, state.operator):
        raise NotPermitted(f"{actor!r} may not propose an agreement for {p.consumer!r}")
    if p.consumer == ds.owner:
        raise InputError(f"agreement {p.id!r}: {p.consumer!r} owns {ds.id!r} and needs no agreement")
    if not ds.schemas:
        raise InputError(f"agreement {p.id!r}: dataset {ds.id!r} has no schema registered yet")
    if not p.purpose.strip() or not p.legal_basis.strip():
        raise InputError(f"agreement {p.id!r}: purpose and legal basis are required")
    vocabulary.check_agreement(state, p, ds.purposes)
    if not p.fields or len(set(p.fields)) != len(p.fields):
        raise InputError(f"agreement {p.id!r}: fields must be a non-empty list without repeats")
    if ds.classification == COMPARTMENTED and consumer.clearance != COMPARTMENTED:
        raise ClearanceTooLow(
            f"agreement {p.id!r}: dataset {ds.id!r} is {COMPARTMENTED} as a whole; only an agency "
            f"cleared for {COMPARTMENTED} may see any of it, and {p.consumer!r} is cleared for "
            f"{consumer.clearance}"
        )
    schema = ds.schemas[-1]
    for name in p.fields:
        spec = schema.fields.get(name)
        if spec is None:
            raise InputError(f"agreement {p.id!r}: dataset {ds.id!r} has no field {name!r}")
        if level(spec.classification) > level(consumer.clearance):
            raise ClearanceTooLow(
                f"agreement {p.id!r}: field {name!r} is {spec.classification}, above the "
                f"{consumer.clearance} clearance of {p.consumer!r}"
            )
    if ds.key_field not in p.fields:
        raise InputError(f"agreement {p.id!r}: must grant the key field {ds.key_field!r}")
    _window(f"agreement {p.id!r}", p.valid_from, p.valid_until, at)
    if p.row_filter is not None:
        try:
            compile_filter(p.row_filter, schema, allowed_fields=p.fields)
        except RowFilterError as exc:
            raise RowFilterError(f"agreement {p.id!r}: row filter: {exc}") from None


def _consented(state: GovState, p: ev.AgreementConsented, actor: str, at: dt.datetime) -> None:
    ag = _agreement(state, p.id)
    _same(actor, p.by)
    if p.by != ag.owner:
        raise NotPermitted(f"only the owner {ag.owner!r} of {ag.terms.dataset!r} may consent to {p.id!r}")
    if ag.stage != "proposed":
        raise LifecycleViolation(f"agreement {p.id!r} is {ag.stage}; consent is given once, to a proposal")
    _not_expired(ag, at)


def _approved(state: GovState, p: ev.AgreementApproved, actor: str, at: dt.datetime) -> None:
    ag = _agreement(state, p.id)
    _same(actor, p.approver)
    who = p.approver
    if who == ag.proposed_by:
        raise NotPermitted(f"self-approval: {who!r} proposed {p.id!r} and may not approve it")
    if who == ag.terms.consumer:
        raise NotPermitted(f"{who!r} is the consumer of {p.id!r} and may not approve it")
    if who == ag.owner:
        raise NotPermitted(f"{who!r} owns {ag.terms.dataset!r} and may not approve {p.id!r}; it consents")
    kind = state.agencies_[who].kind
    if kind != CENTRAL_OFFICE:
        raise NotPermitted(f"approvers are central offices; {who!r} is a {kind}")
    if who in ag.approvals:
        raise NotPermitted(f"{who!r} already approved {p.id!r}; a second approval must come from another")
    if ag.stage == "proposed":
        raise LifecycleViolation(
            f"approve before consent: the owner {ag.owner!r} has not consented to {p.id!r}"
        )
    if ag.stage != "consented":
        raise LifecycleViolation(f"agreement {p.id!r} is {ag.stage}; nothing is left to approve")
    _not_expired(ag, at)


def _suspended(state: GovState, p: ev.AgreementSuspended, actor: str, at: dt.datetime) -> None:
    ag = _agreement(state, p.id)
    _may_intervene(state, ag, actor, p.by, "suspend")
    if ag.stage != "approved":
        raise LifecycleViolation(f"only an approved agreement can be suspended; {p.id!r} is {ag.stage}")
    _reason(p.reason, f"suspending {p.id!r}")


def _resumed(state: GovState, p: ev.AgreementResumed, actor: str, at: dt.datetime) -> None:
    ag = _agreement(state, p.id)
    _may_intervene(state, ag, actor, p.by, "resume")
    if ag.stage != "suspended":
        raise LifecycleViolation(f"resume when not suspended: {p.id!r} is {ag.stage}")
    _not_expired(ag, at)
    _reason(p.reason, f"resuming {p.id!r}")


def _revoked(state: GovState, p: ev.AgreementRevoked, actor: str, at: dt.datetime) -> None:
    ag = _agreement(state, p.id)
    _may_intervene(state, ag, actor, p.by, "revoke")
    if ag.stage == "revoked":
        raise LifecycleViolation(f"agreement {p.id!r} is already revoked")
    _reason(p.reason, f"revoking {p.id!r}")


# --- shared checks -------------------------------------------------------------------------------------


def _agency(state: GovState, agency_id: str, role: str) -> AgencyRecord:
    found = state.agencies_.get(agency_id)
    if found is None:
        raise UnknownReferenceError(f"unknown agency {agency_id!r} ({role})")
    return found


def _dataset(state: GovState, dataset_id: str) -> DatasetRecord:
    found = state.datasets_.get(dataset_id)
    if found is None:
        raise UnknownReferenceError(f"dataset {dataset_id!r} does not exist")
    return found


def _agreement(state: GovState, agreement_id: str) -> AgreementRecord:
    found = state.agreements_.get(agreement_id)
    if found is None:
        raise UnknownReferenceError(f"no agreement {agreement_id!r}")
    return found


def _operator_only(state: GovState, actor: str, what: str) -> None:
    # R2: only central governance (the operator, on an agency's request) changes who and what exists.
    if actor != state.operator:
        raise NotPermitted(f"only the operator {state.operator!r} may {what}; {actor!r} asked")


def _same(actor: str, named: str) -> None:
    # The acting agency and the one the event names must agree, or the log would say two things.
    if actor != named:
        raise NotPermitted(f"{actor!r} may not act in the name of {named!r}")


def _may_intervene(state: GovState, ag: AgreementRecord, actor: str, by: str, verb: str) -> None:
    _same(actor, by)
    if by != ag.owner and state.agencies_[by].kind != CENTRAL_OFFICE:
        raise NotPermitted(f"only the owner {ag.owner!r} or a central office may {verb} {ag.id!r}")


def _window(what: str, start: dt.datetime, end: dt.datetime | None, at: dt.datetime) -> None:
    if end is None:
        return
    if end <= start:
        raise InputError(f"{what}: valid_until {end.isoformat()} is not after valid_from {start.isoformat()}")
    if end <= at:
        raise ValidityExpired(f"{what}: valid_until {end.isoformat()} is already in the past")


def _not_expired(ag: AgreementRecord, at: dt.datetime) -> None:
    if ag.terms.valid_until is not None and ag.terms.valid_until <= at:
        raise ValidityExpired(f"agreement {ag.id!r} expired on {ag.terms.valid_until.isoformat()}")


def _reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise InputError(f"{what}: a reason is required (it stays on the log)")


def _validate(model: type[Any], **fields: Any) -> None:
    try:
        model.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{model.__name__.lower()} {fields.get('id')!r}: {where}: {err['msg']}") from None


_CHECKS: dict[type[Any], Callable[..., None]] = {
    ev.AgencyRegistered: _agency_registered,
    ev.SigningKeyAdded: _key_added,
    ev.SigningKeyRevoked: _key_revoked,
    ev.DatasetDeclared: _dataset_declared,
    ev.SchemaRegistered: _schema_registered,
    ev.DatasetPurposesChanged: _purposes_changed,
    ev.DatasetRetentionChanged: _retention_changed,
    ev.AgreementProposed: _proposed,
    ev.AgreementConsented: _consented,
    ev.AgreementApproved: _approved,
    ev.AgreementSuspended: _suspended,
    ev.AgreementResumed: _resumed,
    ev.AgreementRevoked: _revoked,
    ev.CredentialIssued: credentials.check_issued,
    ev.CredentialRevoked: credentials.check_revoked,
    **{
        kind: lambda state, p, actor, at: vocabulary.check(state, p, actor)
        for kind in (ev.PurposeDefined, ev.LegalBasisDefined, ev.PurposeRetired, ev.LegalBasisRetired)
    },
}
