"""Governance as the rest of the hub sees it: agencies and their keys, datasets and owners, agreements.

:class:`GovernanceView` is the seam: the projection, the query API and the audit read governance only
through it. :class:`GovernanceState` is the walking skeleton's implementation, a validated document kept in
``<home>/governance.json``; the event-sourced governance service implements the same view.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sharehub.avro import CLASSIFICATIONS, RecordSchema, load_schema
from sharehub.errors import InputError, UnknownReferenceError, UnknownSigner

Classification = Literal["public", "internal", "confidential", "secret", "top-secret"]
AgencyKind = Literal[
    "party-agency", "state-agency", "mass-organisation", "central-office", "provincial-party-committee"
]
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


class Dataset(_Model):
    id: str = Field(pattern=ID_PATTERN)
    owner: str
    description: str = ""
    classification: Classification
    key_field: str
    partitions: int = Field(default=3, ge=1, le=256)
    #: The dataset's one topic, ``<topic prefix>.<owner>.<id>``; set by governance when it declares it.
    topic: str = ""


class Agreement(_Model):
    id: str
    consumer: str
    dataset: str
    fields: tuple[str, ...] = Field(min_length=1)
    purpose: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    status: Literal["active", "suspended", "revoked"] = "active"

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

    @property
    def checkpoint_topic(self) -> str: ...


class GovernanceState(_Model):
    """The skeleton's governance: one validated document."""

    operator: str
    #: Namespace of every topic of this hub, so several hubs (or test runs) can share one Kafka cluster.
    topic_prefix: str = Field(default="sharehub", pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    agencies: tuple[Agency, ...]
    datasets_: tuple[Dataset, ...] = Field(alias="datasets")
    agreements_: tuple[Agreement, ...] = Field(default=(), alias="agreements")
    #: consumer agency id -> SHA-256 (hex) of each bearer credential issued to it.
    credentials: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _name_topics(cls, data: Any) -> Any:
        if isinstance(data, dict):
            prefix = data.get("topic_prefix", "sharehub")
            named = []
            for ds in data.get("datasets") or data.get("datasets_") or ():
                fields = ds.model_dump() if isinstance(ds, Dataset) else dict(ds)
                fields["topic"] = f"{prefix}.{fields['owner']}.{fields['id']}"
                named.append(fields)
            data = {**data, "datasets": named}
            data.pop("datasets_", None)
        return data

    @property
    def quarantine_topic(self) -> str:
        return f"{self.topic_prefix}-quarantine"

    @property
    def checkpoint_topic(self) -> str:
        """Where producers' signed checkpoints of their chains go."""
        return f"{self.topic_prefix}-checkpoints"

    @property
    def projector_group(self) -> str:
        """Kafka consumer group of this hub's projection workers."""
        return f"{self.topic_prefix}-projector"

    @model_validator(mode="after")
    def _check_references(self) -> GovernanceState:
        _unique("agency", [a.id for a in self.agencies])
        _unique("dataset", [d.id for d in self.datasets_])
        _unique("agreement", [a.id for a in self.agreements_])
        agencies = {a.id: a for a in self.agencies}
        if self.operator not in agencies:
            raise InputError(f"operator {self.operator!r} is not a registered agency")
        for agency in self.agencies:
            if agency.parent is not None and agency.parent not in agencies:
                raise InputError(f"agency {agency.id!r}: parent {agency.parent!r} is not a registered agency")
        datasets = {d.id: d for d in self.datasets_}
        for ds in self.datasets_:
            if ds.owner not in agencies:
                raise InputError(f"dataset {ds.id!r}: owner {ds.owner!r} is not a registered agency")
            schema = load_schema(ds.id)
            if ds.key_field not in schema.fields:
                raise InputError(f"dataset {ds.id!r}: key field {ds.key_field!r} is not in its schema")
            if schema.fields[ds.key_field].personal:
                raise InputError(
                    f"dataset {ds.id!r}: key field {ds.key_field!r} is tagged personal; erasure could not "
                    "leave the record addressable: key records by a non-personal identifier"
                )
        for ag in self.agreements_:
            _check_agreement(ag, agencies, datasets)
        for consumer in self.credentials:
            if consumer not in agencies:
                raise InputError(f"credentials issued to {consumer!r}, which is not a registered agency")
        return self

    # --- GovernanceView ----------------------------------------------------------------------------

    @cached_property
    def _agencies(self) -> dict[str, Agency]:
        return {a.id: a for a in self.agencies}

    @cached_property
    def _datasets(self) -> dict[str, Dataset]:
        return {d.id: d for d in self.datasets_}

    @cached_property
    def _schemas(self) -> dict[str, dict[bytes, RecordSchema]]:
        out = {}
        for ds in self.datasets_:
            schema = load_schema(ds.id)
            out[ds.id] = {schema.fingerprint: schema}
        return out

    @cached_property
    def _token_owners(self) -> dict[str, str]:
        return {h: consumer for consumer, hashes in self.credentials.items() for h in hashes}

    def agency(self, agency_id: str) -> Agency:
        try:
            return self._agencies[agency_id]
        except KeyError:
            raise UnknownReferenceError(f"no agency {agency_id!r}") from None

    def dataset(self, dataset_id: str) -> Dataset:
        try:
            return self._datasets[dataset_id]
        except KeyError:
            raise UnknownReferenceError(f"no dataset {dataset_id!r}") from None

    def datasets(self) -> tuple[Dataset, ...]:
        return self.datasets_

    def dataset_owner(self, dataset: str) -> str:
        return self.dataset(dataset).owner

    def dataset_schemas(self, dataset: str) -> Mapping[bytes, RecordSchema]:
        self.dataset(dataset)
        return self._schemas[dataset]

    def current_schema(self, dataset: str) -> RecordSchema:
        return next(iter(self.dataset_schemas(dataset).values()))

    def signing_public_key(self, agency: str, key_id: str, at: dt.datetime) -> Ed25519PublicKey:
        found = self._agencies.get(agency)
        if found is None:
            raise UnknownSigner(f"no agency {agency!r}")
        for key in found.keys:
            if key.key_id == key_id:
                if at < key.valid_from or (key.valid_until is not None and at >= key.valid_until):
                    raise UnknownSigner(f"key {key_id!r} of {agency!r} was not valid at {at.isoformat()}")
                return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))
        raise UnknownSigner(f"agency {agency!r} has no signing key {key_id!r}")

    def agreements(self) -> tuple[Agreement, ...]:
        return self.agreements_

    def active_agreement(self, consumer: str, dataset: str, at: dt.datetime) -> Agreement | None:
        for ag in self.agreements_:
            if ag.consumer == consumer and ag.dataset == dataset and ag.active_at(at):
                return ag
        return None

    def consumer_for_token(self, token: str) -> str | None:
        return self._token_owners.get(token_hash(token))

    # --- persistence -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> GovernanceState:
        if not path.exists():
            raise UnknownReferenceError(
                f"no governance state at {path}: run 'sharehub gov load FILE.yaml' first"
            )
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)


def token_hash(token: str) -> str:
    """Credentials are stored as SHA-256: they are 256-bit random, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise InputError(f"duplicate {kind} id {i!r}")
        seen.add(i)


def _check_agreement(ag: Agreement, agencies: dict[str, Agency], datasets: dict[str, Dataset]) -> None:
    consumer = agencies.get(ag.consumer)
    if consumer is None:
        raise InputError(f"agreement {ag.id!r}: consumer {ag.consumer!r} is not a registered agency")
    ds = datasets.get(ag.dataset)
    if ds is None:
        raise InputError(f"agreement {ag.id!r}: dataset {ag.dataset!r} does not exist")
    if ag.consumer == ds.owner:
        raise InputError(f"agreement {ag.id!r}: {ag.consumer!r} owns {ag.dataset!r} and needs no agreement")
    if ag.valid_until is not None and ag.valid_until <= ag.valid_from:
        raise InputError(f"agreement {ag.id!r}: valid_until is not after valid_from")
    schema = load_schema(ds.id)
    _unique(f"field in agreement {ag.id!r}:", list(ag.fields))
    for name in ag.fields:
        spec = schema.fields.get(name)
        if spec is None:
            raise InputError(f"agreement {ag.id!r}: dataset {ds.id!r} has no field {name!r}")
        if level(spec.classification) > level(consumer.clearance):
            raise InputError(
                f"agreement {ag.id!r}: field {name!r} is {spec.classification}, above the "
                f"{consumer.clearance} clearance of {ag.consumer!r}"
            )
    if ds.key_field not in ag.fields:
        raise InputError(f"agreement {ag.id!r}: must grant the key field {ds.key_field!r}")
