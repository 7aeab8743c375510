"""Which signing keys the hub holds for an agency in its custody, as the governance log says, publicly.

An agency a hub YAML lists as ``custodial`` has its signing key made and kept by the hub
(:func:`sharehub.gov.apply.plan`): that key is registered under the id ``<agency>/custody/<n>``, while every
key an agency's own site makes is ``<agency>/sign/<label>`` (:mod:`connectors.site`; a registration request
naming a custody key is refused). The key id is signed twice over: by the operator in the governance event
that registers the key, and by the producer in every envelope's header (``signer_key_id``). So whoever reads
the log with public keys only (the auditor) can tell an event the hub sealed on an agency's behalf from one
the agency sealed itself, and no envelope's wire format changes: events sealed before this convention keep
verifying as they are (a custodial key registered earlier as ``<agency>/sign/1`` is counted as the site's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sharehub.gov.models import AgencyRecord

#: The middle segment of a custody key's id.
CUSTODY = "custody"
#: The middle segment of a key an agency's own site made.
SITE = "sign"


def custody_key_id(agency: str, number: int = 1) -> str:
    """The id of the ``number``-th signing key the hub makes and holds for ``agency``."""
    return f"{agency}/{CUSTODY}/{number}"


def sealed_in_custody(signer_key_id: str) -> bool:
    """Whether an event signed with ``signer_key_id`` was sealed by the hub on the agency's behalf."""
    parts = signer_key_id.split("/")
    return len(parts) == 3 and parts[1] == CUSTODY


def is_site_key_id(agency: str, key_id: str) -> bool:
    """Whether ``key_id`` names a key ``agency``'s own site made (what a registration request may name)."""
    parts = key_id.split("/")
    return len(parts) == 3 and parts[0] == agency and parts[1] == SITE and bool(parts[2])


def in_custody(
    agency: AgencyRecord | None, holds: Callable[[str], bool], at: dt.datetime | None = None
) -> bool:
    """Whether a hub that ``holds`` (by key id) these signing keys acts for ``agency``: it holds one of the
    agency's keys that has not ended by ``at`` (now). Only then does the hub keep the agency's login."""
    if agency is None:
        return False
    moment = at or dt.datetime.now(dt.UTC)
    return any((key.until is None or key.until > moment) and holds(key.key_id) for key in agency.keys)
