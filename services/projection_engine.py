"""The hub's projection engine, as the projection worker's engine process builds it from the settings."""

from __future__ import annotations

import logging
import time

from projections.engine import LocalEngine
from projections.projector import Projector
from projections.read_model import ReadModelStore
from services.hub import Hub
from services.principals import PROJECTOR_PRINCIPAL
from sharehub.errors import ReadModelUnavailable

log = logging.getLogger("sharehub.projection")
#: Between two questions to a read-model database that does not answer.
WAIT_S = 2.0


def hub_engine() -> LocalEngine:
    """A projector over every consumer's read model, with the terms in force now already reconciled (new
    read models start here); governance is brought up to date before every batch."""
    hub = Hub(service=PROJECTOR_PRINCIPAL)
    try:
        stores = read_models_once_answering(hub)
        projector = Projector(hub.governance, hub.keys, stores)
        projector.reconcile()
    except BaseException:
        hub.close()
        raise
    return LocalEngine(projector, before_batch=hub.governance_state, on_close=hub.close, store_of=hub.store)


def read_models_once_answering(hub: Hub) -> dict[str, ReadModelStore]:
    """Every consumer's read model, waiting while their database does not answer (stopped, restarting):
    asked again every WAIT_S, so the worker goes on within seconds of its return instead of after its
    supervisor's growing pause."""
    waiting_since: float | None = None
    while True:
        try:
            stores = {consumer: hub.store(consumer) for consumer in hub.consumers()}
        except ReadModelUnavailable as exc:
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("waiting for the read models: %s", exc)
            time.sleep(WAIT_S)
            continue
        if waiting_since is not None:
            log.info("the read models answer again after %.0f s", time.monotonic() - waiting_since)
        return stores
