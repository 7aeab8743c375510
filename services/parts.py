"""The narrow seams through which services reach the hub's shared parts (the hub, their composition root,
satisfies each): governance as the log has it, and the consumers' read models.

A service that reads governance once takes a :class:`~sharehub.gov.GovState`; one that must see changes
made while it runs (a replay, a review, the operations view of a long-running API) takes one of these.
"""

from __future__ import annotations

from typing import Protocol

from projections.read_model import ReadModelStore
from sharehub.gov import GovState


class CurrentGovernance(Protocol):
    """Governance as its log has it: at most ``governance_refresh_s`` old, or as of now (``refresh``)."""

    def governance_state(self, *, refresh: bool = False) -> GovState: ...


class KeptGovernance(Protocol):
    """Governance as it is kept current: by a follower thread if one runs (never waiting for the broker),
    otherwise read from the log when older than ``governance_refresh_s``."""

    @property
    def governance(self) -> GovState: ...


class ReadModels(Protocol):
    """Every consumer's read model, one store each, opened (and created if new) on first use."""

    def consumers(self) -> list[str]:
        """Every agency that holds an agreement, whatever its state."""

    def store(self, consumer: str) -> ReadModelStore: ...
