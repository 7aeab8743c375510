"""Generations of a dataset in one read model (blue/green), against real SQLite and real PostgreSQL: a
generation built beside the served one is invisible until it is swapped in, the swap waits until it has
caught up, and the generation swapped out leaves nothing behind."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid

import pytest
from sqlalchemy import func, select

from projections.read_model import ReadModelStore
from projections.read_model_tables import Generations, records, subject_records
from tests.contract.test_read_model_contract import row

DATASET, TOPIC = "party-members", "sharehub.party-members"
NARROW = '{"fields":["status"],"row_filter":null}'
WIDE = '{"fields":["name","status"],"row_filter":null}'


def served_under_narrow_terms(store: ReadModelStore, keys: list[str]) -> None:
    store.reset_dataset(DATASET, TOPIC, terms="narrow", agreement_id="ag-1", granted=NARROW)
    store.apply([row(k, status="OFFICIAL") for k in keys], {(TOPIC, 0): len(keys)})


def stored_rows(store: ReadModelStore) -> dict[str, int]:
    """Storage name → rows kept under it, whatever is served."""
    query = select(records.c.dataset, func.count()).group_by(records.c.dataset)
    with store.engine.connect() as conn:
        return {name: int(n) for name, n in conn.execute(query)}


def test_a_generation_built_is_invisible_until_it_is_swapped_in(store: ReadModelStore) -> None:
    served_under_narrow_terms(store, ["a", "b"])
    name = store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    assert store.generations()[DATASET] == Generations(DATASET, building=name)
    assert store.recorded_terms() == {DATASET: "wide"} and store.granted(DATASET) == WIDE

    wide = [row(k, status="OFFICIAL", name=k.upper()) for k in ("a", "b")]
    assert store.apply(wide[:1], {(TOPIC, 0): 1}, building=(DATASET, TOPIC))
    assert store.get(DATASET, "a") == {"key": "a", "fields": {"status": "OFFICIAL"}}, (
        "the old rows stay served"
    )
    assert store.count(DATASET) == 2 and store.datasets() == [(DATASET, 2)] and store.count() == 2
    assert store.positions() == {(TOPIC, 0): 2} and store.positions(building=TOPIC) == {(TOPIC, 0): 1}
    assert not store.swap_built(DATASET, TOPIC), "behind the served generation in partition 0: not yet"

    assert store.apply(wide[1:], {(TOPIC, 0): 2}, building=(DATASET, TOPIC))
    assert store.swap_built(DATASET, TOPIC)
    assert store.get(DATASET, "a") == {"key": "a", "fields": {"status": "OFFICIAL", "name": "A"}}
    assert store.generations()[DATASET] == Generations(name, retired=DATASET)
    assert store.positions() == {(TOPIC, 0): 2} and store.positions(building=TOPIC) == {}
    assert store.versions(DATASET) == {"a": 1, "b": 1} and store.count() == 2

    assert store.delete_retired(chunk=1) > 0
    assert store.generations()[DATASET] == Generations(name), "a retired generation with no rows is forgotten"
    assert stored_rows(store) == {name: 2}


def test_a_swapped_in_generation_hashes_as_rows_projected_there_from_the_start(
    store: ReadModelStore, url_template: str
) -> None:
    served_under_narrow_terms(store, ["a", "b"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    wide = [row(k, status="OFFICIAL", name=k.upper()) for k in ("a", "b")]
    store.apply(wide, {(TOPIC, 0): 2}, building=(DATASET, TOPIC))
    assert store.swap_built(DATASET, TOPIC)
    store.delete_retired()
    fresh = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    fresh.create()
    try:
        fresh.apply(wide, {(TOPIC, 0): 2})
        assert fresh.state_hash() == store.state_hash()
    finally:
        fresh.drop()
        fresh.close()


def test_new_rows_of_the_live_stream_reach_the_served_generation_and_an_erasure_every_one(
    store: ReadModelStore,
) -> None:
    served_under_narrow_terms(store, ["a"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row("a", status="OFFICIAL", name="A")], {(TOPIC, 0): 1}, building=(DATASET, TOPIC))
    store.apply([row("c", status="OFFICIAL", name="C")], {(TOPIC, 0): 2})
    store.apply([row("c", status="OFFICIAL", name="C")], {(TOPIC, 0): 2}, building=(DATASET, TOPIC))
    assert store.count(DATASET) == 2, "the served generation takes the live stream while one is built"

    erased = row("a").subject_ref
    store.apply([], {(TOPIC, 0): 3}, purges=[(DATASET, erased)])
    store.apply([], {(TOPIC, 0): 3}, purges=[(DATASET, erased)], building=(DATASET, TOPIC))
    assert store.swap_built(DATASET, TOPIC)
    assert store.get(DATASET, "a") is None and store.count(DATASET) == 1
    assert stored_rows(store) == {DATASET: 1, DATASET + "~": 1}, "c in each; the erased a in neither"
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(records.c.record_key == "a")).scalar_one() == 0


def test_an_erasure_reaches_a_retired_generation_before_its_rows_are_deleted(store: ReadModelStore) -> None:
    served_under_narrow_terms(store, ["a", "b"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row(k, name=k) for k in ("a", "b")], {(TOPIC, 0): 2}, building=(DATASET, TOPIC))
    assert store.swap_built(DATASET, TOPIC)
    store.apply([], {(TOPIC, 0): 3}, purges=[(DATASET, row("a").subject_ref)])
    assert sum(stored_rows(store).values()) == 2, "one row of b in each generation, none of a"


def test_a_purge_takes_every_generation_and_a_generation_given_up_takes_no_more_rows(
    store: ReadModelStore,
) -> None:
    served_under_narrow_terms(store, ["a", "b"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row("a", name="A")], {(TOPIC, 0): 1}, building=(DATASET, TOPIC))
    assert store.purge_dataset(DATASET, TOPIC) == 3
    assert stored_rows(store) == {} and store.generations() == {}
    assert store.positions(building=TOPIC) == {}
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subject_records)).scalar_one() == 0

    assert not store.apply([row("b", name="B")], {(TOPIC, 0): 2}, building=(DATASET, TOPIC))
    assert stored_rows(store) == {} and store.positions(building=TOPIC) == {}


def test_a_reset_takes_every_generation_and_the_building_positions(store: ReadModelStore) -> None:
    served_under_narrow_terms(store, ["a"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row("a", name="A")], {(TOPIC, 0): 1}, building=(DATASET, TOPIC))
    assert store.reset_dataset(DATASET, TOPIC, terms="narrower", agreement_id="ag-3", granted=NARROW) == 2
    assert stored_rows(store) == {} and store.generations() == {DATASET: Generations(DATASET)}
    assert store.positions() == {} and store.positions(building=TOPIC) == {}


def test_a_generation_is_built_beside_one_served_alone(store: ReadModelStore) -> None:
    served_under_narrow_terms(store, ["a"])
    name = store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row("a", name="A")], {(TOPIC, 0): 1}, building=(DATASET, TOPIC))
    again = store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    assert again == name, "a second worker reconciling the same terms finds the generation opened"
    assert store.positions(building=TOPIC) == {(TOPIC, 0): 1}, "and leaves it as it stands"
    with pytest.raises(ValueError, match="no served generation alone"):
        store.start_building(DATASET, TOPIC, terms="wider", agreement_id="ag-3", granted=WIDE)
    with pytest.raises(ValueError, match="no served generation alone"):
        store.start_building("unknown", "t", terms="x", agreement_id="ag-3", granted=WIDE)


def test_a_read_model_made_before_generations_gets_their_columns_and_serves_its_rows(
    store: ReadModelStore,
) -> None:
    store.reset_dataset(DATASET, TOPIC, terms="narrow", agreement_id="ag-1")
    store.apply([row("a", status="OFFICIAL")], {(TOPIC, 0): 1})
    schema = "" if store.embedded else f'"rm_{store.consumer.replace("-", "_")}".'
    with store.engine.begin() as conn:
        for name in ("granted", "stored_as", "building_as", "retired_as"):
            conn.exec_driver_sql(f"ALTER TABLE {schema}grants DROP COLUMN {name}")
    store.create()
    assert store.generations() == {DATASET: Generations(DATASET)} and store.granted(DATASET) is None
    assert store.get(DATASET, "a") == {"key": "a", "fields": {"status": "OFFICIAL"}}


def test_two_workers_swapping_at_once_swap_once_and_neither_fails(
    store: ReadModelStore, url_template: str
) -> None:
    served_under_narrow_terms(store, ["a"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row("a", name="A")], {(TOPIC, 0): 1}, building=(DATASET, TOPIC))
    workers = [ReadModelStore(url_template, store.consumer) for _ in range(2)]
    start = threading.Barrier(len(workers))

    def swap(worker: ReadModelStore) -> bool:
        start.wait()
        return worker.swap_built(DATASET, TOPIC)

    try:
        with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
            swapped = sorted(pool.map(swap, workers))
    finally:
        for worker in workers:
            worker.close()
    assert swapped == [False, True]
    assert store.generations()[DATASET] == Generations(DATASET + "~", retired=DATASET)


def test_a_retired_generation_smaller_than_a_chunk_goes_in_one_transaction_whatever_the_budget(
    store: ReadModelStore,
) -> None:
    served_under_narrow_terms(store, ["a", "b"])
    store.start_building(DATASET, TOPIC, terms="wide", agreement_id="ag-2", granted=WIDE)
    store.apply([row(k, name=k) for k in ("a", "b")], {(TOPIC, 0): 2}, building=(DATASET, TOPIC))
    assert store.swap_built(DATASET, TOPIC)
    assert store.delete_retired(budget_s=0.0) == 4, "two rows and their two pairs"
    assert store.generations()[DATASET].retired is None
    assert stored_rows(store) == {DATASET + "~": 2}
