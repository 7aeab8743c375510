"""Kafka client settings and topic administration shared by every part of the hub (confluent-kafka)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import ssl
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
    TopicMetadata,
)

from sharehub.errors import BrokerError
from sharehub.keys import SecretBytes

#: librdkafka's own log lines (connection retries, many a second while a broker is down) go here, not to
#: stderr. sharehub's code raises one clear BrokerError instead; set this logger to DEBUG to see them.
librdkafka_log = logging.getLogger("sharehub.librdkafka")
librdkafka_log.setLevel(logging.CRITICAL)


#: How every sharehub client proves who it is to the broker (the broker's SCRAM credentials).
SASL_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaTls:
    """TLS to the broker: the CA its certificate must chain to (the hub CA), and optionally the client's own
    certificate and key, for a principal known by its certificate (``CN=<principal>``) rather than a
    password. The broker's name is checked against its certificate (hostname verification)."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    #: The passphrase of ``key_file`` when it is encrypted (an agency site's is); shown in no repr.
    key_password: SecretBytes | None = None

    def config(self) -> dict[str, str]:
        """librdkafka's settings for this TLS (without ``security.protocol``)."""
        settings = {"ssl.ca.location": str(self.ca_file), "ssl.endpoint.identification.algorithm": "https"}
        if self.cert_file is not None and self.key_file is not None:
            settings["ssl.certificate.location"] = str(self.cert_file)
            settings["ssl.key.location"] = str(self.key_file)
            if self.key_password is not None:
                settings["ssl.key.password"] = self.key_password.reveal().decode()
        return settings

    def context(self) -> ssl.SSLContext:
        """The same, as a Python SSL context (aiokafka's clients, under the projection worker)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None and self.key_file is not None:
            password = None if self.key_password is None else self.key_password.reveal()
            context.load_cert_chain(str(self.cert_file), str(self.key_file), password=password)
        return context


class KafkaAccess(str):
    """A bootstrap address together with how a client connects there: the principal it logs in as
    (SASL/SCRAM) and the TLS it speaks (:class:`KafkaTls`, whose client certificate may be the principal
    instead of a login). It *is* the address string, so it goes wherever an address goes; ``client_config``
    adds the rest. The password is never part of its text or repr.

    ========================  ===================  ==========================================================
    login                     tls                  ``security.protocol``
    ========================  ===================  ==========================================================
    username and password     yes                  SASL_SSL (the hub's default)
    none                      yes                  SSL (a certificate identity, or a server-verified link)
    username and password     no                   SASL_PLAINTEXT (``SHAREHUB_KAFKA_SECURITY=plaintext``)
    none                      no                   PLAINTEXT (idem; an external broker without security)
    ========================  ===================  ==========================================================
    """

    username: str | None
    password: SecretBytes | None
    tls: KafkaTls | None

    def __new__(
        cls,
        bootstrap: str,
        username: str | None = None,
        password: SecretBytes | None = None,
        tls: KafkaTls | None = None,
    ) -> KafkaAccess:
        access = super().__new__(cls, str(bootstrap))
        access.username, access.password, access.tls = username, password, tls
        return access

    def __repr__(self) -> str:
        who = f" as {self.username}" if self.username else ""
        tls = "" if self.tls is None else " over TLS"
        return f"KafkaAccess({str(self)!r}{who}{tls})"

    @property
    def login(self) -> bool:
        return self.username is not None and self.password is not None

    @property
    def protocol(self) -> str:
        """The ``security.protocol`` this access speaks (see the table above)."""
        return ("SASL_" if self.login else "") + ("SSL" if self.tls is not None else "PLAINTEXT")

    def security_config(self) -> dict[str, str]:
        """librdkafka's security settings: protocol, login, TLS."""
        settings = {"security.protocol": self.protocol}
        if self.login:
            assert self.username is not None and self.password is not None
            settings |= {
                "sasl.mechanisms": SASL_MECHANISM,
                "sasl.username": self.username,
                "sasl.password": self.password.reveal().decode(),
            }
        if self.tls is not None:
            settings |= self.tls.config()
        return settings


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for ``bootstrap``: with its login and TLS when it is a :class:`KafkaAccess`. A bare
    address carries neither (librdkafka's PLAINTEXT), which the hub's broker refuses."""
    security = bootstrap.security_config() if isinstance(bootstrap, KafkaAccess) else {}
    return {
        "bootstrap.servers": str(bootstrap),
        "client.id": "sharehub",
        "logger": librdkafka_log,
        **security,
        **extra,
    }


def broker_answers(bootstrap: str, *, timeout: float = 5.0) -> None:
    """Ask for the cluster's metadata with ``bootstrap``'s login and TLS: BrokerError when no broker answers
    within ``timeout`` or the login is refused."""
    try:
        AdminClient(client_config(bootstrap)).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"no broker at {bootstrap} answers: {exc.args[0]}") from None


def reader_group(bootstrap: str) -> str:
    """The one consumer group every reader of a principal names: ``<principal>.readers``. Readers take
    assigned partitions from explicit offsets, join no group and commit nothing, but the client still asks
    the broker for the group's coordinator, so each principal may use this one literal group (and no
    other: the projector's group is the hub's alone)."""
    who = bootstrap.username if isinstance(bootstrap, KafkaAccess) and bootstrap.username else "sharehub"
    return f"{who}.readers"


def reader_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """A consumer that reads assigned partitions and commits nothing, in its principal's reader group."""
    return client_config(
        bootstrap, **{"group.id": reader_group(bootstrap), "enable.auto.commit": False, **extra}
    )


def producer_config(bootstrap: str) -> dict[str, Any]:
    """Idempotent, acks=all: a delivered event is on every in-sync replica, once, in order.

    A produce request unanswered for ``socket.timeout.ms`` (10 s, librdkafka's default is 60 s) is given up
    and sent again, to the new leader once one is elected: a leader cut off or frozen without closing its
    connections held publishing for the whole default. Idempotence makes the retry safe (no duplicate);
    ``message.timeout.ms`` still bounds how long an event may wait in all."""
    return client_config(
        bootstrap,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 10,
            "message.timeout.ms": 60_000,
            "socket.timeout.ms": 10_000,
        },
    )


#: The log is the system of record: the hub's own topics keep every record for ever (no time or size
#: retention), and so does a dataset's topic unless its dataset declares a retention (:func:`topic_config`).
LOG_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
#: Kafka deletes whole segments, once the newest record in one is older than the retention, and never the
#: segment being written: a segment rolls at least this often (Kafka's own default), and no later than the
#: retention itself, so a record is gone between its retention and about twice it.
_LONGEST_SEGMENT_MS = 7 * 24 * 3600 * 1000


class TopicSpec(NamedTuple):
    """A topic the hub needs: its name, its partitions, and how long it keeps a record (-1: for ever)."""

    name: str
    partitions: int
    retention_ms: int = -1


def topic_config(retention_ms: int = -1) -> dict[str, str]:
    """The configuration of a log topic that keeps each record ``retention_ms`` (-1: for ever)."""
    if retention_ms == -1:
        return dict(LOG_TOPIC_CONFIG)
    return {
        **LOG_TOPIC_CONFIG,
        "retention.ms": str(retention_ms),
        "segment.ms": str(min(retention_ms, _LONGEST_SEGMENT_MS)),
    }


def ensure_topics(
    bootstrap: str, topics: Iterable[TopicSpec | tuple[str, int]], *, timeout: float = 30.0
) -> list[str]:
    """Create each topic (a TopicSpec, or (name, partitions) kept for ever) that does not exist yet, with
    its retention; returns the names created."""
    admin = AdminClient(client_config(bootstrap))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"Kafka at {bootstrap} does not answer: {exc}") from None
    specs = [TopicSpec(*topic) for topic in topics]
    wanted = [
        NewTopic(s.name, s.partitions, replication_factor=-1, config=topic_config(s.retention_ms))
        for s in specs
        if s.name not in existing
    ]
    if not wanted:
        return []
    futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise BrokerError(f"could not create topic {name!r}: {exc}") from None
    _await_leaders(admin, created, timeout)
    return created


def align_retention(bootstrap: str, topics: Iterable[TopicSpec], *, timeout: float = 30.0) -> list[str]:
    """Set the retention of each existing topic in ``topics`` that keeps its records for another time than
    its spec says (a topic made before its dataset's retention was applied, or changed on the broker since);
    returns the names changed. A topic that does not exist is left to :func:`ensure_topics`."""
    specs = {s.name: s for s in topics}
    if not specs:
        return []
    admin = AdminClient(client_config(bootstrap))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics) & set(specs)
        if not existing:
            return []
        held = _settled(lambda: _topic_configs(admin, sorted(existing), timeout))
    except KafkaException as exc:
        raise BrokerError(f"could not read the retention of the dataset topics: {exc.args[0]}") from None
    changed = []
    for name, config in sorted(held.items()):
        wanted = topic_config(specs[name].retention_ms)
        stale = {k: v for k, v in wanted.items() if k in _RETENTION_KEYS and config[k].value != v}
        if stale:
            _alter_topic(admin, name, wanted, timeout)
            changed.append(name)
    return changed


#: What :func:`align_retention` keeps in line with a topic's spec.
_RETENTION_KEYS = ("retention.ms", "retention.bytes", "segment.ms")
#: Seconds a topic just created may be unknown to the broker an admin request reaches (on a cluster, the
#: others learn it from the controller's metadata a moment later).
_TOPIC_SETTLE_S = 10.0

T = TypeVar("T")


def _topic_configs(admin: AdminClient, names: list[str], timeout: float) -> dict[str, Any]:
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    return {r.name: f.result(timeout=timeout) for r, f in described.items()}


def _settled(request: Callable[[], T]) -> T:
    """``request()``, asked again while the broker it reaches does not know a topic yet, for up to
    :data:`_TOPIC_SETTLE_S`; any other KafkaException at once."""
    deadline = time.monotonic() + _TOPIC_SETTLE_S
    while True:
        try:
            return request()
        except KafkaException as exc:
            unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not unknown or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _alter_topic(admin: AdminClient, name: str, config: Mapping[str, str], timeout: float) -> None:
    entries = [
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        for key, value in config.items()
        if key in _RETENTION_KEYS
    ]
    if "segment.ms" not in config:  # kept for ever: the broker's default segment time again
        entries.append(ConfigEntry("segment.ms", "", incremental_operation=AlterConfigOpType.DELETE))
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)

    def alter() -> None:
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=timeout)

    try:
        _settled(alter)
    except KafkaException as exc:
        raise BrokerError(f"could not set the retention of topic {name!r}: {exc.args[0]}") from None


def _await_leaders(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """Topic creation returns before every partition has a leader; wait until they do, so the first reader
    or writer does not meet 'not leader' errors."""
    deadline = time.monotonic() + timeout
    pending = set(topics)
    while pending:
        described = admin.list_topics(timeout=timeout).topics
        pending = {
            name
            for name in pending
            if name not in described
            or described[name].error is not None
            or any(p.leader < 0 for p in described[name].partitions.values())
        }
        if pending and time.monotonic() > deadline:
            raise BrokerError(f"topics {sorted(pending)} have no leader after {timeout:.0f} s")
        if pending:
            time.sleep(0.1)


#: Errors of a partition whose leader is not elected or known yet (just after a topic was created), or
#: moves (a node of a cluster died: the client drops its handle of that node while the request waits on it),
#: or whose new leader's high watermark has not caught up yet since it was elected (OFFSET_NOT_AVAILABLE).
_LEADER_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._DESTROY_BROKER,
    KafkaError.OFFSET_NOT_AVAILABLE,
}


#: Refusals that may only mean a grant made a moment ago has not reached the broker yet; and how long that
#: may take before a refusal is one.
_NOT_YET_GRANTED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
_GRANTS_SETTLE_S = 5.0

#: A partition the client's cached metadata does not know (a topic created by another client meanwhile).
_UNKNOWN_HERE = KafkaError._UNKNOWN_PARTITION

#: How long one watermark request may wait before it is asked again (see :func:`watermarks`).
_ATTEMPT_S = 5.0


def watermarks(consumer: Consumer, topic: str, partition: int, *, timeout: float) -> tuple[int, int]:
    """(low, high) offsets of a partition. Retriable errors (a leader still being elected just after a topic
    was created, or a leader that died) are retried until ``timeout``; anything else is a BrokerError.

    Each request waits a few seconds at most: a request sent to a node that has just died waits on that
    node's connection until it times out, however soon another node leads the partition, so the whole
    ``timeout`` must leave room to ask again once the client has learnt the new leader."""
    deadline = time.monotonic() + timeout
    while True:
        attempt = max(0.1, min(_ATTEMPT_S, deadline - time.monotonic()))
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=attempt)
            return int(low), int(high)
        except KafkaException as exc:
            code = exc.args[0].code()
            transient = (
                exc.args[0].retriable()
                or code in _LEADER_NOT_READY
                or code in (_UNKNOWN_HERE, KafkaError._TIMED_OUT)
            )
            if not transient or time.monotonic() > deadline:
                raise BrokerError(f"offsets of {topic}[{partition}]: {exc.args[0].str()}") from None
            # Created, or its leader moved, since this client last asked: ask the brokers about it now (a
            # client kept open between reads would otherwise go on asking the broker it remembers).
            with contextlib.suppress(KafkaException):
                consumer.list_topics(topic, timeout=attempt)
            time.sleep(0.2)


# --- reading a topic ------------------------------------------------------------------------------------


class Record(NamedTuple):
    """One message of a topic, as read: its place, key, value and broker time (milliseconds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    #: The message's headers, in order (what a producer said beside the value, e.g. a source position).
    headers: tuple[tuple[str, bytes], ...] = ()


#: How many records a batch holds at most; and how long one poll waits for more.
BATCH = 500
_POLL_S = 0.05


class TopicReader:
    """Reads topics between offsets, in batches, with one consumer that stays open between reads (a reader
    that follows a topic asks again from where it stopped, at the cost of one watermark request).

    Partitions are assigned, never subscribed: no group is joined and nothing is committed (the client only
    names its principal's reader group, see :func:`reader_group`). Every read has a deadline: a broker that
    stops answering is a BrokerError, never a hang."""

    def __init__(self, bootstrap: str, *, timeout: float = 60.0) -> None:
        self._bootstrap = bootstrap
        self._timeout = timeout
        #: What the broker said when it refused this reader's login (librdkafka retries on its own).
        self._login_refused: list[str] = []
        # A reader only asks for records it knows are there (below an end offset): no reason for the broker
        # to hold a fetch back waiting for more, which would delay every short read by up to 500 ms.
        self._consumer = Consumer(
            reader_config(bootstrap, **{"fetch.wait.max.ms": 10, "error_cb": self._client_error})
        )

    def _client_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            self._login_refused.append(error.str())

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def partitions(self, topic: str) -> dict[int, tuple[int, int]]:
        """(low, high) offsets of every partition of ``topic``; empty when the topic does not exist."""
        started = time.monotonic()
        while True:
            found = self._metadata(topic, started)
            if found is None or (
                found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            ):
                return {}
            if found.error is None:
                break
            waited = time.monotonic() - started
            code = found.error.code()
            # Just created: a leader is being elected, or the grants made with it are still reaching the
            # broker that answers (ACLs propagate through the cluster's metadata a moment later).
            settling = code in _LEADER_NOT_READY or (code in _NOT_YET_GRANTED and waited < _GRANTS_SETTLE_S)
            if not (found.error.retriable() or settling) or waited > self._timeout:
                raise BrokerError(f"{topic}: {found.error.str()}")
            time.sleep(0.2)
        return {
            p: watermarks(self._consumer, topic, p, timeout=self._timeout) for p in sorted(found.partitions)
        }

    def _metadata(self, topic: str, started: float) -> TopicMetadata | None:
        """``topic``'s metadata, asked for a second at a time until the reader's timeout from ``started``: a
        login the broker refuses is a BrokerError after the first second, not after the whole timeout."""
        while True:
            left = self._timeout - (time.monotonic() - started)
            try:
                metadata = self._consumer.list_topics(topic, timeout=max(min(left, 1.0), 0.01))
                found: TopicMetadata | None = metadata.topics.get(topic)
                return found
            except KafkaException as exc:
                self._consumer.poll(0)  # has the client report what it met meanwhile (_client_error)
                if self._login_refused:
                    who = getattr(self._bootstrap, "username", None) or "this client"
                    raise BrokerError(
                        f"Kafka at {self._bootstrap} refused the login of {who}: {self._login_refused[-1]}"
                    ) from None
                if left <= 1.0:
                    raise BrokerError(f"Kafka at {self._bootstrap} does not answer: {exc}") from None

    def high(self, topic: str, partition: int) -> int:
        """The offset after the last record of one partition (a single watermark request)."""
        return watermarks(self._consumer, topic, partition, timeout=self._timeout)[1]

    def batches(
        self,
        topic: str,
        *,
        start: Mapping[int, int] | None = None,
        end: Mapping[int, int] | None = None,
        until: dt.datetime | None = None,
        size: int = BATCH,
    ) -> Generator[list[Record], None, None]:
        """The records of ``topic`` in batches of at most ``size``, in order within each partition: from
        ``start`` (partition → first offset; default every partition from its low watermark) to ``end``
        (partition → offset after the last; default the high watermark when reading began). With
        ``until``, a partition stops at its first record written later (broker time)."""
        if start is None or end is None:
            bounds = self.partitions(topic)
            start = {p: low for p, (low, _) in bounds.items()} if start is None else start
            end = {p: bounds[p][1] for p in start if p in bounds} if end is None else end
        remaining = {p: e for p, e in end.items() if p in start and start[p] < e}
        if not remaining:
            return
        self._consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(remaining)])
        horizon = None if until is None else int(until.timestamp() * 1000)
        deadline = time.monotonic() + self._timeout
        try:
            while remaining:
                messages = self._consumer.consume(size, timeout=_POLL_S)
                if not messages:
                    if time.monotonic() > deadline:
                        raise BrokerError(
                            f"reading {topic} stalled; partitions {sorted(remaining)} unfinished"
                        )
                    continue
                deadline = time.monotonic() + self._timeout
                batch = self._keep(topic, messages, remaining, horizon)
                if batch:
                    yield batch
        finally:
            self._consumer.unassign()

    @staticmethod
    def _keep(
        topic: str, messages: list[Any], remaining: dict[int, int], horizon: int | None
    ) -> list[Record]:
        batch: list[Record] = []
        for msg in messages:
            error = msg.error()
            if error is not None:
                raise BrokerError(f"reading {topic}: {error.str()}")
            partition, offset = msg.partition(), msg.offset()
            stop = remaining.get(partition)
            if stop is None or offset is None or offset >= stop:
                continue
            timestamp = msg.timestamp()[1]
            if horizon is not None and timestamp > horizon:
                del remaining[partition]  # written after ``until``: this partition is done
                continue
            headers = tuple((k, v or b"") for k, v in msg.headers() or ())
            batch.append(Record(topic, partition, offset, msg.key(), msg.value() or b"", timestamp, headers))
            if offset + 1 >= stop:
                del remaining[partition]
        return batch


def read_topic(bootstrap: str, topic: str, **bounds: Any) -> Iterator[list[Record]]:
    """:meth:`TopicReader.batches` with a reader of its own, closed once the read is done."""
    with TopicReader(bootstrap, timeout=bounds.pop("timeout", 60.0)) as reader:
        yield from reader.batches(topic, **bounds)


def records(batches: Iterable[list[Record]]) -> Iterator[Record]:
    """The records of batches, one at a time."""
    for batch in batches:
        yield from batch
