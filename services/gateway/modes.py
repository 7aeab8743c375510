"""The gateway's two modes, chosen by the home it runs in (``SHAREHUB_HOME``).

- **At an agency's site** (a connected site, :mod:`connectors.sdk`): it publishes as the site's agency, signs
  records with the site's key (the passphrase from ``--passphrase-file``), takes the agency's envelopes, and
  lets in only the agency's own credential (:class:`~services.gateway.guard.SiteCredential`).
- **At the hub** (custodial mode): it takes JSON records of the agencies in the hub's custody only
  (:meth:`services.hub.Hub.in_custody`; 403 for the others) and seals them with the custody key the hub
  holds for each; those events say so (:mod:`sharehub.gov.custody`) and the audit counts them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connectors.sdk import CREDENTIAL_FILE, SiteSession, is_connected, open_publisher
from services.api.auth import CredentialCheck
from services.gateway.app import Gateway
from services.gateway.guard import RateLimit, SiteCredential
from services.gateway.ingest import RETENTION, Ingest
from services.hub import Hub
from sharehub.kafka import broker_answers


@dataclass(frozen=True)
class Limits:
    #: Requests a second per agency on average, and at once.
    rate: float = 20.0
    burst: int = 40
    #: Bytes of a request body at most.
    max_body: int = 8 * 1024 * 1024
    #: How long a finished request's Idempotency-Key is remembered.
    retention: dt.timedelta = RETENTION
    #: How long a request waits for the hub's key service before it is answered 503 ``unavailable`` (its
    #: client asks again, same key; an HTTP client would give up long before the SDK's own patience).
    key_service_patience_s: float = 10.0


def at_site(home: Path, passphrase: bytes, limits: Limits) -> tuple[Gateway, Callable[[], None]]:
    """The gateway of the connected site at ``home``, and what closes it."""
    session = SiteSession(home, passphrase)
    agency = session.site.agency
    governance = session.governance()
    ingest = Ingest(
        home, lambda _agency, dataset: open_publisher(
            home, dataset, passphrase, key_service_patience_s=limits.key_service_patience_s
        ), custodial=False,
        retention=limits.retention,
    )  # fmt: skip
    gateway = Gateway(
        ingest=ingest,
        credentials=SiteCredential(agency, home / CREDENTIAL_FILE),
        owner=lambda dataset: governance.dataset(dataset).owner,
        may_seal_for=lambda caller: caller == agency,
        rate=RateLimit(limits.rate, limits.burst),
        max_body=limits.max_body,
        broker_check=lambda: broker_answers(session.kafka),
    )
    return gateway, ingest.close


def at_hub(hub: Hub, limits: Limits) -> tuple[Gateway, Callable[[], None]]:
    """The hub's custodial gateway, and what closes it (``hub`` too)."""
    hub.follow_governance()  # credentials and owners are read from the state the follower keeps
    ingest = Ingest(hub.home, hub.publisher, custodial=True, retention=limits.retention)
    gateway = Gateway(
        ingest=ingest,
        credentials=CredentialCheck(hub),
        owner=lambda dataset: hub.governance.dataset(dataset).owner,
        may_seal_for=hub.in_custody,
        rate=RateLimit(limits.rate, limits.burst),
        max_body=limits.max_body,
        broker_check=lambda: broker_answers(hub.kafka),
    )

    def close() -> None:
        try:
            ingest.close()
        finally:
            hub.close()

    return gateway, close


def for_home(
    home: Path, passphrase: Callable[[], bytes], limits: Limits
) -> tuple[Gateway, Callable[[], None]]:
    """The site's gateway if ``home`` is a connected site, else the hub's (custodial)."""
    if is_connected(home):
        return at_site(home, passphrase(), limits)
    return at_hub(Hub(), limits)
