"""The governance service: one method per governance operation, each validated, signed, logged, applied.

Every method follows the same path (:meth:`GovernanceService._commit`): decide first, then act. Check the
rules against the current state (a refusal raises the specific error and leaves no trace), seal the event
with the operator key as the next link of the chain; only then act: open the change's ``effect`` (what it
does beyond the log, such as keeping a new key, in a transaction of its own), write the event to the log
inside it, and close it only once the log holds the event; then apply it to the state through the reducer
replay uses. A change that is refused, or whose write fails, leaves nothing anywhere. ``actor`` is always
the agency asking for the change; the operator key signs for governance. An act of any agency but the
operator carries that agency's own seal (:mod:`sharehub.gov.acts`), which the service's ``signers`` give:
keys this process holds for parties (custody keys, the keys of sites on this machine) or a seal a site
sent with its request; without one the act is refused, naming who must sign.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sharehub.avro import RecordSchema
from sharehub.errors import ChainViolation
from sharehub.gov import acts
from sharehub.gov import events as ev
from sharehub.gov.credentials import DEFAULT_LIFETIME, DEFAULT_OVERLAP
from sharehub.gov.log import EventLog, KafkaLog, MemoryLog
from sharehub.gov.rules import check, parse_schema
from sharehub.gov.state import GovState, fold_log
from sharehub.gov.verify import Trust, verify
from sharehub.gov.views import token_hash
from sharehub.keys import SigningKey

Clock = Callable[[], dt.datetime]
#: What a change does beyond the log, as a transaction: entered once the change is decided, left once its
#: event is on the log (raising inside undoes it).
Effect = Callable[[], AbstractContextManager[object]]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_credential() -> tuple[str, str]:
    """A new bearer credential and its SHA-256 (hex): hand out the first, record only the second."""
    token = "shc_" + secrets.token_urlsafe(32)
    return token, token_hash(token)


class GovernanceService:
    def __init__(
        self,
        state: GovState,
        operator_key: SigningKey,
        log: EventLog,
        *,
        clock: Clock = utc_now,
        signers: acts.ActSigner | None = None,
    ) -> None:
        self.state = state
        self.signing_key = operator_key
        self._log = log
        self.clock = clock
        #: Who seals the acts of parties other than the operator (asked in turn; see sharehub.gov.acts).
        self.signers = acts.Signers(*([signers] if signers is not None else []))

    @classmethod
    def in_memory(
        cls,
        operator: str,
        operator_key: SigningKey,
        *,
        topic_prefix: str = "sharehub",
        clock: Clock = utc_now,
        signers: acts.ActSigner | None = None,
    ) -> GovernanceService:
        """A service whose log is a list (tests, dry runs)."""
        state = GovState(Trust.of(operator, operator_key), topic_prefix)
        return cls(state, operator_key, MemoryLog(), clock=clock, signers=signers)

    @classmethod
    def open(
        cls,
        bootstrap: str,
        topic_prefix: str,
        operator_key: SigningKey,
        operator: str,
        *,
        trust: Trust | None = None,
        clock: Clock = utc_now,
        signers: acts.ActSigner | None = None,
    ) -> GovernanceService:
        """The service of the hub ``topic_prefix``: creates its governance topic if missing and rebuilds the
        state from every event on it, so a restarted service continues the chain where it ended."""
        log = KafkaLog(bootstrap, topic_prefix)
        trust = trust or Trust.of(operator, operator_key)
        state = fold_log(log.entries_all(), trust, topic_prefix)
        return cls(state, operator_key, log, clock=clock, signers=signers)

    def close(self) -> None:
        self._log.close()

    # --- agencies and keys -------------------------------------------------------------------------

    def register_agency(
        self, actor: str, id: str, name: str, kind: str, clearance: str, parent: str | None = None
    ) -> ev.GovernanceEvent:
        return self._commit(actor, ev.AgencyRegistered(id, name, kind, parent, clearance))

    def add_key(
        self,
        actor: str,
        agency: str,
        key_id: str,
        public_key: bytes | str,
        *,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
        effect: Effect | None = None,
    ) -> ev.GovernanceEvent:
        start = valid_from or self.clock()
        payload = ev.SigningKeyAdded(agency, key_id, _hex(public_key), start, valid_until)
        return self._commit(actor, payload, effect)

    def rotate_key(
        self,
        actor: str,
        agency: str,
        old_key_id: str,
        new_key_id: str,
        public_key: bytes | str,
        *,
        valid_from: dt.datetime | None = None,
        effect: Effect | None = None,
    ) -> ev.GovernanceEvent:
        """Add ``new_key_id``; ``old_key_id`` stops counting when it starts (one event, so no moment has
        both or neither)."""
        start = valid_from or self.clock()
        added = ev.SigningKeyAdded(agency, new_key_id, _hex(public_key), start, None, replaces=old_key_id)
        return self._commit(actor, added, effect)

    def revoke_key(
        self, actor: str, agency: str, key_id: str, reason: str, *, effective_at: dt.datetime | None = None
    ) -> ev.GovernanceEvent:
        """From ``effective_at`` (default now; earlier if the key was compromised earlier) no signature by
        the key counts; signatures from before still do."""
        when = effective_at or self.clock()
        return self._commit(actor, ev.SigningKeyRevoked(agency, key_id, reason, when))

    # --- datasets and schemas ----------------------------------------------------------------------

    def declare_dataset(
        self,
        actor: str,
        id: str,
        owner: str,
        classification: str,
        key_field: str,
        *,
        description: str = "",
        retention_ms: int = -1,
        partitions: int = 3,
        quality_rules: Sequence[str] = (),
        purposes: Sequence[str] = (),
        effect: Effect | None = None,
    ) -> ev.GovernanceEvent:
        payload = ev.DatasetDeclared(
            id, owner, description, classification, retention_ms, key_field, partitions, tuple(quality_rules),
            tuple(purposes),
        )  # fmt: skip
        return self._commit(actor, payload, effect)

    def set_dataset_purposes(
        self, actor: str, dataset: str, purposes: Sequence[str], reason: str
    ) -> ev.GovernanceEvent:
        """From now on ``dataset`` may be shared for ``purposes`` (empty: any); new agreements on it are
        checked against them. Refused while an agreement on it that can still take effect names a purpose
        the new list leaves out."""
        return self._commit(actor, ev.DatasetPurposesChanged(dataset, tuple(purposes), reason))

    def set_dataset_retention(
        self, actor: str, dataset: str, retention_ms: int, reason: str
    ) -> ev.GovernanceEvent:
        """From now on ``dataset``'s topic keeps each event ``retention_ms`` (-1: for ever); provisioning
        sets the topic's retention to it. Refused outside the range a declaration takes, or unchanged."""
        return self._commit(actor, ev.DatasetRetentionChanged(dataset, retention_ms, reason))

    def register_schema(
        self, actor: str, dataset: str, schema: RecordSchema | dict[str, Any] | str
    ) -> ev.GovernanceEvent:
        """The next version of ``dataset``'s schema; refused (SchemaIncompatible) if it cannot read every
        event an earlier version wrote."""
        if isinstance(schema, RecordSchema):
            schema = schema.raw
        text = schema if isinstance(schema, str) else json.dumps(schema, ensure_ascii=False, sort_keys=True)
        fingerprint = parse_schema(dataset, text).fingerprint.hex()
        known = self.state.datasets_.get(dataset)
        version = len(known.schemas) + 1 if known is not None else 1
        return self._commit(actor, ev.SchemaRegistered(dataset, version, text, fingerprint))

    # --- agreements --------------------------------------------------------------------------------

    def propose(
        self,
        actor: str,
        id: str,
        consumer: str,
        dataset: str,
        fields: Sequence[str],
        purpose: str,
        legal_basis: str,
        *,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
        row_filter: str | None = None,
        purposes: Sequence[str] = (),
    ) -> ev.GovernanceEvent:
        """``purposes``: ids of the vocabulary's purposes (then ``legal_basis`` is a legal basis's id, and
        ``purpose`` may be left empty: it becomes the ids, comma-separated)."""
        start = valid_from or self.clock()
        text = purpose or ", ".join(purposes)
        payload = ev.AgreementProposed(
            id, consumer, dataset, tuple(fields), row_filter, text, legal_basis, start, valid_until,
            tuple(purposes),
        )  # fmt: skip
        return self._commit(actor, payload)

    def consent(self, actor: str, agreement_id: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.AgreementConsented(agreement_id, actor))

    def approve(self, actor: str, agreement_id: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.AgreementApproved(agreement_id, actor))

    def suspend(self, actor: str, agreement_id: str, reason: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.AgreementSuspended(agreement_id, actor, reason))

    def resume(self, actor: str, agreement_id: str, reason: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.AgreementResumed(agreement_id, actor, reason))

    def revoke(self, actor: str, agreement_id: str, reason: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.AgreementRevoked(agreement_id, actor, reason))

    # --- the vocabulary of purposes and legal bases (sharehub.gov.vocabulary) ---------------------------

    def define_purpose(self, actor: str, id: str, label_vi: str, label_en: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.PurposeDefined(id, label_vi, label_en))

    def define_legal_basis(
        self, actor: str, id: str, label_vi: str, label_en: str, reference: str
    ) -> ev.GovernanceEvent:
        return self._commit(actor, ev.LegalBasisDefined(id, label_vi, label_en, reference))

    def retire_purpose(self, actor: str, id: str, reason: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.PurposeRetired(id, reason))

    def retire_legal_basis(self, actor: str, id: str, reason: str) -> ev.GovernanceEvent:
        return self._commit(actor, ev.LegalBasisRetired(id, reason))

    def issue_credential(
        self, actor: str, consumer: str, credential_sha256: str, *, expires_at: dt.datetime | None = None
    ) -> ev.GovernanceEvent:
        """Record a credential by its hash (see :func:`new_credential`); the credential never reaches
        the log. It expires at ``expires_at`` (default: ``DEFAULT_LIFETIME`` from now)."""
        ends = expires_at or self.clock() + DEFAULT_LIFETIME
        return self._commit(actor, ev.CredentialIssued(consumer, credential_sha256, ends))

    def rotate_credential(
        self,
        actor: str,
        credential_id: str,
        new_sha256: str,
        *,
        overlap_until: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
    ) -> ev.GovernanceEvent:
        """Issue a credential that replaces ``credential_id`` of the same agency; the old one stays valid
        until ``overlap_until`` (default: ``DEFAULT_OVERLAP`` from now)."""
        now = self.clock()
        old = self.state.credential_records.get(credential_id)
        payload = ev.CredentialIssued(
            old.consumer if old is not None else "",
            new_sha256,
            expires_at or now + DEFAULT_LIFETIME,
            replaces=credential_id,
            replaced_until=overlap_until or now + DEFAULT_OVERLAP,
        )
        return self._commit(actor, payload)

    def revoke_credential(
        self, actor: str, credential_id: str, reason: str, *, effective_at: dt.datetime | None = None
    ) -> ev.GovernanceEvent:
        """From ``effective_at`` (default now) the credential is refused everywhere."""
        old = self.state.credential_records.get(credential_id)
        consumer = old.consumer if old is not None else ""
        when = effective_at or self.clock()
        return self._commit(actor, ev.CredentialRevoked(consumer, credential_id, reason, when))

    # --- the one path every change takes -------------------------------------------------------------

    def _commit(self, actor: str, payload: ev.Payload, effect: Effect | None = None) -> ev.GovernanceEvent:
        # Decide: every rule, the seal, and what a reader of the log will check, before anything is done.
        at = self.clock().astimezone(dt.UTC)
        if self.state.ahead_of_a_gap:
            raise ChainViolation(
                "chain_gap", "the log holds governance events after a missing one: nothing is appended"
            )
        check(self.state, payload, actor, at)
        event = ev.seal(
            self.signing_key,
            sequence=self.state.head_sequence + 1,
            prev_hash=self.state.head_hash,
            occurred_at=at,
            actor=actor,
            payload=payload,
            act_seal=self._party_seal(actor, payload, at),
        )
        # Never write what a reader would reject (e.g. the operator key was revoked, a party's seal is by
        # another agency's key or over other terms): verify first.
        verify(self.state, event, self.state.trust)
        acts.check(self.state, event)
        # Act: the effect is kept only if the log takes the event.
        with (effect or nullcontext)():
            self._log.append(event)
        self.state.apply(event)
        return event

    def _party_seal(self, actor: str, payload: ev.Payload, at: dt.datetime) -> ev.ActSeal | None:
        if not acts.must_seal(self.state, actor):
            return None
        seal = self.signers.seal_act(self.state, actor, payload, at)
        if seal is None:
            raise acts.not_signed_here(actor, ev.type_name(payload))
        return seal


def _hex(public_key: bytes | str) -> str:
    return public_key.hex() if isinstance(public_key, bytes) else public_key
