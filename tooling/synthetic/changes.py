"""Later events for earlier records, interleaved into a stream of records in constant memory.

A change is a full record with the same key in a later state (a transfer, a promotion, progress on a
task…). Which earlier record changes is drawn from a reservoir sample (Algorithm R) of every record
emitted so far: each earlier record is equally likely to be in it whatever the length of the stream,
memory is bounded by the reservoir, and a record that changes twice changes from its latest state, so
every record's history stays coherent.

Why a reservoir rather than recomputing record ``i`` from ``(seed, i)``: the generators carry bounded
state from record to record (party-cell cursors, national-id serials) that keeps ids unique and cells
full, and the reservoir leaves that untouched. Changes draw from a random stream of their own, so the
initial records are the same, byte for byte, whatever the change rate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Record = dict[str, Any]
#: ``change(rng, record)``: the record's next state as a new dict, or None when it cannot change any more.
Change = Callable[[random.Random, Record], Record | None]

#: Records kept to draw changes from: about 4 MB of party members, whatever the count.
RESERVOIR_SIZE = 4096
#: A rate above this is a typo, not a dataset: each record would change more than ten times on average.
MAX_RATE = 10.0


def check_rate(rate: float) -> None:
    if not 0.0 <= rate <= MAX_RATE:
        raise ValueError(f"changes must be between 0 and {MAX_RATE:g} per record, got {rate}")


def with_changes(
    records: Iterable[Record],
    rate: float,
    rng: random.Random,
    change: Change,
    reservoir_size: int = RESERVOIR_SIZE,
) -> Iterator[Record]:
    """Yield ``records``, each followed by ``rate`` changes of earlier records on average."""
    if rate == 0:
        yield from records
        return
    whole, fraction = divmod(rate, 1.0)
    reservoir: list[Record] = []
    for seen, record in enumerate(records):
        yield record
        if len(reservoir) < reservoir_size:
            reservoir.append(record)
        else:
            slot = rng.randrange(seen + 1)
            if slot < reservoir_size:
                reservoir[slot] = record
        for _ in range(int(whole) + (rng.random() < fraction)):
            slot = rng.randrange(len(reservoir))
            changed = change(rng, reservoir[slot])
            if changed is not None:
                reservoir[slot] = changed
                yield changed
