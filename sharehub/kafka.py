"""Kafka client settings and topic administration shared by every part of the hub (confluent-kafka)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from sharehub.errors import BrokerError
from sharehub.keys import SecretBytes

#: librdkafka's own log lines (connection retries, many a second while a broker is down) go here, not to
#: stderr. sharehub's code raises one clear BrokerError instead; set this logger to DEBUG to see them.
librdkafka_log = logging.getLogger("sharehub.librdkafka")
librdkafka_log.setLevel(logging.CRITICAL)


#: How every sharehub client proves who it is to the broker (the broker's SCRAM credentials).
SASL_MECHANISM = "SCRAM-SHA-512"


class KafkaAccess(str):
    """A bootstrap address together with the principal a client connects as (SASL/SCRAM over the broker's
    listener). It *is* the address string, so it goes wherever an address goes; ``client_config`` adds the
    login. The password is never part of its text or repr."""

    username: str | None
    password: SecretBytes | None

    def __new__(
        cls, bootstrap: str, username: str | None = None, password: SecretBytes | None = None
    ) -> KafkaAccess:
        access = super().__new__(cls, str(bootstrap))
        access.username, access.password = username, password
        return access

    def __repr__(self) -> str:
        who = f" as {self.username}" if self.username else ""
        return f"KafkaAccess({str(self)!r}{who})"

    def sasl_config(self) -> dict[str, str]:
        if self.username is None or self.password is None:
            return {}
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": SASL_MECHANISM,
            "sasl.username": self.username,
            "sasl.password": self.password.reveal().decode(),
        }


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for ``bootstrap``; with the SASL login when it is a :class:`KafkaAccess`."""
    login = bootstrap.sasl_config() if isinstance(bootstrap, KafkaAccess) else {}
    return {
        "bootstrap.servers": str(bootstrap),
        "client.id": "sharehub",
        "logger": librdkafka_log,
        **login,
        **extra,
    }


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
    """Idempotent, acks=all: a delivered event is on every in-sync replica, once, in order."""
    return client_config(
        bootstrap,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 10,
            "message.timeout.ms": 60_000,
        },
    )


#: The log is the system of record: its topics keep every event for ever (no time or size retention).
LOG_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def ensure_topics(bootstrap: str, topics: Iterable[tuple[str, int]], *, timeout: float = 30.0) -> list[str]:
    """Create each (topic, partitions) that does not exist yet; returns the names created."""
    admin = AdminClient(client_config(bootstrap))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"Kafka at {bootstrap} does not answer: {exc}") from None
    wanted = [
        NewTopic(name, num_partitions=n, replication_factor=-1, config=LOG_TOPIC_CONFIG)
        for name, n in topics
        if name not in existing
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


#: Errors of a partition whose leader is not elected or known yet (just after a topic was created).
_LEADER_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def watermarks(consumer: Consumer, topic: str, partition: int, *, timeout: float) -> tuple[int, int]:
    """(low, high) offsets of a partition. Retriable errors (a leader still being elected just after a topic
    was created) are retried until ``timeout``; anything else is a BrokerError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            return int(low), int(high)
        except KafkaException as exc:
            transient = exc.args[0].retriable() or exc.args[0].code() in _LEADER_NOT_READY
            if not transient or time.monotonic() > deadline:
                raise BrokerError(f"offsets of {topic}[{partition}]: {exc.args[0].str()}") from None
            time.sleep(0.2)
