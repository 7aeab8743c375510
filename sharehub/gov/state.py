"""The governance state folded from the log, and the :class:`~sharehub.gov.views.GovernanceView` over it.

:func:`fold` rebuilds the state from events alone (plus the pinned operator keys), :func:`fold_log_as_of`
the state as it stood at a past time; the service applies each
new event through the very same :meth:`GovState.apply`, so a state rebuilt from the log always equals the
service's. :meth:`GovState.dump` is a canonical, JSON-ready form for comparing two states.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharehub.avro import RecordSchema
from sharehub.errors import EnvelopeError, InputError, UnknownReferenceError, UnknownSigner
from sharehub.gov import acts, vocabulary
from sharehub.gov import events as ev
from sharehub.gov.credentials import CredentialRecord, credential_id
from sharehub.gov.log import Logged
from sharehub.gov.models import AgencyRecord, AgreementRecord, DatasetRecord
from sharehub.gov.reducer import mutate
from sharehub.gov.rules import check
from sharehub.gov.verify import Trust, verify
from sharehub.gov.views import Agency, Agreement, Dataset, token_hash
from sharehub.row_filter import RowFilter, compile_filter

log = logging.getLogger(__name__)
#: The reason of an authentic, chained event whose change the rules refuse: its link counts, its change not.
RULE_VIOLATION = "rule_violation"


@dataclass(frozen=True)
class Skipped:
    """A record of the governance log that was not applied, and why (a stable reason code)."""

    offset: int
    #: The event's sequence when the record parses as a governance event, else None.
    sequence: int | None
    #: malformed, unknown_signer, bad_signature, chain_gap, duplicate, replayed_sequence, chain_fork,
    #: rule_violation, or one of the act seal's (sharehub.gov.acts.REASONS: act_unsigned, ...).
    reason: str
    detail: str


class GovState:
    """Agencies, keys, datasets, schemas, agreements (every version) and credentials, as of one event."""

    def __init__(self, trust: Trust, topic_prefix: str = "sharehub") -> None:
        self.trust = trust
        self.topic_prefix = topic_prefix
        self.agencies_: dict[str, AgencyRecord] = {}
        self.datasets_: dict[str, DatasetRecord] = {}
        self.agreements_: dict[str, AgreementRecord] = {}
        #: agreement id -> every version, oldest first (one per event about it).
        self.versions: dict[str, list[AgreementRecord]] = {}
        #: consumer -> SHA-256 (hex) of each credential issued to it, and the reverse.
        self.credentials: dict[str, list[str]] = {}
        self.token_owners: dict[str, str] = {}
        #: credential id -> its lifetime: issued, expiry, rotation, revocation (sharehub.gov.credentials).
        self.credential_records: dict[str, CredentialRecord] = {}
        #: The vocabulary of purposes and legal bases, every term ever defined (retired ones too).
        self.purposes_: dict[str, vocabulary.PurposeRecord] = {}
        self.legal_bases_: dict[str, vocabulary.LegalBasisRecord] = {}
        self.head_sequence = 0
        self.head_hash = ev.ZERO_HASH
        #: Records of the log that were read but not applied (junk, forgeries, broken links), oldest first.
        self.skipped: list[Skipped] = []
        #: The sequence of the first event of a release with act seals (sharehub.gov.acts): from there on,
        #: an event of an older release is a downgrade. None while the log holds none.
        self.sealed_from: int | None = None
        #: Applied acts of a party other than the operator written before seals existed: the operator alone
        #: attests them (an audit counts them).
        self.legacy_acts = 0
        self._pair_index: tuple[int, dict[tuple[str, str], tuple[AgreementRecord, ...]]] = (-1, {})

    @property
    def operator(self) -> str:
        return self.trust.operator

    def apply(self, event: ev.GovernanceEvent) -> None:
        """Verify ``event`` (signature, chain), check its rules against this state, then apply it."""
        verify(self, event, self.trust)
        check(self, event.payload, event.actor, event.occurred_at)
        acts.check(self, event)
        self._mutate(event)

    def take(self, entry: Logged) -> Skipped | None:
        """Apply the record at ``entry`` if it is an authentic event that continues the chain and keeps the
        rules; otherwise apply nothing, note it in :attr:`skipped`, log a warning and return it. Junk or a
        forgery never changes the state: only the operator's signed next link moves the head, and one whose
        change the rules refuse moves the head alone (its successors link to it)."""
        try:
            event = ev.parse(entry.raw)
        except EnvelopeError as exc:
            return self._skip(entry.offset, None, exc.reason, str(exc))
        try:
            verify(self, event, self.trust)
        except EnvelopeError as exc:
            return self._skip(entry.offset, event.sequence, exc.reason, str(exc))
        try:
            check(self, event.payload, event.actor, event.occurred_at)
            acts.check(self, event)
        except acts.ActSealRefused as exc:
            self._link(event)  # operator-signed and chained: its link counts, the act does not
            return self._skip(entry.offset, event.sequence, exc.reason, str(exc))
        except InputError as exc:
            self._link(event)
            return self._skip(entry.offset, event.sequence, RULE_VIOLATION, f"{event.describe()}: {exc}")
        self._mutate(event)
        return None

    def _mutate(self, event: ev.GovernanceEvent) -> None:
        mutate(self, event)
        if acts.is_legacy(event) and acts.must_seal(self, event.actor):
            self.legacy_acts += 1
        self._link(event)

    def _link(self, event: ev.GovernanceEvent) -> None:
        """Move the head to ``event``, an authentic next link of the chain."""
        self.head_sequence, self.head_hash = event.sequence, event.hash
        if self.sealed_from is None and not acts.is_legacy(event):
            self.sealed_from = event.sequence

    def _skip(self, offset: int, sequence: int | None, reason: str, detail: str) -> Skipped:
        skipped = Skipped(offset, sequence, reason, detail)
        self.skipped.append(skipped)
        log.warning("governance log record at offset %d not applied (%s): %s", offset, reason, detail)
        return skipped

    @property
    def ahead_of_a_gap(self) -> bool:
        """Whether the log holds operator-signed events after a missing one: nothing may be appended then,
        since the next event written would fork the chain."""
        return any(s.reason == "chain_gap" for s in self.skipped)

    def state_hash(self) -> str:
        """SHA-256 (hex) of :meth:`dump` in canonical JSON: two equal states, one hash."""
        canonical = json.dumps(self.dump(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()

    # --- GovernanceView ----------------------------------------------------------------------------

    def agency(self, agency_id: str) -> Agency:
        found = self.agencies_.get(agency_id)
        if found is None:
            raise UnknownReferenceError(f"no agency {agency_id!r}")
        return found.view()

    def dataset(self, dataset_id: str) -> Dataset:
        found = self.datasets_.get(dataset_id)
        if found is None:
            raise UnknownReferenceError(f"no dataset {dataset_id!r}")
        return found.view(self.topic_prefix)

    def datasets(self) -> tuple[Dataset, ...]:
        return tuple(self.dataset(d) for d in sorted(self.datasets_))

    def _dataset_record(self, dataset: str) -> DatasetRecord:
        found = self.datasets_.get(dataset)
        if found is None:
            raise UnknownReferenceError(f"no dataset {dataset!r}")
        return found

    def dataset_owner(self, dataset: str) -> str:
        return self._dataset_record(dataset).owner  # every event asks: no view is built

    def dataset_schemas(self, dataset: str) -> Mapping[bytes, RecordSchema]:
        return self._dataset_record(dataset).schemas_by_fingerprint

    def current_schema(self, dataset: str) -> RecordSchema:
        schemas = self._dataset_record(dataset).schemas
        if not schemas:
            raise UnknownReferenceError(f"dataset {dataset!r} has no schema registered yet")
        return schemas[-1]

    def signing_public_key(self, agency: str, key_id: str, at: dt.datetime) -> Ed25519PublicKey:
        found = self.agencies_.get(agency)
        if found is None:
            raise UnknownSigner(f"no agency {agency!r}")
        key = found.key(key_id)
        if key is None:
            raise UnknownSigner(f"agency {agency!r} has no signing key {key_id!r}")
        if not key.valid_at(at):
            why = " (revoked)" if key.revoked_at is not None and at >= key.revoked_at else ""
            raise UnknownSigner(f"key {key_id!r} of {agency!r} was not valid at {at.isoformat()}{why}")
        return _public_key(key.public_key)

    def agreements(self) -> tuple[Agreement, ...]:
        """Agreements that took effect at some point (proposals still waiting are not agreements yet)."""
        return tuple(ag.view() for _, ag in sorted(self.agreements_.items()) if ag.ever_approved)

    def active_agreement(self, consumer: str, dataset: str, at: dt.datetime) -> Agreement | None:
        for ag in self._agreements_between(consumer, dataset):
            if ag.status_at(at) == "active":
                return ag.view()
        return None

    def _agreements_between(self, consumer: str, dataset: str) -> tuple[AgreementRecord, ...]:
        """Their agreements in id order, from an index made once per governance event (not per query)."""
        built_at, index = self._pair_index
        if built_at != self.head_sequence:
            pairs: dict[tuple[str, str], list[AgreementRecord]] = {}
            for _, ag in sorted(self.agreements_.items()):
                pairs.setdefault((ag.terms.consumer, ag.terms.dataset), []).append(ag)
            index = {pair: tuple(ags) for pair, ags in pairs.items()}
            self._pair_index = (self.head_sequence, index)
        return index.get((consumer, dataset), ())

    def consumer_for_token(self, token: str) -> str | None:
        return self.token_owners.get(token_hash(token))

    def credential(self, digest: str) -> CredentialRecord | None:
        """The credential whose SHA-256 (hex) is ``digest``, with its lifetime; None if never issued."""
        return self.credential_records.get(credential_id(digest)) if digest in self.token_owners else None

    @property
    def quarantine_topic(self) -> str:
        return f"{self.topic_prefix}-quarantine"

    def checkpoint_topic(self, owner: str) -> str:
        """Where ``owner`` states its chain heads: one topic per owner agency, which only it may write, so a
        checkpoint (or anything else) found there was written by that owner."""
        return f"{self.topic_prefix}-checkpoints.{owner}"

    def owners(self) -> tuple[str, ...]:
        """Every agency that owns a dataset."""
        return tuple(sorted({d.owner for d in self.datasets_.values()}))

    @property
    def access_log_topic(self) -> str:
        """Every answered query of a read model (R7)."""
        return f"{self.topic_prefix}-access-log"

    @property
    def access_checkpoint_topic(self) -> str:
        """Where the query API's instances state the heads of their access-log lanes (signed checkpoints).
        Not ``<prefix>-checkpoints.<name>``: that is an owner agency's, and ``access-log`` could be one."""
        return f"{self.topic_prefix}-access-log.checkpoints"

    @property
    def projector_group(self) -> str:
        """Kafka consumer group of this hub's projection workers."""
        return f"{self.topic_prefix}-projector"

    # --- beyond the view ---------------------------------------------------------------------------

    @property
    def governance_topic(self) -> str:
        return f"{self.topic_prefix}-governance"

    def agreement(self, agreement_id: str) -> AgreementRecord:
        found = self.agreements_.get(agreement_id)
        if found is None:
            raise UnknownReferenceError(f"no agreement {agreement_id!r}")
        return found

    def history(self, agreement_id: str) -> tuple[AgreementRecord, ...]:
        """Every version of the agreement, oldest first: one per event about it."""
        self.agreement(agreement_id)
        return tuple(self.versions[agreement_id])

    def row_filter(self, agreement_id: str) -> RowFilter | None:
        """The agreement's compiled row filter (against the dataset's current schema), or None."""
        terms = self.agreement(agreement_id).terms
        if terms.row_filter is None:
            return None
        schema = self.current_schema(terms.dataset)
        return compile_filter(terms.row_filter, schema, allowed_fields=terms.fields)

    def dump(self) -> dict[str, Any]:
        """Canonical JSON-ready form: equal states dump equal, whatever order dicts were filled in. A state
        without a vocabulary dumps as it did before there was one (its hash, in evidence packs, stays)."""
        terms = vocabulary.dump(self) if self.purposes_ or self.legal_bases_ else None
        return {
            **({"vocabulary": terms} if terms else {}),
            "operator": self.operator,
            "topic_prefix": self.topic_prefix,
            "head": {"sequence": self.head_sequence, "hash": self.head_hash.hex()},
            "agencies": [self.agency(a).model_dump(mode="json") for a in sorted(self.agencies_)],
            "revocations": {
                f"{a.id}/{k.key_id}": [k.revoked_at.isoformat(), k.revoke_reason]
                for a in self.agencies_.values()
                for k in a.keys
                if k.revoked_at is not None
            },
            "datasets": [d.model_dump(mode="json") for d in self.datasets()],
            "schemas": {
                d: [s.fingerprint.hex() for s in r.schemas] for d, r in sorted(self.datasets_.items())
            },
            "agreements": {a: [version_json(v) for v in self.versions[a]] for a in sorted(self.versions)},
            "credentials": {c: sorted(h) for c, h in sorted(self.credentials.items())},
            "credential_lifetimes": {c: r.summary() for c, r in sorted(self.credential_records.items())},
        }


def fold(
    events: Iterable[ev.GovernanceEvent | bytes], trust: Trust, topic_prefix: str = "sharehub"
) -> GovState:
    """The state the events (oldest first, as objects or wire bytes) build; the first event that is not
    authentic, does not continue the chain or breaks a rule raises its specific error."""
    state = GovState(trust, topic_prefix)
    for item in events:
        state.apply(ev.parse(item) if isinstance(item, bytes) else item)
    return state


def fold_log(entries: Iterable[Logged], trust: Trust, topic_prefix: str = "sharehub") -> GovState:
    """The state the log's records build, going on past any record that cannot be applied (junk, a
    forgery, a broken link): each is in the state's :attr:`~GovState.skipped`, with its offset."""
    state = GovState(trust, topic_prefix)
    for entry in entries:
        state.take(entry)
    return state


def fold_log_as_of(
    entries: Iterable[Logged], trust: Trust, at: dt.datetime, topic_prefix: str = "sharehub"
) -> GovState:
    """Governance as it stood at ``at``: the state :func:`fold_log` builds from the log's records up to the
    first event stamped (``occurred_at``, the operator's signed event time) later than ``at``. That event
    and everything after it are left out: the log is one chain in one partition, so a record after an event
    of a later time was appended later still. A record that is no governance event at all carries no time:
    it is taken (and skipped, as :func:`fold_log` would) like any other before that point."""
    state = GovState(trust, topic_prefix)
    for entry in entries:
        try:
            stamped = ev.parse(entry.raw).occurred_at
        except EnvelopeError:
            stamped = None
        if stamped is not None and stamped > at:
            break
        state.take(entry)
    return state


def version_json(v: AgreementRecord) -> dict[str, Any]:
    """One version of an agreement, JSON-ready: what the state's dump and an evidence pack's report show."""
    return {
        "sequence": v.sequence,
        "event": v.event_type,
        "actor": v.actor,
        "at": v.at.isoformat(),
        "stage": v.stage,
        "consented_by": v.consented_by,
        "approvals": list(v.approvals),
        "required_approvals": v.required_approvals,
        "reason": v.reason,
        "terms": {
            **{k: getattr(v.terms, k) for k in ("id", "consumer", "dataset", "row_filter", "purpose")},
            "legal_basis": v.terms.legal_basis,
            **({"purposes": list(v.terms.purposes)} if v.terms.purposes else {}),
            "fields": list(v.terms.fields),
            "valid_from": v.terms.valid_from.isoformat(),
            "valid_until": v.terms.valid_until.isoformat() if v.terms.valid_until else None,
        },
    }


@functools.lru_cache(maxsize=4096)
def _public_key(hex_bytes: str) -> Ed25519PublicKey:
    """The key object for its bytes, made once (every event's signature check asks for it)."""
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_bytes))
