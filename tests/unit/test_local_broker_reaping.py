"""The local brokers' record of the processes they launched is shared by every broker object of the
interpreter: a cluster stops its nodes from threads of its own, and each node reaps every broker that
exited. Several reaping at once must neither fail nor leave an exited process behind."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tooling.kafka_local import broker
from tooling.kafka_local.broker import LocalKafka

NODES = 3
#: Rounds of reaping at once, each over this many exited brokers: enough for the nodes' loops to overlap.
ROUNDS = 10
RECORDED = 5_000
#: Pids no process has (above the kernel's pid_max): the record's keys for the exited one.
FAKE_PIDS = range(10_000_000, 10_000_000 + RECORDED)


@pytest.fixture
def exited() -> Iterator[subprocess.Popen[bytes]]:
    """A process that has exited (and was waited for)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    yield proc
    for pid in FAKE_PIDS:
        broker._LAUNCHED.pop(pid, None)


def test_nodes_reaping_at_once_each_forget_the_exited_brokers_without_failing(
    tmp_path: Path, exited: subprocess.Popen[bytes]
) -> None:
    nodes = [LocalKafka(tmp_path / f"n{i}", tmp_path / "cache", 29000 + i) for i in range(NODES)]
    start = threading.Barrier(NODES)
    failures: list[BaseException] = []
    for _ in range(ROUNDS):
        # Recorded as many brokers not yet seen to have exited.
        broker._LAUNCHED.update((pid, exited) for pid in FAKE_PIDS)
        failures += _reap_at_once(nodes, start)
        assert not any(pid in broker._LAUNCHED for pid in FAKE_PIDS)
    assert failures == []


def _reap_at_once(nodes: list[LocalKafka], start: threading.Barrier) -> list[BaseException]:
    failures: list[BaseException] = []

    def reap(node: LocalKafka) -> None:
        start.wait()
        try:
            node._reap(set())
        except BaseException as exc:  # noqa: BLE001 - reported below, whatever it is
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the loops interleave
    try:
        threads = [threading.Thread(target=reap, args=(node,)) for node in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    return failures
