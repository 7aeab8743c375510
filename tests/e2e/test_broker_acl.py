"""The broker itself enforces ownership (R1) and central governance (R2): SASL/SCRAM principals and ACLs
made by governance, Kafka's StandardAuthorizer deciding. Real broker, real clients, no sharehub code on the
refusing side. What each principal may read, write, describe, create and grant, principal by principal, is
checked by the authorisation matrix (tests/authz/test_matrix.py)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from services.broker_in_force import until_gone, until_logins, until_shown
from services.gov_operations import Caller, perform
from services.governance_bootstrap import plan_spec
from services.hub import Hub
from sharehub.errors import BrokerError, ConfigurationError
from sharehub.gov.commands import DeclareDataset, RegisterAgency
from sharehub.kafka import KafkaAccess, client_config, watermarks
from sharehub.keys import SecretBytes
from tests.conftest import demo_spec

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def end_offsets(hub: Hub, topic: str) -> list[int]:
    consumer = Consumer(client_config(hub.kafka_admin, **{"group.id": f"sharehub-test-{uuid.uuid4()}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [watermarks(consumer, topic, p, timeout=10)[1] for p in sorted(partitions)]
    finally:
        consumer.close()


def write(access: KafkaAccess, topic: str) -> list[KafkaError | None]:
    """Produce one message to partition 0 and report how delivery ended (None: written)."""
    outcomes: list[KafkaError | None] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        outcomes.append(err)

    producer = Producer(client_config(access, **{"message.timeout.ms": 10_000, "enable.idempotence": True}))
    producer.produce(topic, value=b"not from the owner", partition=0, on_delivery=delivered)
    producer.flush(15)
    return outcomes


def test_the_broker_refuses_the_government_office_writing_the_commissions_topic(hub: Hub) -> None:
    topic = hub.governance.dataset(DATASET).topic
    assert topic.endswith(".coc.party-members")
    before = end_offsets(hub, topic)

    outcome = write(hub.kafka_as("go"), topic)
    assert len(outcome) == 1 and outcome[0] is not None
    assert outcome[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert end_offsets(hub, topic) == before, "nothing was written"

    assert write(hub.kafka_as("coc"), topic) == [None], "the owner's own principal may write"
    assert end_offsets(hub, topic)[0] == before[0] + 1


def test_a_wrong_password_is_not_let_in(hub: Hub) -> None:
    coc = hub.kafka_as("coc")
    impostor = KafkaAccess(str(coc), coc.username, SecretBytes(b"guessed"), coc.tls)
    [outcome] = write(impostor, hub.governance.dataset(DATASET).topic)
    assert outcome is not None  # never delivered: authentication fails before any request
    assert "coc" not in repr(impostor.password) and "guessed" not in repr(impostor)


def test_governance_needs_the_brokers_super_user_only_to_make_its_own_principal(
    hub: Hub, tmp_path: Path
) -> None:
    """The fixture's hub was set up with the super user's password; from then on governance works without
    it: governance events, a new agency's principal and ACLs, a new topic."""
    settings = hub.settings.model_copy(update={"kafka_admin_password_file": tmp_path / "not-here"})
    with Hub(settings) as without_super_user:
        with pytest.raises(ConfigurationError, match="admin password is unreadable"):
            _ = without_super_user.kafka_admin
        perform(without_super_user.governance_desk(), Caller("cpo", local=True), "register-agency",
                RegisterAgency(id="hcmc-ppc", name="Ho Chi Minh City Party Committee",
                               kind="provincial-party-committee", clearance="confidential"))  # fmt: skip
        plan_spec(
            without_super_user.governance_desk(), demo_spec(hub.anchors.topic_prefix)
        )  # the services' grants again
        perform(without_super_user.governance_desk(), Caller("cpo", local=True), "declare-dataset",
                DeclareDataset(id="cadres", owner="coc", description="Cadre records",
                               classification="secret", key_field="cadre_id"))  # fmt: skip
        state = without_super_user.governance_state(refresh=True)
        assert "hcmc-ppc" in state.agencies_
        topic = state.dataset("cadres").topic
        assert write(without_super_user.kafka_as("coc"), topic) == [None], "made, and granted to its owner"


def owner_write_grant(hub: Hub, owner: str, topic: str) -> AclBinding:
    principal = f"User:{hub.anchors.topic_prefix}.{owner}"
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                      AclOperation.WRITE, AclPermissionType.ALLOW)  # fmt: skip


def test_a_dataset_declared_is_granted_to_its_owner_by_the_time_governance_answers(hub: Hub) -> None:
    """Provisioning returns only once the broker shows the grants it made: with no time left to wait, the
    new topic's write grant is already there."""
    perform(hub.governance_desk(), Caller("cpo", local=True), "declare-dataset",
            DeclareDataset(id="cadres", owner="coc", description="Cadre records",
                           classification="secret", key_field="cadre_id"))  # fmt: skip
    topic = hub.governance_state(refresh=True).dataset("cadres").topic
    admin = AdminClient(client_config(hub.kafka_admin))
    until_shown(admin, [owner_write_grant(hub, "coc", topic)], timeout=0)


def test_a_grant_the_broker_never_shows_is_reported_not_waited_for_forever(hub: Hub) -> None:
    never_made = owner_write_grant(hub, "coc", f"{hub.anchors.topic_prefix}.coc.never-declared")
    admin = AdminClient(client_config(hub.kafka_admin))
    started = time.monotonic()
    with pytest.raises(
        BrokerError, match=r"1 grant\(s\) just made are not shown by the broker 0.5 s later"
    ) as refused:
        until_shown(admin, [never_made, owner_write_grant(hub, "coc", hub.governance.dataset(DATASET).topic)],
                    timeout=0.5)  # fmt: skip
    assert "never-declared" in str(refused.value)
    assert time.monotonic() - started < 5


def test_a_grant_still_shown_after_its_deletion_or_a_login_never_made_is_reported(hub: Hub) -> None:
    """The other two waits give up the same way: a grant that is there is not "gone", a login that was never
    made is not "known" (and one that was made is not "deleted")."""
    admin = AdminClient(client_config(hub.kafka_admin))
    topic = hub.governance.dataset(DATASET).topic
    existing = owner_write_grant(hub, "coc", topic)
    every_grant_of_the_owner_on_it = AclBindingFilter(
        existing.restype, existing.name, existing.resource_pattern_type, existing.principal, "*",
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip
    # Its write, read and describe grants.
    with pytest.raises(BrokerError, match=r"3 grant\(s\) just deleted are still shown .* 0.3 s later"):
        until_gone(admin, [every_grant_of_the_owner_on_it], timeout=0.3)
    coc = f"{hub.anchors.topic_prefix}.coc"
    never = f"{hub.anchors.topic_prefix}.never-registered"
    with pytest.raises(BrokerError, match="login\\(s\\) just made are not known .* such as " + never):
        until_logins(admin, [coc, never], known=True, timeout=0.3)
    with pytest.raises(BrokerError, match="login\\(s\\) just deleted are still known .* such as " + coc):
        until_logins(admin, [coc, never], known=False, timeout=0.3)
    until_logins(admin, [coc], known=True, timeout=0)
    until_logins(admin, [never], known=False, timeout=0)
