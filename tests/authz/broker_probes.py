"""Each broker operation of the matrix, taken with one login by a plain Kafka client: what the broker answers.

A probe returns ``allowed`` or the name of the broker's refusal (``TOPIC_AUTHORIZATION_FAILED``, ...);
a login the broker does not know is ``SASL_AUTHENTICATION_FAILED`` whatever it tried. No sharehub code is
on the deciding side: Kafka's StandardAuthorizer decides on the ACLs governance made.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourcePatternType,
    ResourceType,
)

from sharehub.gov.state import GovState
from sharehub.kafka import KafkaAccess, client_config, reader_config

ALLOWED = "allowed"
NOT_AUTHENTICATED = "SASL_AUTHENTICATION_FAILED"
#: How long a probe waits for the broker's answer.
WAIT_S = 15.0


@dataclass(frozen=True)
class Topics:
    """The topics and group the broker probes aim at, in one hub's namespace."""

    prefix: str
    dataset: str
    checkpoints: str
    governance: str
    quarantine: str
    access_log: str
    #: Where the query API's instances checkpoint their access-log lanes.
    access_checkpoints: str
    projector_group: str

    @classmethod
    def of(cls, state: GovState, dataset: str, owner: str) -> Topics:
        return cls(
            prefix=state.topic_prefix,
            dataset=state.dataset(dataset).topic,
            checkpoints=state.checkpoint_topic(owner),
            governance=f"{state.topic_prefix}-governance",
            quarantine=state.quarantine_topic,
            access_log=state.access_log_topic,
            access_checkpoints=state.access_checkpoint_topic,
            projector_group=state.projector_group,
        )


class _Login:
    """librdkafka settings for a login that note, through ``error_cb``, the errors the client meets outside
    any one request: a failed authentication, a refused topic of an assigned partition."""

    def __init__(self, access: KafkaAccess) -> None:
        self.access = access
        self.errors: list[KafkaError] = []

    def _error(self, err: KafkaError) -> None:
        self.errors.append(err)

    @property
    def refused_login(self) -> bool:
        return any(e.code() == KafkaError._AUTHENTICATION for e in self.errors)

    def refusal(self) -> str | None:
        """The first refusal noted: of the login, or of an authorisation."""
        if self.refused_login:
            return NOT_AUTHENTICATED
        refused = [e for e in self.errors if e.name().endswith("_AUTHORIZATION_FAILED")]
        return str(refused[0].name()) if refused else None

    def config(self, reader: bool = False, **extra: Any) -> dict[str, Any]:
        made = reader_config(self.access, **extra) if reader else client_config(self.access, **extra)
        return made | {"error_cb": self._error}


#: One try of a request; they are repeated until answered, serving the client's callbacks in between.
TRY_S = 0.5


def _asked(login: _Login, client: Consumer | AdminClient, call: Callable[[float], object]) -> str:
    """``allowed`` once ``call`` (given a timeout) succeeds, or the refusal it or the callbacks report. A
    failed login or a refused group shows only through the callbacks, the request itself timing out."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            call(TRY_S)
            return ALLOWED
        except (KafkaException, TimeoutError) as exc:
            client.poll(0.05)
            refusal = login.refusal()
            error = exc.args[0] if isinstance(exc, KafkaException) else None
            if refusal is not None:
                return refusal
            if error is not None and error.name().endswith("_AUTHORIZATION_FAILED"):
                return str(error.name())
            if time.monotonic() > deadline:
                return "no answer" if error is None else str(error.name())


def write(access: KafkaAccess, topic: str) -> str:
    """Produce one record to partition 0."""
    login = _Login(access)
    outcome: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        outcome.append(ALLOWED if err is None else str(err.name()))

    producer = Producer(login.config(**{"acks": "all", "message.timeout.ms": int(WAIT_S * 1000)}))
    producer.produce(topic, value=b"authorisation matrix", partition=0, on_delivery=delivered)
    deadline = time.monotonic() + WAIT_S
    while not outcome and not login.refused_login and time.monotonic() < deadline:
        producer.poll(0.05)
    answer = outcome[0] if outcome else NOT_AUTHENTICATED if login.refused_login else "no answer"
    producer.purge()
    producer.flush(0)
    return answer


def read(access: KafkaAccess, topic: str) -> str:
    """Read partition 0 from its start (which holds a record), as the hub's readers do (assigned, in the
    principal's reader group): a record, or the broker's refusal."""
    login = _Login(access)
    consumer = Consumer(login.config(reader=True))
    try:
        unseen = _unseen(login, consumer, topic)
        if unseen is not None:  # a topic it may not even describe: the broker would refuse the fetch alike
            return unseen
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and login.refusal() is None:
            msg = consumer.poll(0.1)
            if msg is not None:
                return ALLOWED if msg.error() is None else str(msg.error().name())
        return login.refusal() or "no answer"
    finally:
        consumer.close()


def _unseen(login: _Login, client: Consumer | AdminClient, topic: str) -> str | None:
    """The refusal the broker's metadata gives for ``topic`` (DESCRIBE), or None when it describes it."""
    found: list[KafkaError | None] = []
    answer = _asked(
        login, client, lambda t: found.append(client.list_topics(topic, timeout=t).topics[topic].error)
    )
    if answer != ALLOWED:
        return answer
    return None if found[-1] is None else str(found[-1].name())


def _admin_call(access: KafkaAccess, call: Callable[[AdminClient, float], Any]) -> str:
    login = _Login(access)
    admin = AdminClient(login.config())
    return _asked(login, admin, lambda t: call(admin, t).result(timeout=t + 1))


def see_ends(access: KafkaAccess, topic: str) -> str:
    """The end offset of partition 0 (ListOffsets: DESCRIBE on the topic)."""
    partition = TopicPartition(topic, 0)
    login = _Login(access)
    admin = AdminClient(login.config())
    unseen = _unseen(login, admin, topic)
    if unseen is not None:
        return unseen
    return _asked(
        login, admin,
        lambda t: admin.list_offsets({partition: OffsetSpec.latest()}, request_timeout=t)[partition].result(),
    )  # fmt: skip


def use_group(access: KafkaAccess, topic: str, group: str) -> str:
    """The group's committed offsets of the topic's partition 0 (OffsetFetch: the group's grant decides)."""
    asked = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    return _admin_call(
        access, lambda admin, t: admin.list_consumer_group_offsets([asked], request_timeout=t)[group]
    )


def create_topic(access: KafkaAccess, prefix: str) -> str:
    """A topic of the hub's namespace (each try names another)."""

    def create(admin: AdminClient, timeout: float) -> Any:
        name = f"{prefix}.matrix-{uuid.uuid4().hex[:8]}"
        topic = NewTopic(name, num_partitions=1, replication_factor=-1)
        return admin.create_topics([topic], request_timeout=timeout)[name]

    return _admin_call(access, create)


def set_retention(access: KafkaAccess, topic: str) -> str:
    """The topic's retention set (each try sets another, a week and some seconds, so that a refusal that
    got through would show)."""
    retention = str(7 * 24 * 3600 * 1000 + random.randrange(1, 1_000_000) * 1000)
    entry = ConfigEntry("retention.ms", retention, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    return _admin_call(
        access, lambda admin, t: admin.incremental_alter_configs([resource], request_timeout=t)[resource]
    )


def grant_acl(access: KafkaAccess, prefix: str) -> str:
    """A read grant on a topic of the namespace, to a principal no agency has (one the test's state watches:
    tests/gov_snapshot.py)."""
    binding = AclBinding(
        ResourceType.TOPIC, f"{prefix}.matrix", ResourcePatternType.LITERAL, f"User:{prefix}.ghost", "*",
        AclOperation.READ, AclPermissionType.ALLOW,
    )  # fmt: skip
    return _admin_call(access, lambda admin, t: admin.create_acls([binding], request_timeout=t)[binding])


#: Operation name (as in the matrix) -> how one login takes it.
PROBES: dict[str, Callable[[KafkaAccess, Topics], str]] = {
    "write-dataset-topic": lambda a, t: write(a, t.dataset),
    "read-dataset-topic": lambda a, t: read(a, t.dataset),
    "see-dataset-topic-ends": lambda a, t: see_ends(a, t.dataset),
    "write-checkpoint-topic": lambda a, t: write(a, t.checkpoints),
    "read-checkpoint-topic": lambda a, t: read(a, t.checkpoints),
    "read-governance-log": lambda a, t: read(a, t.governance),
    "write-governance-log": lambda a, t: write(a, t.governance),
    "read-quarantine": lambda a, t: read(a, t.quarantine),
    "write-quarantine": lambda a, t: write(a, t.quarantine),
    "read-access-log": lambda a, t: read(a, t.access_log),
    "write-access-log": lambda a, t: write(a, t.access_log),
    "read-access-checkpoints": lambda a, t: read(a, t.access_checkpoints),
    "write-access-checkpoints": lambda a, t: write(a, t.access_checkpoints),
    "use-projector-group": lambda a, t: use_group(a, t.dataset, t.projector_group),
    "create-topic": lambda a, t: create_topic(a, t.prefix),
    "set-dataset-topic-retention": lambda a, t: set_retention(a, t.dataset),
    "grant-acl": lambda a, t: grant_acl(a, t.prefix),
}
