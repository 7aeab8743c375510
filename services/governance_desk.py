"""What changing governance takes, and nothing more: the log (one change at a time, under the hub's lock and
operator key), the key store (for what a change keeps), the settings, and the broker's provisioning.

The composition root (:meth:`services.hub.Hub.governance_desk`) assembles it; :mod:`services.gov_operations`
and :mod:`services.governance_bootstrap` take it instead of the whole hub.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from services.parts import CurrentGovernance
from sharehub.gov import GovernanceService
from sharehub.gov.log import EventLog
from sharehub.keys import LocalKeyStore
from sharehub.settings import Settings


class GovernanceLog(CurrentGovernance, Protocol):
    """Governance as its log has it, and changes to it one at a time. The key store and the log are opened
    on first use: a home gets its operator key (and its trust pinned) before either opens."""

    @property
    def log(self) -> EventLog: ...

    @property
    def keys(self) -> LocalKeyStore: ...

    def governing(self) -> AbstractContextManager[GovernanceService]: ...


@dataclass(frozen=True)
class GovernanceDesk:
    governance: GovernanceLog
    settings: Settings
    #: Every topic, principal and ACL the current state calls for (returns the topics made).
    provision: Callable[[], list[str]]
    #: The principals and ACLs of the hub's own services (they read the governance log).
    provision_services: Callable[[], None]
