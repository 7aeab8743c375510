"""Every governance operation once, as a typed request, for the CLI and the HTTP API alike.

A caller acts for one agency (the *actor*) and must prove it (:func:`authenticate`): with a credential
governance issued to that agency, or, for the hub operator on the hub's own machine, by holding the operator
key. :func:`perform` then runs the operation through the governance service, which checks every rule (who
may take the step, clearance, lifecycle, validity, compatibility) and signs and logs the event. Declaring a
dataset also makes its data and routing keys and its topic: governance is the only creator of topics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.broker_access import provision
from services.hub import Hub
from sharehub.errors import InputError, NotAuthenticated
from sharehub.gov.events import GovernanceEvent
from sharehub.gov.service import GovernanceService


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterAgency(_Request):
    id: str
    name: str
    kind: str
    clearance: str
    parent: str | None = None


class AddKey(_Request):
    agency: str
    key_id: str
    #: Raw Ed25519 public key, hex. Left out (CLI only), a key pair is made in the hub's key store.
    public_key: str | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None


class RotateKey(_Request):
    agency: str
    old_key_id: str
    new_key_id: str
    public_key: str | None = None
    valid_from: AwareDatetime | None = None


class RevokeKey(_Request):
    agency: str
    key_id: str
    reason: str = Field(min_length=1)
    effective_at: AwareDatetime | None = None


class DeclareDataset(_Request):
    id: str
    owner: str
    classification: str
    key_field: str
    description: str = ""
    retention_ms: int = -1
    partitions: int = Field(default=3, ge=1, le=256)
    #: Expressions every record must satisfy, e.g. ``admission_date >= "1930-02-03"``.
    quality_rules: tuple[str, ...] = ()


class RegisterSchema(_Request):
    dataset: str
    #: The Avro record schema (JSON), with ``classification`` (and ``personal``) on each field.
    avro_schema: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Propose(_Request):
    id: str
    consumer: str
    dataset: str
    fields: tuple[str, ...]
    purpose: str
    legal_basis: str
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    row_filter: str | None = None


class AgreementStep(_Request):
    agreement_id: str


class AgreementChange(_Request):
    agreement_id: str
    reason: str = Field(min_length=1)


class IssueCredential(_Request):
    agency: str
    #: SHA-256 (hex) of a credential the caller made; the hub never sees the credential itself.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


Perform = Callable[[Hub, GovernanceService, str, Any], GovernanceEvent]


def _add_key(hub: Hub, svc: GovernanceService, actor: str, r: AddKey) -> GovernanceEvent:
    public = r.public_key or _new_local_key(hub, r.agency, r.key_id)
    return svc.add_key(actor, r.agency, r.key_id, public, valid_from=r.valid_from, valid_until=r.valid_until)


def _rotate_key(hub: Hub, svc: GovernanceService, actor: str, r: RotateKey) -> GovernanceEvent:
    public = r.public_key or _new_local_key(hub, r.agency, r.new_key_id)
    return svc.rotate_key(actor, r.agency, r.old_key_id, r.new_key_id, public, valid_from=r.valid_from)


def _declare(hub: Hub, svc: GovernanceService, actor: str, r: DeclareDataset) -> GovernanceEvent:
    event = svc.declare_dataset(actor, **r.model_dump())
    data_key = f"{r.id}/data/1"
    if not hub.keys.has(data_key):
        hub.keys.create_data_key(r.id, data_key)
    hub.keys.ensure_routing_key(r.id)
    return event


def _new_local_key(hub: Hub, agency: str, key_id: str) -> str:
    svc_state = hub.governance
    svc_state.agency(agency)  # an unknown agency gets no key
    if hub.keys.has(key_id):
        raise InputError(f"the key store already holds a key {key_id!r}")
    return hub.keys.create_signing_key(agency, key_id).hex()


#: operation name (CLI command and HTTP path) -> (request type, what it does)
OPERATIONS: dict[str, tuple[type[_Request], Perform]] = {
    "register-agency": (RegisterAgency, lambda h, s, a, r: s.register_agency(a, **r.model_dump())),
    "add-key": (AddKey, _add_key),
    "rotate-key": (RotateKey, _rotate_key),
    "revoke-key": (
        RevokeKey,
        lambda h, s, a, r: s.revoke_key(a, r.agency, r.key_id, r.reason, effective_at=r.effective_at),
    ),
    "declare-dataset": (DeclareDataset, _declare),
    "register-schema": (RegisterSchema, lambda h, s, a, r: s.register_schema(a, r.dataset, r.avro_schema)),
    "propose": (Propose, lambda h, s, a, r: s.propose(a, **r.model_dump())),
    "consent": (AgreementStep, lambda h, s, a, r: s.consent(a, r.agreement_id)),
    "approve": (AgreementStep, lambda h, s, a, r: s.approve(a, r.agreement_id)),
    "suspend": (AgreementChange, lambda h, s, a, r: s.suspend(a, r.agreement_id, r.reason)),
    "resume": (AgreementChange, lambda h, s, a, r: s.resume(a, r.agreement_id, r.reason)),
    "revoke": (AgreementChange, lambda h, s, a, r: s.revoke(a, r.agreement_id, r.reason)),
    "issue-credential": (IssueCredential, lambda h, s, a, r: s.issue_credential(a, r.agency, r.sha256)),
}


#: Operations after which the broker needs new principals, topics or ACLs.
PROVISIONING = {"register-agency", "declare-dataset"}


def authenticate(hub: Hub, actor: str, credential: str | None, *, local_operator: bool = False) -> str:
    """``actor`` if the caller proved to act for it; NotAuthenticated otherwise.

    ``local_operator``: the caller runs on the hub's machine (the CLI), where holding the operator key in
    the key store proves acting for the operator."""
    state = hub.governance
    if credential:
        holder = state.consumer_for_token(credential)
        if holder is None:
            raise NotAuthenticated("unknown credential")
        if holder != actor:
            raise NotAuthenticated(f"the credential is {holder!r}'s, not {actor!r}'s")
        return actor
    if local_operator and actor == state.operator:
        hub.keys.signing_key(actor)  # raises unless this key store holds the operator key
        return actor
    raise NotAuthenticated(f"acting for {actor!r} needs a credential governance issued to {actor!r}")


def parse_request(operation: str, body: dict[str, Any]) -> _Request:
    found = OPERATIONS.get(operation)
    if found is None:
        raise InputError(f"no governance operation {operation!r}; one of: {', '.join(OPERATIONS)}")
    return found[0].model_validate(body)


def perform(hub: Hub, actor: str, operation: str, request: _Request) -> GovernanceEvent:
    kind, run = OPERATIONS[operation]
    if not isinstance(request, kind):
        raise InputError(f"{operation} takes a {kind.__name__} request")
    with hub.governing() as service:
        event = run(hub, service, actor, request)
    if operation in PROVISIONING:
        provision(hub)  # the new agency's principal, or the new dataset's topic and its owner's ACLs
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
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InputError(f"the schema is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InputError("the schema must be a JSON object (an Avro record)")
    return parsed
