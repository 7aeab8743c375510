"""The broker principals of the hub's own services, in each hub's namespace (``<topic prefix>.<name>``).

Each process logs in with only what it needs (:mod:`services.broker_access` grants it); governance keeps
these names from agencies (:data:`sharehub.gov.rules.RESERVED_AGENCY_IDS`).
"""

from __future__ import annotations

#: The operator's tools (audit, rebuild, quarantine review).
HUB_PRINCIPAL = "hub"
#: The projection worker.
PROJECTOR_PRINCIPAL = "projector"
#: The query API.
API_PRINCIPAL = "api"
#: Governance: it writes the governance log and makes topics, principals and ACLs in the hub's namespace;
#: the broker's super user is used only once per hub, to create it.
GOVERNANCE_PRINCIPAL = "governance"
SERVICE_PRINCIPALS = (HUB_PRINCIPAL, PROJECTOR_PRINCIPAL, API_PRINCIPAL, GOVERNANCE_PRINCIPAL)
