"""Every governance operation once, as a typed request, for the CLI and the HTTP API alike.

A caller acts for one agency (the *actor*) and must prove it (:func:`authenticate`): with a credential
governance issued to that agency, or, for the hub operator on the hub's own machine, by holding the operator
key. :func:`perform` then runs the operation through the governance service, which checks every rule (who
may take the step, clearance, lifecycle, validity, compatibility) and signs and logs the event. Declaring a
dataset also makes its data and routing keys and its topic: governance is the only creator of topics.

Decide first, then act: what an operation does beyond the log (a key kept in the key store) is the change's
``effect``, run by the governance service only after every rule passed, in a key-store transaction that is
kept only if the log takes the event. A refused request changes nothing: not the log, not the key store,
not the broker. An act of an agency other than the operator carries that agency's seal
(:mod:`sharehub.gov.acts`): given with the request (made at its site), made with its site's key on this
machine, or with the custody key the hub holds for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.governance_desk import GovernanceDesk
from sharehub.errors import InputError, NotAuthenticated, UnknownReferenceError
from sharehub.gov.acts import ActSigner, KeyRing
from sharehub.gov.commands import (
    AddKey,
    AgreementChange,
    AgreementStep,
    Command,
    DeclareDataset,
    DefineLegalBasis,
    DefinePurpose,
    IssueCredential,
    Propose,
    RegisterAgency,
    RegisterSchema,
    RetireTerm,
    RevokeCredential,
    RevokeKey,
    RotateCredential,
    RotateKey,
    SetDatasetPurposes,
    SetDatasetRetention,
    json_object,
)
from sharehub.gov.custody import is_site_key_id
from sharehub.gov.events import GovernanceEvent
from sharehub.gov.key_request import KeyRequest
from sharehub.gov.service import Effect, GovernanceService
from sharehub.gov.state import GovState
from sharehub.gov.views import token_hash
from sharehub.keys import LocalKeyStore, SigningKey


@dataclass(frozen=True)
class Caller:
    """Who asks: the agency it proved to act for, and whether it runs on the hub's own machine (the CLI),
    where a key pair may be made in the hub's key store."""

    agency: str
    local: bool = False


class OperatorKeys(Protocol):
    """Where the operator key of the hub's machine is looked up."""

    def signing_key(self, agency: str) -> SigningKey: ...


#: An operation, with the key store for what it keeps there (a key pair made here, a dataset's keys).
Perform = Callable[[LocalKeyStore, GovernanceService, Caller, Any], GovernanceEvent]


def _add_key(keys: LocalKeyStore, svc: GovernanceService, caller: Caller, r: AddKey) -> GovernanceEvent:
    public, effect = _public_key(keys, caller, r.agency, r.key_id, r.public_key)
    return svc.add_key(
        caller.agency,
        r.agency,
        r.key_id,
        public,
        valid_from=r.valid_from,
        valid_until=r.valid_until,
        effect=effect,
    )


def _rotate_key(keys: LocalKeyStore, svc: GovernanceService, caller: Caller, r: RotateKey) -> GovernanceEvent:
    public, effect = _public_key(keys, caller, r.agency, r.new_key_id, r.public_key)
    return svc.rotate_key(
        caller.agency, r.agency, r.old_key_id, r.new_key_id, public, valid_from=r.valid_from, effect=effect
    )


def _register_key(
    keys: LocalKeyStore, svc: GovernanceService, caller: Caller, r: KeyRequest
) -> GovernanceEvent:
    """Register the public key an agency's site sent, once its proof of possession verifies."""
    r.proven()
    if not is_site_key_id(r.agency, r.key_id):
        raise InputError(
            f"a site registers keys named {r.agency}/sign/<label>, not {r.key_id!r} "
            "(custody keys are the hub's)"
        )
    if r.replaces is not None and r.valid_until is not None:
        raise InputError("a rotation's new key has no end (valid_until): leave it out, or drop 'replaces'")
    if r.replaces is not None:
        return svc.rotate_key(
            caller.agency, r.agency, r.replaces, r.key_id, r.public_key, valid_from=r.valid_from
        )
    return svc.add_key(
        caller.agency, r.agency, r.key_id, r.public_key, valid_from=r.valid_from, valid_until=r.valid_until
    )


def _declare(
    keys: LocalKeyStore, svc: GovernanceService, caller: Caller, r: DeclareDataset
) -> GovernanceEvent:
    return svc.declare_dataset(caller.agency, **r.model_dump(), effect=lambda: _dataset_keys(keys, r.id))


@contextmanager
def _dataset_keys(keys: LocalKeyStore, dataset: str) -> Iterator[None]:
    with keys.transaction():
        keys.ensure_dataset_keys(dataset)
        yield


def _public_key(
    keys: LocalKeyStore, caller: Caller, agency: str, key_id: str, given: str | None
) -> tuple[str, Effect | None]:
    """The public key to register, and the effect that keeps its private half when the hub makes the pair
    (only for a caller on the hub's machine); the pair is kept only if governance accepts the key."""
    if given is not None:
        return given, None
    if not caller.local:
        raise InputError("public_key: required (the agency makes its key pair and sends the public half)")
    private = Ed25519PrivateKey.generate()

    @contextmanager
    def keep() -> Iterator[None]:
        with keys.transaction():
            keys.add_signing_key(agency, key_id, private)
            yield

    return private.public_key().public_bytes_raw().hex(), keep


#: operation name (CLI command and HTTP path) -> (request type, what it does)
OPERATIONS: dict[str, tuple[type[Command], Perform]] = {
    "register-agency": (RegisterAgency, lambda h, s, c, r: s.register_agency(c.agency, **r.model_dump())),
    "add-key": (AddKey, _add_key),
    "rotate-key": (RotateKey, _rotate_key),
    "register-key": (KeyRequest, _register_key),
    "revoke-key": (
        RevokeKey,
        lambda h, s, c, r: s.revoke_key(c.agency, r.agency, r.key_id, r.reason, effective_at=r.effective_at),
    ),
    "declare-dataset": (DeclareDataset, _declare),
    "set-dataset-purposes": (
        SetDatasetPurposes,
        lambda h, s, c, r: s.set_dataset_purposes(c.agency, r.dataset, r.purposes, r.reason),
    ),
    "set-dataset-retention": (
        SetDatasetRetention,
        lambda h, s, c, r: s.set_dataset_retention(c.agency, r.dataset, r.retention_ms, r.reason),
    ),
    "register-schema": (
        RegisterSchema,
        lambda h, s, c, r: s.register_schema(c.agency, r.dataset, r.avro_schema),
    ),
    "propose": (Propose, lambda h, s, c, r: s.propose(c.agency, **r.model_dump())),
    "consent": (AgreementStep, lambda h, s, c, r: s.consent(c.agency, r.agreement_id)),
    "approve": (AgreementStep, lambda h, s, c, r: s.approve(c.agency, r.agreement_id)),
    "suspend": (AgreementChange, lambda h, s, c, r: s.suspend(c.agency, r.agreement_id, r.reason)),
    "resume": (AgreementChange, lambda h, s, c, r: s.resume(c.agency, r.agreement_id, r.reason)),
    "revoke": (AgreementChange, lambda h, s, c, r: s.revoke(c.agency, r.agreement_id, r.reason)),
    "issue-credential": (
        IssueCredential,
        lambda h, s, c, r: s.issue_credential(c.agency, r.agency, r.sha256, expires_at=r.expires_at),
    ),
    "rotate-credential": (
        RotateCredential,
        lambda h, s, c, r: s.rotate_credential(
            c.agency, r.credential_id, r.sha256, overlap_until=r.overlap_until, expires_at=r.expires_at
        ),
    ),
    "revoke-credential": (
        RevokeCredential,
        lambda h, s, c, r: s.revoke_credential(
            c.agency, r.credential_id, r.reason, effective_at=r.effective_at
        ),
    ),
    "define-purpose": (DefinePurpose, lambda h, s, c, r: s.define_purpose(c.agency, **r.model_dump())),
    "retire-purpose": (RetireTerm, lambda h, s, c, r: s.retire_purpose(c.agency, r.id, r.reason)),
    "define-legal-basis": (
        DefineLegalBasis,
        lambda h, s, c, r: s.define_legal_basis(c.agency, **r.model_dump()),
    ),
    "retire-legal-basis": (RetireTerm, lambda h, s, c, r: s.retire_legal_basis(c.agency, r.id, r.reason)),
}


#: Operations after which the broker needs new principals, topics or ACLs, or a topic another retention.
PROVISIONING = {"register-agency", "declare-dataset", "set-dataset-retention"}


def authenticate(
    state: GovState, keys: OperatorKeys, actor: str, credential: str | None, *, local_operator: bool = False
) -> str:
    """``actor`` if the caller proved to act for it under governance ``state``; NotAuthenticated otherwise.

    ``local_operator``: the caller runs on the hub's machine (the CLI), where holding the operator key in
    the key store ``keys`` proves acting for the operator."""
    if credential:
        record = state.credential(token_hash(credential))
        if record is None:
            raise NotAuthenticated("unknown credential")
        refused = record.refusal_at(dt.datetime.now(dt.UTC))
        if refused is not None:
            raise NotAuthenticated(refused.message)
        holder = record.consumer
        if holder != actor:
            raise NotAuthenticated(f"the credential is {holder!r}'s, not {actor!r}'s")
        return actor
    if local_operator and actor == state.operator:
        keys.signing_key(actor)  # raises unless this key store holds the operator key
        return actor
    raise NotAuthenticated(f"acting for {actor!r} needs a credential governance issued to {actor!r}")


def parse_request(operation: str, body: dict[str, Any]) -> Command:
    found = OPERATIONS.get(operation)
    if found is None:
        raise UnknownReferenceError(f"no governance operation {operation!r}; one of: {', '.join(OPERATIONS)}")
    return found[0].model_validate(body)


def perform(
    desk: GovernanceDesk,
    caller: Caller,
    operation: str,
    request: Command,
    *,
    signer: ActSigner | None = None,
) -> GovernanceEvent:
    """Perform ``operation``; the act of an agency other than the operator is sealed by ``signer`` (its
    site's key, or the seal it sent) or by the custody key the hub holds for it, else refused."""
    kind, run = OPERATIONS[operation]
    if not isinstance(request, kind):
        raise InputError(f"{operation} takes a {kind.__name__} request")
    governance = desk.governance
    with governance.governing() as service, service.signers.first(signer or KeyRing()):
        event = run(governance.keys, service, caller, request)
    if operation in PROVISIONING:
        desk.provision()  # the new agency's principal, the new dataset's topic and ACLs, or its retention
    return event


def event_summary(event: GovernanceEvent) -> dict[str, Any]:
    return {
        "sequence": event.sequence,
        "type": event.type,
        "actor": event.actor,
        "occurred_at": event.occurred_at.isoformat(),
        "hash": event.hash.hex(),
    }


def schema_from_file(text: str) -> dict[str, Any]:
    return json_object(text, "the schema", "a JSON object (an Avro record)")
