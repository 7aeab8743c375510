"""What governance knows, richer than the skeleton's models: key revocations, every schema version, and the
whole lifecycle of each agreement, version by version.

Each record turns into the matching model of :mod:`sharehub.gov.views` (``Agency``, ``Dataset``,
``Agreement``) for the :class:`~sharehub.gov.views.GovernanceView`, so the rest of the hub keeps using the
models it knows (composition, not a second set of models to learn).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from sharehub.avro import RecordSchema
from sharehub.gov import retention
from sharehub.gov.events import AgreementProposed
from sharehub.gov.views import Agency, AgencyKind, Agreement, Classification, Dataset, PublicKey, level

#: Where an agreement is in its lifecycle, as recorded by events. ``active`` and ``expired`` are not stages:
#: they also depend on the time asked about (see :meth:`AgreementRecord.status_at`).
Stage = Literal["proposed", "consented", "approved", "suspended", "revoked"]
Status = Literal["proposed", "consented", "approved", "active", "suspended", "revoked", "expired"]
#: At and above this classification an agreement needs two distinct central approvers (R4).
TWO_APPROVERS_FROM = "secret"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    public_key: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None

    @property
    def until(self) -> dt.datetime | None:
        """End of the window in which signatures by this key count: validity end or revocation, earlier."""
        ends = [t for t in (self.valid_until, self.revoked_at) if t is not None]
        return min(ends) if ends else None

    def valid_at(self, at: dt.datetime) -> bool:
        return self.valid_from <= at and (self.until is None or at < self.until)

    def view(self) -> PublicKey:
        return PublicKey(
            key_id=self.key_id, public_key=self.public_key, valid_from=self.valid_from, valid_until=self.until
        )


@dataclass(frozen=True)
class AgencyRecord:
    id: str
    name: str
    kind: AgencyKind
    clearance: Classification
    parent: str | None
    keys: tuple[KeyRecord, ...] = ()
    #: When governance registered the agency: no key of it is valid earlier.
    registered_at: dt.datetime | None = None

    def key(self, key_id: str) -> KeyRecord | None:
        return self._keys_by_id.get(key_id)

    @functools.cached_property
    def _keys_by_id(self) -> dict[str, KeyRecord]:
        return {k.key_id: k for k in self.keys}

    def with_key(self, key: KeyRecord) -> AgencyRecord:
        """This agency with ``key`` added, or replacing the key of the same id."""
        others = tuple(k for k in self.keys if k.key_id != key.key_id)
        if len(others) == len(self.keys):
            return dataclasses.replace(self, keys=(*self.keys, key))
        return dataclasses.replace(self, keys=tuple(key if k.key_id == key.key_id else k for k in self.keys))

    def view(self) -> Agency:
        return Agency(
            id=self.id,
            name=self.name,
            kind=self.kind,
            clearance=self.clearance,
            parent=self.parent,
            keys=tuple(k.view() for k in self.keys),
        )


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    owner: str
    description: str
    classification: Classification
    retention_ms: int
    key_field: str
    partitions: int
    quality_rules: tuple[str, ...] = ()
    #: Ids of the vocabulary's purposes it may be shared for (sharehub.gov.vocabulary); empty: any.
    purposes: tuple[str, ...] = ()
    #: Every registered version, oldest first (version n is ``schemas[n - 1]``).
    schemas: tuple[RecordSchema, ...] = ()
    #: Each retention and when it took effect, oldest first: the declaration's, then each change's
    #: (:mod:`sharehub.gov.retention`).
    retentions: tuple[retention.Period, ...] = ()

    @functools.cached_property
    def schemas_by_fingerprint(self) -> Mapping[bytes, RecordSchema]:
        return MappingProxyType({s.fingerprint: s for s in self.schemas})

    def view(self, topic_prefix: str) -> Dataset:
        return Dataset(
            id=self.id,
            owner=self.owner,
            description=self.description,
            classification=self.classification,
            key_field=self.key_field,
            partitions=self.partitions,
            retention_ms=self.retention_ms,
            retains_from=retention.retains_from(self.retentions),
            quality_rules=self.quality_rules,
            topic=f"{topic_prefix}.{self.owner}.{self.id}",
        )


@dataclass(frozen=True)
class AgreementRecord:
    """One version of an agreement: its terms and where it stands after one event."""

    terms: AgreementProposed
    owner: str
    proposed_by: str
    required_approvals: int
    stage: Stage = "proposed"
    consented_by: str | None = None
    approvals: tuple[str, ...] = ()
    #: Whether it ever took effect (was fully approved): only those are agreements for the rest of the hub.
    ever_approved: bool = False
    #: The event that made this version: its sequence, type, actor, time, and reason if it gave one.
    sequence: int = 0
    event_type: str = "AgreementProposed"
    actor: str = ""
    at: dt.datetime = field(default=dt.datetime.min.replace(tzinfo=dt.UTC))
    reason: str | None = None
    #: The hash of the governance event that set the current terms (the proposal): what the seal of every
    #: later step names (sharehub.gov.acts), so it cannot be carried over to other terms.
    terms_hash: bytes = b""
    #: Every stage change so far, oldest first, each with the time of the event that made it: what
    #: :meth:`status_at` reads, so a question about the past gets the stage of then, not of today.
    stages: tuple[tuple[dt.datetime, Stage], ...] = ()

    @property
    def id(self) -> str:
        return self.terms.id

    def with_stage_of(self, at: dt.datetime) -> AgreementRecord:
        """This version with its stage noted in :attr:`stages` as reached at ``at`` (if it changed)."""
        if self.stages and self.stages[-1][1] == self.stage:
            return self
        return dataclasses.replace(self, stages=(*self.stages, (at, self.stage)))

    def stage_at(self, at: dt.datetime) -> Stage:
        """The stage the agreement stood at at ``at``: that of the last change made at or before it (a time
        before the proposal answers ``proposed``: nothing was in effect)."""
        reached: Stage = "proposed"
        for when, stage in self.stages or ((self.at, self.stage),):
            if when > at:
                break
            reached = stage
        return reached

    def status_at(self, at: dt.datetime) -> Status:
        """Where the agreement stood at ``at``, from its history as it stood then: suspended or revoked
        only if that happened by then, expired from ``valid_until`` on, active once approved and valid."""
        stage = self.stage_at(at)
        if stage in ("revoked", "suspended"):
            return stage
        if self.terms.valid_until is not None and at >= self.terms.valid_until:
            return "expired"
        if stage == "approved" and self.terms.valid_from <= at:
            return "active"
        return stage

    def view(self) -> Agreement:
        return self._view  # one frozen view per version: the query API asks on every request

    @functools.cached_property
    def _view(self) -> Agreement:
        status: Literal["active", "suspended", "revoked"] = (
            "active" if self.stage == "approved" else "revoked" if self.stage == "revoked" else "suspended"
        )
        return Agreement(
            id=self.terms.id,
            consumer=self.terms.consumer,
            dataset=self.terms.dataset,
            fields=self.terms.fields,
            purpose=self.terms.purpose,
            purposes=self.terms.purposes,
            legal_basis=self.terms.legal_basis,
            valid_from=self.terms.valid_from,
            valid_until=self.terms.valid_until,
            row_filter=self.terms.row_filter,
            status=status,
        )


def approvals_needed(dataset: DatasetRecord, fields: tuple[str, ...]) -> int:
    """Two distinct central approvers when the dataset or any granted field is secret or above, else one."""
    top = level(dataset.classification)
    if dataset.schemas:
        schema = dataset.schemas[-1]
        top = max([top, *(level(schema.fields[f].classification) for f in fields if f in schema.fields)])
    return 2 if top >= level(TWO_APPROVERS_FROM) else 1
