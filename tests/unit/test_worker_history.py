"""The projection worker's history timer: each dataset pruned by the horizon it is given; horizons that
cannot be known this round leave the read models, and the worker, as they were."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path

from projections.engine import LocalEngine
from projections.worker import ProjectionWorker
from services.hub import Hub
from sharehub.errors import BrokerError
from tests.unit.test_projector import projector, two_versions


def worker_with_history(
    hub: Hub, tmp_path: Path, horizons: Callable[[], Mapping[str, dt.datetime]]
) -> tuple[ProjectionWorker, list[dt.datetime]]:
    """A worker (its broker never reached) over a real engine whose read models hold two versions of one
    member, and the times those versions occurred."""
    engine = projector(hub)
    moments = two_versions(hub, engine)
    worker = ProjectionWorker(
        LocalEngine(engine), "127.0.0.1:9", group="g", quarantine_topic="q", datadir=tmp_path / "worker",
        history_horizons=horizons,
    )  # fmt: skip
    return worker, moments


def test_the_timer_prunes_each_dataset_by_its_horizon_and_leaves_current_rows(
    offline_hub: Hub, tmp_path: Path
) -> None:
    given: dict[str, dt.datetime] = {}
    worker, moments = worker_with_history(offline_hub, tmp_path, lambda: given)
    store = offline_hub.store("dongthap-ppc")
    asyncio.run(worker._prune_history())
    assert store.version_count("party-members") == 2, "no horizon: every version stays"

    given["documents"] = moments[1] + dt.timedelta(seconds=1)
    asyncio.run(worker._prune_history())
    assert store.version_count("party-members") == 2, "another dataset's horizon does not reach it"

    given["party-members"] = moments[1] + dt.timedelta(seconds=1)
    asyncio.run(worker._prune_history())
    assert store.version_count("party-members") == 1
    current = store.get("party-members", "PM0000000001")
    assert current is not None and current["fields"]["status"] == "OFFICIAL"
    assert worker.restart_reasons == []


def test_horizons_that_cannot_be_known_prune_nothing_and_the_worker_carries_on(
    offline_hub: Hub, tmp_path: Path
) -> None:
    def unknowable() -> Mapping[str, dt.datetime]:
        raise BrokerError("the governance log does not answer")

    worker, _ = worker_with_history(offline_hub, tmp_path, unknowable)
    asyncio.run(worker._prune_history())
    assert offline_hub.store("dongthap-ppc").version_count("party-members") == 2
    assert worker.restart_reasons == [], "pruning waits for the next round; projecting goes on"
