"""Governance as the rest of the hub sees it: agencies and their keys, datasets and owners, agreements.

:class:`GovernanceView` is the seam: the projection, the query API and the audit read governance only
through it. Its one implementation is :class:`sharehub.gov.GovState`, the governance log folded; the models
here are the views it hands out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from sharehub.avro import CLASSIFICATIONS, RecordSchema

Classification = Literal["public", "internal", "confidential", "secret", "top-secret"]
AgencyKind = Literal[
    "party-agency",
    "state-agency",
    "mass-organisation",
    "central-office",
    "provincial-party-committee",
    "inspection-commission",
]
#: The kind of agency that audits the hub (the Central Inspection Commission): the broker lets it read the
#: dataset, governance, checkpoint and access-log topics, and write nothing.
AUDITOR_KIND = "inspection-commission"
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


def level(classification: str) -> int:
    """Rank of a classification: public 0 … top-secret 4."""
    return CLASSIFICATIONS.index(classification)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PublicKey(_Model):
    key_id: str
    public_key: str = Field(description="Raw Ed25519 public key, hex.")
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None


class Agency(_Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    kind: AgencyKind
    clearance: Classification
    parent: str | None = None
    keys: tuple[PublicKey, ...] = ()


#: A dataset's ``retention_ms`` that keeps its events for ever.
KEPT_FOR_EVER = -1


class Dataset(_Model):
    id: str = Field(pattern=ID_PATTERN)
    owner: str
    description: str = ""
    classification: Classification
    key_field: str
    partitions: int = Field(default=3, ge=1, le=256)
    #: How long its topic keeps an event, and its read models a past version, in milliseconds
    #: (:data:`KEPT_FOR_EVER`: for ever).
    retention_ms: int = -1
    #: The first moment a retention of it, current or past, could delete one of its events; None: none
    #: could (:func:`sharehub.gov.retention.retains_from`). Derived from the log, so not in its dumps.
    retains_from: dt.datetime | None = Field(default=None, exclude=True)
    #: Row-filter expressions every record must satisfy (checked when publishing, R9).
    quality_rules: tuple[str, ...] = ()
    #: The dataset's one topic, ``<topic prefix>.<owner>.<id>``; set by governance when it declares it.
    topic: str = ""

    @property
    def retains(self) -> bool:
        """Whether its events are deleted past a retention (not kept for ever)."""
        return self.retention_ms != KEPT_FOR_EVER

    def retained_away_by(self, at: dt.datetime) -> bool:
        """Whether records its topic no longer holds at ``at`` may have been deleted by a retention in force
        (not by anyone else: then they are missing). Without its retentions' history, the current one."""
        return self.retains if self.retains_from is None else self.retains_from <= at


class Agreement(_Model):
    id: str
    consumer: str
    dataset: str
    fields: tuple[str, ...] = Field(min_length=1)
    purpose: str = Field(min_length=1)
    #: Ids of the vocabulary's purposes a query under it may state (then ``legal_basis`` is an id of the
    #: vocabulary too); empty for an agreement of free-text purpose, proposed before the vocabulary.
    purposes: tuple[str, ...] = ()
    legal_basis: str = Field(min_length=1)
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    #: Only records this expression (sharehub.row_filter) holds for are granted; None: every record.
    row_filter: str | None = None
    status: Literal["active", "suspended", "revoked"] = "active"

    @property
    def terms_digest(self) -> str:
        """What a read model's rows of this dataset depend on: the agreement, its fields and its row filter.
        A consumer whose active terms change digest has the dataset projected again from its start."""
        canonical = json.dumps([self.id, sorted(self.fields), self.row_filter], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def active_at(self, at: dt.datetime) -> bool:
        return (
            self.status == "active"
            and self.valid_from <= at
            and (self.valid_until is None or at < self.valid_until)
        )


class GovernanceView(Protocol):
    """Everything the hub's other parts may ask of governance."""

    def agency(self, agency_id: str) -> Agency: ...
    def dataset(self, dataset_id: str) -> Dataset: ...
    def datasets(self) -> tuple[Dataset, ...]: ...
    def dataset_owner(self, dataset: str) -> str: ...
    def dataset_schemas(self, dataset: str) -> Mapping[bytes, RecordSchema]: ...
    def current_schema(self, dataset: str) -> RecordSchema: ...
    def signing_public_key(self, agency: str, key_id: str, at: dt.datetime) -> Ed25519PublicKey: ...
    def agreements(self) -> tuple[Agreement, ...]: ...
    def active_agreement(self, consumer: str, dataset: str, at: dt.datetime) -> Agreement | None: ...
    def consumer_for_token(self, token: str) -> str | None: ...

    @property
    def quarantine_topic(self) -> str: ...

    def checkpoint_topic(self, owner: str) -> str:
        """Where ``owner`` states its chain heads: a topic of its own, which only it may write."""
        ...


def token_hash(token: str) -> str:
    """Credentials are stored as SHA-256: they are 256-bit random, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()
