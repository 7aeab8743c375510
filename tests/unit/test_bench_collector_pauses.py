"""The bench client's own garbage collections, timed while a block runs (their pauses count in the
latencies the client measures), and no longer once it has ended."""

from __future__ import annotations

import gc

from bench.load import collector_pauses


def test_each_collection_inside_the_block_is_timed_and_none_after_it() -> None:
    with collector_pauses() as pauses:
        gc.collect()
        gc.collect(0)
    assert len(pauses) >= 2
    assert all(pause >= 0.0 for pause in pauses)
    counted = len(pauses)
    gc.collect()
    assert len(pauses) == counted, "the callback is removed when the block ends"
