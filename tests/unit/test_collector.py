"""The garbage collector's settings for the hub's long-running processes (in a child interpreter each, so
this test process keeps its own)."""

from __future__ import annotations

import json
import subprocess
import sys

from sharehub.collector import STREAMING_YOUNG_THRESHOLD

PROBE = """
import gc, json
from sharehub import collector
made_at_start = [[i] for i in range(10_000)]
before = gc.get_threshold()
collector.{call}()
print(json.dumps({{"frozen": gc.get_freeze_count(), "before": before, "after": gc.get_threshold()}}))
"""


def probe(call: str) -> dict[str, list[int] | int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(call=call)], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, list[int] | int] = json.loads(out)
    return result


def test_what_startup_made_leaves_the_collectors_sight_and_thresholds_stay() -> None:
    seen = probe("freeze_startup_objects")
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000
    assert seen["after"] == seen["before"]


def test_a_batch_streaming_process_also_collects_its_young_generation_less_often() -> None:
    seen = probe("collect_for_batches")
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000
    before, after = seen["before"], seen["after"]
    assert isinstance(before, list) and isinstance(after, list)
    assert after == [STREAMING_YOUNG_THRESHOLD, *before[1:]]
