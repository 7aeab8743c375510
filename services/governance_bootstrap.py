"""Bringing a hub's governance to what a YAML file describes (``sharehub gov apply``), and credentials.

The first apply in a home creates the operator's signing key and pins its public half in ``trust.json``
(:mod:`sharehub.gov.anchors`); every change after that is planned by :func:`sharehub.gov.apply.plan` and
performed through the governance service, so it is validated, signed and written to the governance log like
any other command. Governance is the only creator of topics. The acts of agencies with a site on this
machine (``<home>/sites/<agency>`` with its passphrase beside, as the demo keeps them) are sealed with the
site's key (:func:`local_sites`), and their keys registered from the sites' requests.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from services.governance_desk import GovernanceDesk
from sharehub.errors import InputError
from sharehub.gov import anchors
from sharehub.gov.apply import Change, GovSpec, LocalSite, apply, plan, rehearse
from sharehub.gov.apply import read_spec as parse_spec
from sharehub.gov.events import GovernanceEvent
from sharehub.gov.service import GovernanceService, new_credential
from sharehub.kek import load_kek
from sharehub.keys import LocalKeyStore
from sharehub.settings import Settings

#: Where a hub's home keeps the sites of agencies on the same machine (the demo's).
SITES = "sites"


class Governing(Protocol):
    """Changes to governance, one at a time."""

    def governing(self) -> AbstractContextManager[GovernanceService]: ...


def pin_operator(settings: Settings, spec: GovSpec) -> None:
    """Make the operator's first signing key and pin it (once per home; a different operator is refused)."""
    home = settings.home
    if anchors.exists(home):
        anchors.pin(home, anchors.Anchors(spec.operator, spec.topic_prefix, {}))  # checks only
        return
    if spec.operator not in {a.id for a in spec.agencies}:
        raise InputError(f"operator {spec.operator!r} is not among the spec's agencies")
    home.mkdir(parents=True, exist_ok=True)
    keys = LocalKeyStore(home / "keys.db", load_kek(settings, home, create=True))
    try:
        key_id = f"{spec.operator}/sign/1"
        public = (
            keys.signing_key(spec.operator).private.public_key().public_bytes_raw()
            if keys.has(key_id, "signing")
            else keys.create_signing_key(spec.operator, key_id)
        )
    finally:
        keys.close()
    anchors.pin(home, anchors.Anchors(spec.operator, spec.topic_prefix, {key_id: public.hex()}))


def local_sites(home: Path) -> dict[str, LocalSite]:
    """The agencies' sites under ``home/sites`` whose key opens with the passphrase kept beside it (the
    demo's stand-in for a site's own machine): each one's key requests and its signing key."""
    from connectors.site import PASSPHRASE_BESIDE, AgencySite, read_passphrase
    from sharehub.gov.key_request import read_key_request

    found: dict[str, LocalSite] = {}
    folder = home / SITES
    for site_home in sorted(folder.iterdir()) if folder.is_dir() else ():
        secret = site_home / PASSPHRASE_BESIDE
        if not AgencySite.is_site(site_home) or not secret.is_file():
            continue
        site = AgencySite(site_home)
        requests = tuple(
            read_key_request(site.request_path(k.label).read_text(encoding="utf-8")) for k in site.keys
        )
        found[site.agency] = LocalSite(requests, site.signing_key(read_passphrase(secret)))
    return found


def plan_spec(desk: GovernanceDesk, spec: GovSpec, *, broker: bool = True) -> list[Change]:
    """What applying ``spec`` would change (pins the operator first if this home has no governance, and
    makes sure the hub's services may read the governance log: ``broker=False`` for a log in memory)."""
    pin_operator(desk.settings, spec)
    if broker:
        desk.provision_services()
    return plan(spec, desk.governance.governance_state(refresh=True), local_sites(desk.settings.home))


def apply_spec(desk: GovernanceDesk, changes: list[Change], *, topics: bool = True) -> list[GovernanceEvent]:
    """Perform a plan; then make sure every topic governance knows of exists (unless ``topics`` is off):
    topics, principals and ACLs for the whole current state (see :mod:`services.broker_access`)."""
    governance = desk.governance
    sites = local_sites(desk.settings.home)
    with governance.governing() as service:
        keys = governance.keys
        # Refused as a whole, before any change.
        rehearse(changes, governance.log.read_all(), service, keys, sites)
        events = apply(changes, service, keys, sites=sites)
    if topics:
        desk.provision()
    return events


def load(desk: GovernanceDesk, spec: GovSpec, *, topics: bool = True) -> list[GovernanceEvent]:
    """Plan and apply in one step (the demo, tests)."""
    return apply_spec(desk, plan_spec(desk, spec, broker=topics), topics=topics)


def issue_credential(governance: Governing, consumer: str) -> str:
    """A new bearer credential for ``consumer``: the log records its hash only, so it is shown once."""
    token, digest = new_credential()
    with governance.governing() as service:
        service.issue_credential(service.state.operator, consumer, digest)
    return token


def read_spec(path: Path) -> GovSpec:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return parse_spec(path)
