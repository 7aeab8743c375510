"""The load of a chaos scenario and its count: a publisher, queries over the query API, the supervised
projection worker, and what the read models hold at the end.

:class:`PublishLoad` publishes new party members in batches with a real :class:`Publisher` (idempotent,
acks=all) from a thread: the hub's own (it holds the owner's keys in custody), or one the owner's site
opens with the agency SDK (:mod:`bench.chaos.site`); a batch counts as acknowledged only when
``publish_records`` returned (every event of it acknowledged by the brokers). A batch that fails (a broker
gone, a leader moving) is not counted and is not retried: its events may or may not be on the log, and the
promise is about acknowledged ones only. :func:`count` compares the acknowledged members with each read
model that holds the dataset: found, lost (acknowledged, absent), duplicates (a record with more than one
applied event, when each was published once), and the state hash of the live read model against a replay
of the log.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bench.load import Server
from connectors.publisher import Publisher
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from services.rebuild import ReplayParts, audit_hash
from sharehub.errors import SharehubError
from tooling.synthetic import generate_party_members

DATASET = "party-members"
BATCH = 100
#: Between batches: about 200 events/s, a load two shared cores project as it comes.
PAUSE_S = 0.5


@dataclass
class PublishLoad:
    """Publishes batches of new members until :meth:`stop`; what was acknowledged, and when."""

    hub: Hub
    #: Opens the publisher (again after a failed batch); by default the hub's own, for the owner "coc".
    opener: Callable[[], Publisher] | None = None
    acknowledged: set[str] = field(default_factory=set)
    failed_batches: int = 0
    #: Monotonic times at which a batch was acknowledged.
    ack_times: list[float] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-publish", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=180)

    def first_ack_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first batch acknowledged after it (publishing resumed)."""
        later = [t for t in self.ack_times if t > moment]
        return min(later) - moment if later else None

    def wait_for_ack_after(self, moment: float, timeout: float) -> float | None:
        """:meth:`first_ack_after`, once there is one (or ``timeout`` seconds from now passed)."""
        deadline = time.monotonic() + timeout
        while (resumed := self.first_ack_after(moment)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        return resumed

    def _run(self) -> None:
        start_index = 0
        publisher = None
        while not self._stopping.is_set():
            members = list(generate_party_members(BATCH, seed=21, start_index=start_index))
            start_index += BATCH
            try:
                if publisher is None:
                    publisher = self.opener() if self.opener else self.hub.publisher("coc", DATASET)
                report = publisher.publish_records(members)
            except SharehubError:
                self.failed_batches += 1
                publisher = None  # a new one recovers its chains from the log as it is now
                continue
            if report.published == len(members):
                self.acknowledged.update(str(m["member_id"]) for m in members)
                self.ack_times.append(time.monotonic())
            self._stopping.wait(PAUSE_S)
        if publisher is not None:
            publisher.close()


#: Queries a second, one at a time from one thread; and what each states as its purpose.
QUERY_RATE = 20.0
QUERY_PURPOSE = "party-member-management"  # what dongthap-ppc's agreement names (demo/hub.yaml)


@dataclass
class QueryLoad:
    """Reads a page of ``consumer``'s read model over the query API about QUERY_RATE times a second until
    :meth:`stop`: how each request was answered (0: no answer at all), and when the good answers came."""

    hub: Hub
    server: Server
    consumer: str
    statuses: Counter[int] = field(default_factory=Counter)
    ok_times: list[float] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        token = issue_credential(self.hub, self.consumer)
        self._thread = threading.Thread(target=self._run, args=(token,), name="chaos-query", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    @property
    def errors(self) -> int:
        """Answers that are neither a result nor a "come back later" (503): a 500, or none at all."""
        return sum(n for status, n in self.statuses.items() if status not in (200, 503))

    def first_ok_after(self, moment: float) -> float | None:
        later = [t for t in self.ok_times if t > moment]
        return min(later) - moment if later else None

    def _run(self, token: str) -> None:
        url = f"{self.server.base}/v1/consumers/{self.consumer}/datasets/{DATASET}/records"
        params = {"purpose": QUERY_PURPOSE, "limit": "20"}
        bearer = {"Authorization": f"Bearer {token}"}
        with httpx.Client(verify=self.server.tls, timeout=10, headers=bearer) as c:
            while not self._stopping.is_set():
                try:
                    status = c.get(url, params=params).status_code
                except httpx.HTTPError:
                    status = 0
                self.statuses[status] += 1
                if status == 200:
                    self.ok_times.append(time.monotonic())
                self._stopping.wait(1 / QUERY_RATE)


@dataclass(frozen=True)
class ReadModelCount:
    consumer: str
    found: int
    lost: int
    duplicates: int
    hash_matches_replay: bool


def read_model_members(hub: Hub, consumer: str) -> dict[str, int]:
    """member_id → events applied to its record, in ``consumer``'s read model."""
    store = hub.store(consumer)
    keys: dict[str, str] = {}
    after: str | None = None
    while page := store.page(DATASET, limit=5_000, after_key=after):
        keys.update((str(row["fields"]["member_id"]), row["key"]) for row in page)
        after = page[-1]["key"]
    versions = store.versions(DATASET)  # after the rows: the worker may still be writing
    return {member: versions.get(key, 1) for member, key in keys.items()}


def count(hub: Hub, consumer: str, acknowledged: set[str]) -> ReadModelCount:
    members = read_model_members(hub, consumer)
    found = len(acknowledged & members.keys())
    duplicates = sum(applied - 1 for applied in members.values() if applied > 1)
    parts = ReplayParts(governance=hub, keys=hub.keys, kafka=hub.kafka, settings=hub.settings)
    replayed = audit_hash(parts, consumer)
    matches = replayed.state_hash == hub.store(consumer).state_hash() and replayed.quarantined == 0
    return ReadModelCount(consumer, found, len(acknowledged) - found, duplicates, matches)


def wait_projected(hub: Hub, consumers: list[str], acknowledged: set[str], timeout: float) -> float:
    """Seconds until every read model holds every acknowledged member (or ``timeout`` passed)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(acknowledged <= read_model_members(hub, c).keys() for c in consumers):
            break
        time.sleep(1.0)
    return time.monotonic() - started
