"""Blue/green for new terms that only widen a grant: the rows served stay served while the new ones are built.

New terms for a consumer's dataset used to reset its rows and backfill them from the log: for as long as the
backfill ran (minutes, at millions of records), the consumer saw a dataset filling up from nothing. Terms that
only widen what is granted (more fields, the same row filter; a replay of what was refused) need not take
anything away first. The read model opens a second **generation** of the dataset beside the served one, under
another storage name in the same tables (:func:`projections.read_model_tables.other_storage`):

- the served generation goes on taking the live stream (under the terms active now, which withhold nothing
  it holds) and goes on answering every read;
- the building generation is a projection target of its own (:class:`BuildingGeneration`): backfilled from
  the dataset's start beside the live stream, then kept up to date by it partition by partition, as a reset
  read model is;
- once it stands where the served one does in every partition of the topic (whichever worker projects them),
  one transaction makes it the served one (:meth:`ReadModelStore.swap_built`): a reader sees the old rows
  before and the new ones after, never a mix and never fewer;
- the generation swapped out is deleted a chunk at a time, between live batches
  (:meth:`ReadModelStore.delete_retired`).

Terms that narrow what is granted (fewer fields, another row filter, a field classified above the consumer's
clearance), and any change while a generation is built, take the old path: every generation goes first, so
nothing the new terms withhold is ever served. An agreement that ends purges every generation (R5).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from projections.read_model import ReadModelStore
from projections.read_model_tables import ChainHeads, Row, TopicPartition


def target_of(consumer: str, dataset: str) -> str:
    """The projection target that builds ``consumer``'s new generation of ``dataset``."""
    return f"{consumer}/{dataset}"


def described(target: str) -> str:
    """A projection target in a sentence's words: a consumer's read model, or a generation it builds."""
    consumer, _, dataset = target.partition("/")
    return f"{consumer}'s new generation of {dataset}" if dataset else f"{consumer}'s read model"


def granted(fields: Iterable[str], row_filter: str | None) -> str:
    """What terms grant, as recorded beside them: the fields the consumer sees and the row filter."""
    return json.dumps({"fields": sorted(fields), "row_filter": row_filter}, separators=(",", ":"))


def only_widens(recorded: str | None, wanted: str) -> bool:
    """Whether terms granting ``wanted`` withhold nothing that rows projected under ``recorded`` hold (the
    same row filter, every field still granted). Not when nothing was recorded."""
    if recorded is None:
        return False
    before, after = json.loads(recorded), json.loads(wanted)
    return bool(before["row_filter"] == after["row_filter"] and set(before["fields"]) <= set(after["fields"]))


class BuildingGeneration:
    """The generation of one consumer's dataset being built, as a projection target: a read model of that
    dataset alone, with positions and chain heads of its own. Once the generation is swapped in or given up,
    it writes nothing, and stands where the served rows do (so nothing backfills it)."""

    def __init__(self, store: ReadModelStore, consumer: str, dataset: str, topic: str) -> None:
        self.store = store
        #: The agency whose terms the generation is projected under (its read model may be named otherwise,
        #: as a rebuild's scratch store is).
        self.consumer = consumer
        self.dataset = dataset
        self.topic = topic

    @property
    def target(self) -> str:
        return target_of(self.consumer, self.dataset)

    def positions(self) -> dict[TopicPartition, int]:
        """Partition of the topic → the next offset to apply to the generation."""
        built = self.store.positions(building=self.topic)
        if built or self.building():
            return built
        return {tp: at for tp, at in self.store.positions().items() if tp[0] == self.topic}

    def building(self) -> bool:
        gen = self.store.generations().get(self.dataset)
        return gen is not None and gen.building is not None

    def chain_heads(self, tp: TopicPartition) -> ChainHeads:
        return self.store.chain_heads(tp, building=True)

    def apply(
        self,
        rows: Sequence[Row],
        new_positions: dict[TopicPartition, int],
        *,
        purges: Sequence[tuple[str, str]] = (),
        exclusions: Sequence[tuple[str, str]] = (),
        heads: ChainHeads | None = None,
    ) -> bool:
        return self.store.apply(
            rows,
            new_positions,
            purges=purges,
            exclusions=exclusions,
            heads=heads,
            building=(self.dataset, self.topic),
        )
