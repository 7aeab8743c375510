"""Publishing from several processes at an agency's site, each its share of the dataset's lanes
(:mod:`connectors.lane_split`): against the real broker and a real API process (the key service), with the
site's own key in every process. What lands must be what one process would have sent: every record once,
each lane's events in the source's order on an unbroken chain; refusals by line number; a process that
dies is one clear error.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.jsonl_source import BadLine, Line
from connectors.sdk import open_lane_split_publisher
from services.hub import Hub
from sharehub.codec import Opened
from sharehub.errors import InputError, PublishingProcessError, WrongSecret
from tests.e2e.test_agency_sdk import DATASET, PASSPHRASE, _site, own_sites_hub, site_only_env
from tests.kafka_helpers import sharehub, topic_messages
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka

hub = pytest.fixture(own_sites_hub, name="hub")


def _lanes_in_order(hub: Hub) -> dict[int, list[str]]:
    """Lane → the record keys of its events, in the lane's order; every event opened, its chain judged."""
    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    messages = sorted(topic_messages(hub, topic))
    opened = hub.codec(DATASET).open_many([(lane, raw) for lane, _, raw in messages])
    assert all(isinstance(o, Opened) for o in opened), [o for o in opened if not isinstance(o, Opened)][:1]
    lanes: dict[int, list[str]] = {}
    for (lane, _, _), event in zip(messages, opened, strict=True):
        assert isinstance(event, Opened) and event.record_key is not None
        lanes.setdefault(lane, []).append(event.record_key)
    return lanes


def test_two_processes_publish_every_record_once_each_lane_in_the_sources_order(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    members: list[Any] = list(generate_party_members(1500, seed=21))
    members[99] = {**members[99], "member_id": 7}  # the key field's type is wrong: refused, by number
    with open_lane_split_publisher(home, DATASET, PASSPHRASE, 2) as publisher:
        assert publisher.processes == 2
        assert len(multiprocessing.active_children()) == 2
        report = publisher.publish_records(members)
    assert not multiprocessing.active_children(), "closing stops every process"
    with pytest.raises(PublishingProcessError, match="this publisher is closed"):
        publisher.publish_records(members[:1])
    assert report.published == 1499 and report.skipped == 0
    assert [bad.number for bad in report.rejected] == [100] and "member_id" in report.rejected[0].reason
    lanes = _lanes_in_order(hub)
    assert len(lanes) > 2, "the dataset has more lanes than processes: each process owns several"
    sent = [m["member_id"] for n, m in enumerate(members, start=1) if n != 100]
    assert sorted(key for keys in lanes.values() for key in keys) == sorted(sent)
    where = {key: lane for lane, keys in lanes.items() for key in keys}
    for lane, keys in lanes.items():
        assert keys == [key for key in sent if where[key] == lane], f"lane {lane} is out of source order"


def test_a_source_that_fails_part_way_sends_the_chunks_read_before_and_the_publisher_goes_on(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    members: list[Any] = list(generate_party_members(1200, seed=22))

    def failing_source() -> Iterator[Line | BadLine]:
        yield from (Line(n, r) for n, r in enumerate(members[:700], start=1))
        raise OSError("the source file went away")

    with open_lane_split_publisher(home, DATASET, PASSPHRASE, 2) as publisher:
        with pytest.raises(OSError, match="went away"):
            publisher.publish_lines(failing_source())
        report = publisher.publish_records(members[700:])
    assert report.published == 500
    # Every chunk read whole before the failure was sent (the one it cut short was never read whole).
    assert sorted(k for keys in _lanes_in_order(hub).values() for k in keys) == sorted(
        m["member_id"] for m in members[:512] + members[700:]
    )


def test_a_publishing_process_that_dies_is_one_clear_error_and_the_chains_go_on_after_it(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    members = list(generate_party_members(6000, seed=23))

    def source() -> Iterator[Line | BadLine]:
        for number, member in enumerate(members, start=1):
            if number == 2000:
                os.kill(multiprocessing.active_children()[0].pid or 0, signal.SIGKILL)
            yield Line(number, member)

    publisher = open_lane_split_publisher(home, DATASET, PASSPHRASE, 2)
    try:
        with pytest.raises(PublishingProcessError, match=r"the process publishing lanes \[.*\] exited"):
            publisher.publish_lines(source())
        assert not multiprocessing.active_children(), "the other process was stopped too"
        with pytest.raises(PublishingProcessError, match="stopped after an error"):
            publisher.publish_records(members[:1])
    finally:
        publisher.close()
    # What the lanes hold (what each process had sent; the other flushed what it was handed) are whole
    # events on unbroken chains, which a new publisher continues.
    landed = sum(len(keys) for keys in _lanes_in_order(hub).values())
    assert landed < 6000
    with open_lane_split_publisher(home, DATASET, PASSPHRASE, 2) as again:
        assert again.publish_records(members).published == 6000
    assert sum(len(keys) for keys in _lanes_in_order(hub).values()) == landed + 6000


def test_a_process_that_cannot_open_the_sites_key_is_the_clear_error_of_that_and_none_stays(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    """With a password login the starting process opens no key of the site: each publishing process opens
    the signing key itself, and its refusal is the publish's error, as with one process."""
    home = _site(hub, tmp_path, api, password=True)
    with pytest.raises(WrongSecret, match="does not open"):
        open_lane_split_publisher(home, DATASET, b"not the site's passphrase", 2)
    assert not multiprocessing.active_children()
    with open_lane_split_publisher(home, DATASET, PASSPHRASE, 2) as publisher:  # the right one: it publishes
        assert publisher.publish_records(list(generate_party_members(10, seed=25))).published == 10


def test_a_process_count_out_of_range_is_refused_before_anything_starts(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    for count in (0, 65):
        with pytest.raises(InputError, match="publish from 1 to 64 processes"):
            open_lane_split_publisher(home, DATASET, PASSPHRASE, count)
    assert not multiprocessing.active_children()


def test_the_command_line_publishes_a_file_from_processes_exactly_once(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    from_site = site_only_env(_site(hub, tmp_path, api))
    source = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(900, seed=24), source)
    command = [sys.executable, "-m", "services", "publish", str(source), "--as", "coc", "--dataset", DATASET,
               "--processes", "2", "--quiet"]  # fmt: skip
    first = subprocess.run(command, env=from_site, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "published 900 events" in first.stderr
    again = subprocess.run(command, env=from_site, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "published before: nothing sent again" in again.stderr
    assert sum(len(keys) for keys in _lanes_in_order(hub).values()) == 900

    at_the_hub = sharehub(
        hub, "publish", str(source), "--as", "coc", "--dataset", DATASET, "--processes", "2"
    )
    assert at_the_hub.returncode != 0
    assert "--processes needs a connected agency site" in at_the_hub.stderr
