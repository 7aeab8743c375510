"""Declarative bootstrap: bring the governance log to what a hub YAML file describes, as events.

:func:`plan` compares the spec with the state and lists the changes, one human-readable line each
(``+`` something new, ``~`` an existing thing moved along its lifecycle or to a new schema version, ``-`` an
agreement revoked because the spec no longer lists it); :func:`apply` performs them through the service, so
each is validated and signed like any other command. Applying the same spec twice plans nothing the second
time. Keys are made in the local key store the first time an agency or dataset appears, as
``services/governance_bootstrap.py`` does.

The spec is ``demo/hub.yaml``'s format (``HubSpec``), with two additions: the vocabulary of ``purposes``
and ``legal_bases`` (defined before the datasets and agreements that name them; a term the spec no longer
lists is left as it is: retiring is ``sharehub gov purposes retire``), and an agreement may list its
``approvers`` (central offices). Without it the operator approves, which is enough below secret only; for a
secret agreement the plan asks for two. A dataset whose ``purposes`` differ from the log's is given the
spec's (``DatasetPurposesChanged``, after the agreements the spec no longer lists are revoked), and one
whose ``retention_ms`` differs, the spec's retention (``DatasetRetentionChanged``). Things the log cannot
change yet (an agency's name or clearance, a dataset's owner or classification, an agreement's terms) are
refused with InputError rather than silently left different.

Every act of an agency other than the operator carries that agency's seal (:mod:`sharehub.gov.acts`):
:func:`apply` seals with the custody keys the hub holds (and those it makes in the same plan) and with the
keys of the agencies' sites found on this machine (:class:`LocalSite`, the demo's ``sites/<agency>``),
whose registration requests the plan registers first. A plan with an act no key here can seal is refused
before its first change, listing who must sign what.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from sharehub.avro import RecordSchema, load_schema
from sharehub.errors import InputError
from sharehub.gov import retention
from sharehub.gov.acts import CustodySigner, KeyRing, Signers
from sharehub.gov.commands import DeclareDataset, DefineLegalBasis, DefinePurpose, Propose, RegisterAgency
from sharehub.gov.custody import custody_key_id, sealed_in_custody
from sharehub.gov.events import GovernanceEvent
from sharehub.gov.key_request import KeyRequest
from sharehub.gov.log import MemoryLog
from sharehub.gov.models import DatasetRecord, approvals_needed
from sharehub.gov.service import Effect, GovernanceService
from sharehub.gov.state import GovState, fold
from sharehub.keys import LocalKeyStore, Signer, SigningKey

#: An agency in the file is the command that registers it.
AgencySpec = RegisterAgency


class DatasetSpec(DeclareDataset):
    """A dataset in the file: the declaration, and the schema its latest version must be."""

    #: An Avro schema file (.avsc; a relative path is taken from the spec file's folder). None: the schema
    #: sharehub ships under the dataset's id (``schemas/<id>.avsc``).
    schema_file: Path | None = None

    def record_schema(self) -> RecordSchema:
        if self.schema_file is None:
            return load_schema(self.id)
        try:
            return RecordSchema.from_json(self.id, json.loads(self.schema_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise InputError(f"dataset {self.id}: schema_file {self.schema_file}: {exc}") from None

    def declaration(self) -> dict[str, Any]:
        return self.model_dump(exclude={"schema_file"})


class AgreementSpec(Propose):
    """An agreement in the file: the proposal, from when it is valid, and who approves it."""

    valid_from: AwareDatetime
    approvers: tuple[str, ...] = ()


class GovSpec(BaseModel):
    """``HubSpec`` of services/governance_bootstrap.py, typed, with optional approvers per agreement."""

    model_config = ConfigDict(extra="forbid")
    operator: str
    topic_prefix: str = "sharehub"
    agencies: list[AgencySpec]
    #: Agencies the hub acts for (custodial): apply makes their signing keys in the hub's key store, and
    #: the hub keeps their broker logins. Every other agency but the operator makes its keys at its own
    #: site ('sharehub agency init') and registers them from its request ('sharehub gov register-key'):
    #: the hub never holds their private keys nor their passwords.
    custodial: list[str] = Field(default_factory=list)
    #: The vocabulary datasets and agreements name (sharehub.gov.vocabulary).
    purposes: list[DefinePurpose] = Field(default_factory=list)
    legal_bases: list[DefineLegalBasis] = Field(default_factory=list)
    datasets: list[DatasetSpec] = Field(default_factory=list)
    agreements: list[AgreementSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _custodial_names_agencies(self) -> GovSpec:
        known = {a.id for a in self.agencies}
        unknown = sorted(set(self.custodial) - known)
        if unknown:
            raise ValueError(f"custodial names agencies the spec does not: {', '.join(unknown)}")
        if self.operator in self.custodial:
            raise ValueError(
                f"the operator {self.operator!r} is the hub itself: it signs governance with the hub's own "
                "key, not in custody"
            )
        return self

    @property
    def site_agencies(self) -> list[str]:
        """The agencies that make their own keys at their sites: all but the operator and the custodial."""
        return [a.id for a in self.agencies if a.id != self.operator and a.id not in self.custodial]


#: libyaml's safe loader where PyYAML was built with it: the same documents, ten times faster to read.
_SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_spec(source: Path | Mapping[str, Any]) -> GovSpec:
    """A spec from a YAML file or an already-loaded mapping (e.g. ``HubSpec.model_dump()``); a dataset's
    relative ``schema_file`` is taken from the file's folder (from the working directory for a mapping)."""
    try:
        raw = yaml.load(source.read_text(encoding="utf-8"), _SAFE) if isinstance(source, Path) else source
        spec = GovSpec.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{source}: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    if not isinstance(source, Path):
        return spec
    folder = source.resolve().parent
    datasets = [
        d.model_copy(update={"schema_file": folder / d.schema_file}) if d.schema_file is not None else d
        for d in spec.datasets
    ]
    return spec.model_copy(update={"datasets": datasets})


@dataclass(frozen=True)
class LocalSite:
    """An agency's own site on this machine (the demo keeps one per agency): the registration requests of
    its keys, and the key it signs with now. The hub registers the requests and seals the agency's acts of
    the plan with the site's key: the site's private key never enters the hub's key store."""

    requests: tuple[KeyRequest, ...]
    signer: Signer


@dataclass(frozen=True)
class Change:
    """One step of a plan: the line shown to a person, and the service call that performs it."""

    line: str
    op: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.line


def plan(desired: GovSpec, state: GovState, sites: Mapping[str, LocalSite] | None = None) -> list[Change]:
    """The changes that bring ``state`` to ``desired``; empty when it is there already. ``sites``: the
    sites of agencies on this machine, whose keys not yet on the log are registered from their requests."""
    if desired.operator != state.operator:
        raise InputError(f"the spec's operator {desired.operator!r} is not the log's {state.operator!r}")
    changes: list[Change] = []
    # The operator first: it is the one agency that may register the others.
    for agency in sorted(desired.agencies, key=lambda a: a.id != desired.operator):
        hub_key = agency.id == desired.operator or agency.id in desired.custodial
        changes += _agency(agency, state, desired.operator, hub_key=hub_key)
        site = (sites or {}).get(agency.id)
        if site is not None and not hub_key:
            changes += _site_keys(agency.id, site, state, desired.operator)
    changes += _vocabulary(desired, state)
    # Agreements the spec no longer lists end before any schema version is registered: a version that
    # breaks their terms is taken in the same plan that replaces them (and only then, see _dataset).
    # Likewise a dataset's purposes may leave out only what no agreement that can still take effect names.
    wanted = {a.id for a in desired.agreements}
    for agreement_id, record in sorted(state.agreements_.items()):
        if agreement_id not in wanted and record.stage != "revoked":
            args = {
                "actor": desired.operator,
                "agreement_id": agreement_id,
                "reason": "no longer in the spec",
            }
            changes.append(
                Change(f"- revoke agreement {agreement_id} (no longer in the spec)", "revoke", args)
            )
    for dataset in desired.datasets:
        changes += _dataset(dataset, state, desired.operator)
    for agreement in desired.agreements:
        changes += _agreement(agreement, state, desired)
    return changes


def apply(
    changes: list[Change],
    service: GovernanceService,
    keys: LocalKeyStore,
    *,
    sites: Mapping[str, LocalSite] | None = None,
    rehearsal: bool = False,
) -> list[GovernanceEvent]:
    """Perform ``changes`` in order (each one validated and signed). Stops at the first refusal; what was
    applied stays, and a new plan resumes. A new agency's key pair, and a new dataset's keys, are kept in
    the key store only once governance accepted the change (its effect, see
    :class:`~sharehub.gov.service.GovernanceService`). A ``rehearsal`` (against a scratch service, see
    :func:`rehearse`) leaves the key store untouched. Each party's act is sealed with its key held here:
    a custody key, or the key of its site among ``sites``."""
    ring = KeyRing()
    for agency, site in (sites or {}).items():
        ring.add(agency, site.signer)
    service.signers.add(Signers(ring, CustodySigner(keys)))
    _refuse_unsigned(changes, service, keys, ring)
    events: list[GovernanceEvent] = []
    for change in changes:
        args = dict(change.args)
        if change.op == "add_key" and "public_key" not in args:
            made, effect = _signing_key(keys, args["agency"], args["key_id"])
            args["public_key"] = made.private.public_key().public_bytes_raw()
            ring.add(args["agency"], made)  # seals the agency's later acts of this plan
            if not rehearsal:
                args["effect"] = effect
        elif change.op == "declare_dataset" and not rehearsal:
            args["effect"] = _keeping(keys, functools.partial(keys.ensure_dataset_keys, args["id"]))
        events.append(getattr(service, change.op)(**args))
    return events


def _refuse_unsigned(
    changes: list[Change], service: GovernanceService, keys: LocalKeyStore, ring: KeyRing
) -> None:
    """InputError listing the acts of the plan whose party no key here can seal (before any is applied)."""
    state, now = service.state, service.clock()
    custody = CustodySigner(keys)
    made_here = {
        c.args["agency"] for c in changes if c.op == "add_key" and sealed_in_custody(c.args["key_id"])
    }
    can_sign = set(ring.agencies()) | made_here
    # An agency neither on the log nor in the plan: the rules refuse its act with their own message.
    known = set(state.agencies_) | {c.args["id"] for c in changes if c.op == "register_agency"}
    missing = [
        f"{c.args['actor']}: {c.line.lstrip('+~- ')}"
        for c in changes
        if c.args["actor"] in known
        and c.args["actor"] != state.operator
        and c.args["actor"] not in can_sign
        and custody.key_for(state, c.args["actor"], now) is None
    ]
    if missing:
        raise InputError(
            "these acts must be signed by their own agency, and no key of it is here (neither a custody key "
            "the hub holds nor a site of it on this machine): "
            + "; ".join(missing)
            + ". Each agency signs at its site ('sharehub agency sign-act', then 'sharehub gov ... --site')"
        )


def rehearse(
    changes: list[Change],
    events: list[bytes],
    service: GovernanceService,
    keys: LocalKeyStore,
    sites: Mapping[str, LocalSite] | None = None,
) -> None:
    """Apply ``changes`` to a scratch copy of the state ``events`` build (in memory, nothing kept), so a
    plan that would be refused halfway is refused before its first change reaches the log."""
    scratch = GovernanceService(
        fold(events, service.state.trust, service.state.topic_prefix),
        service.signing_key,
        MemoryLog(list(events)),
        clock=service.clock,
    )
    apply(changes, scratch, keys, sites=sites, rehearsal=True)


# --- one kind of thing at a time -----------------------------------------------------------------------


def _agency(spec: AgencySpec, state: GovState, operator: str, *, hub_key: bool) -> list[Change]:
    changes: list[Change] = []
    known = state.agencies_.get(spec.id)
    if known is None:
        args = {"actor": operator, **spec.model_dump()}
        changes.append(Change(f"+ register agency {spec.id} ({spec.name})", "register_agency", args))
    else:
        _same(f"agency {spec.id}", spec.model_dump(), {k: getattr(known, k) for k in spec.model_dump()})
    if hub_key and (known is None or not known.keys):
        # The operator's key is the hub's own; a custodial agency's is held for it, and its id says so.
        key_id = f"{spec.id}/sign/1" if spec.id == operator else custody_key_id(spec.id)
        args = {"actor": operator, "agency": spec.id, "key_id": key_id}
        changes.append(Change(f"+ add signing key {key_id} to {spec.id}", "add_key", args))
    return changes


def _site_keys(agency: str, site: LocalSite, state: GovState, operator: str) -> list[Change]:
    """The site's keys the log does not hold yet, registered from their requests (proven first)."""
    known = state.agencies_.get(agency)
    changes: list[Change] = []
    for request in site.requests:
        if known is not None and known.key(request.key_id) is not None:
            continue
        request.proven()
        args: dict[str, Any] = {
            "actor": operator, "agency": agency, "key_id": request.key_id, "public_key": request.public_key,
            "valid_from": request.valid_from, "valid_until": request.valid_until,
        }  # fmt: skip
        line = f"+ register site key {request.key_id} of {agency} (its signed request)"
        if request.replaces is not None:
            args = {**args, "old_key_id": request.replaces, "new_key_id": args.pop("key_id")}
            del args["valid_until"]
            changes.append(Change(line, "rotate_key", args))
        else:
            changes.append(Change(line, "add_key", args))
    return changes


def _vocabulary(desired: GovSpec, state: GovState) -> list[Change]:
    changes: list[Change] = []
    kinds = (
        ("purpose", desired.purposes, state.purposes_, "define_purpose"),
        ("legal basis", desired.legal_bases, state.legal_bases_, "define_legal_basis"),
    )
    for kind, specs, known, op in kinds:
        for term in specs:
            wanted = term.model_dump()
            if term.id in known:
                _same(f"{kind} {term.id}", wanted, known[term.id].json())
            else:
                args = {"actor": desired.operator, **wanted}
                changes.append(Change(f"+ define {kind} {term.id} ({term.label_en})", op, args))
    return changes


#: What of a dataset on the log a spec may change (each by an event of its own); the rest is fixed.
_CHANGEABLE = ("purposes", "retention_ms")


def _dataset(spec: DatasetSpec, state: GovState, operator: str) -> list[Change]:
    changes: list[Change] = []
    known = state.datasets_.get(spec.id)
    declared = spec.declaration()
    if known is None:
        line = f"+ declare dataset {spec.id} (owner {spec.owner}, {spec.classification})"
        changes.append(Change(line, "declare_dataset", {"actor": operator, **declared}))
    else:
        fixed = {k: v for k, v in declared.items() if k not in _CHANGEABLE}
        _same(f"dataset {spec.id}", fixed, {k: getattr(known, k) for k in fixed})
        changes += _purposes(spec, known, operator) + _retention(spec, known, operator)
    shipped = spec.record_schema()
    registered = known.schemas if known is not None else ()
    if not registered or registered[-1].fingerprint != shipped.fingerprint:
        sign = "~" if registered else "+"
        line = f"{sign} register schema {spec.id} v{len(registered) + 1} ({shipped.fingerprint.hex()})"
        args = {"actor": operator, "dataset": spec.id, "schema": shipped.raw}
        changes.append(Change(line, "register_schema", args))
    return changes


def _purposes(spec: DatasetSpec, known: DatasetRecord, operator: str) -> list[Change]:
    """The spec's purposes for a dataset on the log whose purposes differ (in any order: the same)."""
    if sorted(spec.purposes) == sorted(known.purposes):
        return []
    line = f"~ set purposes of dataset {spec.id} ({', '.join(spec.purposes) or 'any'})"
    args: dict[str, Any] = {"actor": operator, "dataset": spec.id, "purposes": spec.purposes}
    return [Change(line, "set_dataset_purposes", {**args, "reason": "changed in the spec"})]


def _retention(spec: DatasetSpec, known: DatasetRecord, operator: str) -> list[Change]:
    """The spec's retention for a dataset on the log that keeps its events for another time."""
    if spec.retention_ms == known.retention_ms:
        return []
    line = f"~ set retention of dataset {spec.id} ({retention.describe(spec.retention_ms)})"
    args: dict[str, Any] = {"actor": operator, "dataset": spec.id, "retention_ms": spec.retention_ms}
    return [Change(line, "set_dataset_retention", {**args, "reason": "changed in the spec"})]


def _agreement(spec: AgreementSpec, state: GovState, desired: GovSpec) -> list[Change]:
    ds = next((d for d in desired.datasets if d.id == spec.dataset), None)
    owner = ds.owner if ds is not None else state.dataset_owner(spec.dataset)
    approvers = spec.approvers or (desired.operator,)
    needed = _approvals_needed(spec, state, desired)
    if len(set(approvers)) < needed:
        raise InputError(
            f"agreement {spec.id}: it grants secret data and needs {needed} distinct central approvers; "
            f"list them under 'approvers' (the spec names {', '.join(approvers)})"
        )
    known = state.agreements_.get(spec.id)
    changes: list[Change] = []
    if known is None:
        terms = spec.model_dump(exclude={"id", "approvers"})
        args = {"actor": spec.consumer, "id": spec.id, **terms}
        line = (
            f"+ propose agreement {spec.id} ({spec.consumer} reads {spec.dataset}, {len(spec.fields)} fields)"
        )
        changes.append(Change(line, "propose", args))
        stage, done, sign = "proposed", tuple[str, ...](), "+"
    else:
        on_log = {k: getattr(known.terms, k) for k in spec.model_dump(exclude={"id", "approvers"})}
        _same(f"agreement {spec.id}", spec.model_dump(exclude={"id", "approvers"}), on_log)
        stage, done, sign = known.stage, known.approvals, "~"
    if stage == "proposed":
        args = {"actor": owner, "agreement_id": spec.id}
        changes.append(Change(f"{sign} consent agreement {spec.id} by {owner}", "consent", args))
    if stage in ("proposed", "consented"):
        for approver in [a for a in dict.fromkeys(approvers) if a not in done][: needed - len(done)]:
            args = {"actor": approver, "agreement_id": spec.id}
            changes.append(Change(f"{sign} approve agreement {spec.id} by {approver}", "approve", args))
    return changes


def _approvals_needed(spec: AgreementSpec, state: GovState, desired: GovSpec) -> int:
    known = state.datasets_.get(spec.dataset)
    if known is None:
        ds = next((d for d in desired.datasets if d.id == spec.dataset), None)
        if ds is None:
            raise InputError(f"agreement {spec.id}: dataset {spec.dataset!r} does not exist")
        known = DatasetRecord(schemas=(ds.record_schema(),), **ds.declaration())
    return approvals_needed(known, spec.fields)


def _same(what: str, wanted: Mapping[str, Any], actual: Mapping[str, Any]) -> None:
    differs = sorted(k for k in wanted if wanted[k] != actual[k])
    if differs:
        raise InputError(
            f"{what} differs from the log in {', '.join(differs)}; governance events cannot change that "
            "yet (give new agreement terms a new id)"
        )


def _signing_key(keys: LocalKeyStore, agency: str, key_id: str) -> tuple[SigningKey, Effect | None]:
    """The key pair to register for ``agency``, and the effect that keeps its private half."""
    if keys.has(key_id, "signing"):  # made by an earlier apply that stopped before its event was written
        current = keys.signing_key(agency)
        if current.key_id == key_id:
            return current, None
    made = SigningKey(key_id, Ed25519PrivateKey.generate())
    return made, _keeping(keys, lambda: keys.add_signing_key(agency, key_id, made.private))


def _keeping(keys: LocalKeyStore, store: Callable[[], object]) -> Effect:
    """An effect that stores keys in a key-store transaction, kept once the event is on the log."""

    @contextmanager
    def effect() -> Iterator[None]:
        with keys.transaction():
            store()
            yield

    return effect
