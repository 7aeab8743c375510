"""The hub's projection engine, as the projection worker's engine process builds it from the settings."""

from __future__ import annotations

from projections.engine import LocalEngine
from projections.projector import Projector
from services.hub import Hub
from services.principals import PROJECTOR_PRINCIPAL


def hub_engine() -> LocalEngine:
    """A projector over every consumer's read model, with the terms in force now already reconciled (new
    read models start here); governance is brought up to date before every batch."""
    hub = Hub(service=PROJECTOR_PRINCIPAL)
    try:
        stores = {consumer: hub.store(consumer) for consumer in hub.consumers()}
        projector = Projector(hub.governance, hub.keys, stores)
        projector.reconcile()
    except BaseException:
        hub.close()
        raise
    return LocalEngine(projector, before_batch=hub.governance_state, on_close=hub.close)
