"""Bringing the skeleton's governance to the state a YAML file describes, idempotently.

Agencies get a signing key and datasets a data-encryption and a routing key the first time they appear;
keys, credentials and topics that already exist are kept. Governance is the only creator of topics.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sharehub.errors import InputError
from sharehub.governance import Agency, Agreement, Dataset, GovernanceState, PublicKey, token_hash
from sharehub.kafka import ensure_topics
from sharehub.keys import LocalKeyStore, load_master_key, write_private
from sharehub.settings import Settings


class HubSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: str
    topic_prefix: str = "sharehub"
    agencies: list[dict[str, Any]]
    datasets: list[dict[str, Any]] = []
    agreements: list[dict[str, Any]] = []


def read_spec(path: Path) -> HubSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    try:
        return HubSpec.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path}: {_first_error(exc)}") from None


def load_governance(settings: Settings, spec: HubSpec) -> GovernanceState:
    """Write governance state (and keys) for ``spec``; keeps what already exists."""
    home = settings.home
    try:
        agencies = [Agency.model_validate(a) for a in spec.agencies]
        datasets = [Dataset.model_validate(d) for d in spec.datasets]
        agreements = [Agreement.model_validate(a) for a in spec.agreements]
    except ValidationError as exc:
        raise InputError(_first_error(exc)) from None
    # Validate everything before any key is made.
    GovernanceState(
        operator=spec.operator,
        topic_prefix=spec.topic_prefix,
        agencies=agencies,
        datasets=datasets,
        agreements=agreements,
    )
    home.mkdir(parents=True, exist_ok=True)
    keys = LocalKeyStore(home / "keys.db", load_master_key(home, settings.master_key, create=True))
    previous = GovernanceState.load(home / "governance.json") if (home / "governance.json").exists() else None
    agencies = [_with_signing_key(a, previous, keys) for a in agencies]
    for ds in datasets:
        data_key_id = f"{ds.id}/data/1"
        if not keys.has(data_key_id):
            keys.create_data_key(ds.id, data_key_id)
        keys.ensure_routing_key(ds.id)
    credentials = {
        c: h
        for c, h in (previous.credentials if previous else {}).items()
        if any(a.id == c for a in agencies)
    }
    state = GovernanceState(
        operator=spec.operator,
        topic_prefix=spec.topic_prefix,
        agencies=agencies,
        datasets=datasets,
        agreements=agreements,
        credentials=credentials,
    )
    save(settings, state)
    return state


def create_topics(settings: Settings, state: GovernanceState) -> list[str]:
    own = [(state.quarantine_topic, 1), (state.checkpoint_topic, 1)]
    topics = [(d.topic, d.partitions) for d in state.datasets()] + own
    return ensure_topics(settings.bootstrap, topics)


def issue_credential(settings: Settings, consumer: str) -> str:
    """A new bearer credential for ``consumer``; only its hash is kept, so it is shown once."""
    state = GovernanceState.load(settings.home / "governance.json")
    state.agency(consumer)
    token = "shc_" + secrets.token_urlsafe(32)
    credentials = dict(state.credentials)
    credentials[consumer] = (*credentials.get(consumer, ()), token_hash(token))
    save(settings, state.model_copy(update={"credentials": credentials}))
    return token


def save(settings: Settings, state: GovernanceState) -> None:
    GovernanceState.model_validate_json(state.dump())  # never write a state that would not load
    write_private(settings.home / "governance.json", state.dump().encode())


def _with_signing_key(agency: Agency, previous: GovernanceState | None, keys: LocalKeyStore) -> Agency:
    if previous is not None:
        try:
            old = previous.agency(agency.id)
        except InputError:
            old = None
        if old is not None and old.keys and keys.has(old.keys[-1].key_id):
            return agency.model_copy(update={"keys": old.keys})
    key_id = f"{agency.id}/sign/1"
    public = keys.create_signing_key(agency.id, key_id)
    record = PublicKey(
        key_id=key_id, public_key=public.hex(), valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    return agency.model_copy(update={"keys": (record,)})


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
