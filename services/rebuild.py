"""Rebuilding a consumer's read model from the log, and its state hash.

:func:`replay` runs a fresh projector over every dataset topic from offset 0 to the end it finds, into a
store of its own, under governance as the log has it now (agreements, row filters, erasures). A rebuild
then swaps that store's contents into the live read model in one transaction
(:meth:`~projections.read_model.ReadModelStore.replace_with`). The projection worker must not run
meanwhile: it would keep writing to the read model from positions the swap moves.

The state hash (:meth:`~projections.read_model.ReadModelStore.state_hash`) depends only on what the consumer
can see; an auditor recomputes it with ``sharehub audit state-hash --consumer C``, which replays into a
scratch store and swaps nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from projections.projector import LogMessage, Projector
from projections.read_model import ReadModelStore
from services import processes
from services.parts import CurrentGovernance, ReadModels
from sharehub.codec import DatasetKeys
from sharehub.errors import InputError
from sharehub.kafka import KafkaAccess, read_topic
from sharehub.settings import Settings


@dataclass(frozen=True)
class ReplayParts:
    """What a replay reads: governance (as of the replay's start), the datasets' keys, the dataset topics
    (with the operator tools' broker login), and the settings of the read models."""

    governance: CurrentGovernance
    keys: DatasetKeys
    kafka: KafkaAccess
    settings: Settings


@dataclass(frozen=True)
class Replayed:
    consumer: str
    events: int
    rows: int
    quarantined: int
    state_hash: str


def replay(parts: ReplayParts, consumer: str, store: ReadModelStore) -> Replayed:
    """Project every dataset topic from its start into ``store`` (empty) for ``consumer`` alone."""
    governance = parts.governance.governance_state(refresh=True)
    governance.agency(consumer)
    projector = Projector(governance, parts.keys, {consumer: store})
    projector.reconcile()  # records the terms the rows are projected under
    events = quarantined = 0
    for topic in projector.topics:
        for batch in read_topic(parts.kafka, topic):
            quarantined += _apply(projector, [LogMessage.of(r) for r in batch])
            events += len(batch)
    projector.reconcile()  # an agreement that ended meanwhile takes its rows along
    return Replayed(consumer, events, store.count(), quarantined, store.state_hash())


def _apply(projector: Projector, batch: list[LogMessage]) -> int:
    decision = projector.decide(batch)
    projector.commit(decision)
    return len(decision.quarantined)


def scratch_store(settings: Settings, consumer: str, directory: Path) -> ReadModelStore:
    """An empty store beside the live one: a SQLite file in ``directory``, or its own PostgreSQL schema."""
    url = settings.read_model_url_template
    if url.startswith("sqlite"):
        url = f"sqlite:///{directory.resolve()}/{{consumer}}.db"
    store = ReadModelStore(url, f"{consumer}__rebuild", password_file=settings.read_model_password_file)
    store.drop()
    store.create()
    return store


def rebuild(parts: ReplayParts, read_models: ReadModels, consumer: str) -> Replayed:
    """Replay into a fresh store and swap it into the consumer's read model atomically."""
    home = parts.settings.home
    if processes.running_pid(home, "projector") is not None:
        raise InputError("the projection worker is running: stop it first ('sharehub demo down' or kill it)")
    with tempfile.TemporaryDirectory(prefix="sharehub-rebuild-", dir=home) as directory:
        fresh = scratch_store(parts.settings, consumer, Path(directory))
        try:
            replayed = replay(parts, consumer, fresh)
            live = read_models.store(consumer)
            live.replace_with(fresh)
            if live.state_hash() != replayed.state_hash:
                raise RuntimeError("the swapped read model does not hash like the replay")  # a bug, loudly
        finally:
            fresh.drop()
            fresh.close()
    return replayed


def audit_hash(parts: ReplayParts, consumer: str) -> Replayed:
    """The state hash a rebuild would give now, computed in a scratch store; nothing live changes."""
    with tempfile.TemporaryDirectory(prefix="sharehub-audit-", dir=parts.settings.home) as directory:
        scratch = scratch_store(parts.settings, consumer, Path(directory))
        try:
            return replay(parts, consumer, scratch)
        finally:
            scratch.drop()
            scratch.close()


@contextmanager
def scratch(settings: Settings, consumer: str) -> Iterator[ReadModelStore]:
    """An empty scratch store for ``consumer`` (:func:`scratch_store`), dropped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="sharehub-audit-", dir=settings.home) as directory:
        store = scratch_store(settings, consumer, Path(directory))
        try:
            yield store
        finally:
            store.drop()
            store.close()
