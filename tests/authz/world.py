"""The hub the matrix runs against, with what every probe needs, and its fingerprint: everything a step could
change, so that a refused one can be shown to have changed nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.gateway.app import create_gateway
from services.gateway.modes import Limits, at_hub, at_site
from services.hub import Hub
from sharehub.kafka import KafkaAccess, client_config
from sharehub.keys import Signer
from tests.authz.broker_probes import Topics
from tests.gov_snapshot import Snapshot, snapshot


@dataclass(frozen=True)
class Fingerprint:
    #: The governance log, key store, topics, ACLs and principals (as tests/gov_snapshot.py takes them).
    governance: Snapshot
    #: The end offset of every partition of every topic of the hub.
    ends: tuple[tuple[str, int, int], ...]
    #: Each read model's state hash.
    read_models: tuple[tuple[str, str], ...]


@dataclass
class World:
    hub: Hub
    #: Role -> its bearer credential (agencies only: the hub's services have none).
    credentials: dict[str, str]
    topics: Topics
    api: TestClient
    gateway: TestClient
    #: The owner's gateway at its own site, and that site's home.
    site_gateway: TestClient
    site_home: Path
    _close_gateways: list[Callable[[], None]]
    _admin: AdminClient
    #: Role -> its broker login (filled in once the auditor's site set its password).
    logins: dict[str, KafkaAccess] = field(default_factory=dict)
    #: The password the auditor's site set for its broker login (it sets the same again).
    site_password: str = ""
    #: Agency -> the signing key of its own site, for the agencies not in the hub's custody (the auditor):
    #: they seal their own governance acts (sharehub.gov.acts).
    site_signers: dict[str, Signer] = field(default_factory=dict)
    #: The state after the last step; None once something was done since (what a step needs first).
    known: Fingerprint | None = None

    @classmethod
    def build(
        cls, hub: Hub, credentials: dict[str, str], topics: Topics, site_home: Path, site_passphrase: bytes
    ) -> World:
        limits = Limits(rate=1000.0, burst=1000)
        gateway, close_gateway = at_hub(Hub(hub.settings), limits)
        site_gateway, close_site_gateway = at_site(site_home, site_passphrase, limits)
        return cls(
            hub=hub,
            credentials=credentials,
            topics=topics,
            api=TestClient(create_app(hub)),
            gateway=TestClient(create_gateway(gateway)),
            site_gateway=TestClient(create_gateway(site_gateway)),
            site_home=site_home,
            _close_gateways=[close_gateway, close_site_gateway],
            _admin=AdminClient(client_config(hub.kafka_admin)),
        )

    def bearer(self, role: str) -> dict[str, str]:
        """The role's credential, or for a role without one, a credential the hub never issued."""
        return {"Authorization": f"Bearer {self.credentials.get(role, 'shc_never-issued')}"}

    def set_broker_password(self, role: str, password: str) -> None:
        """As the agency's own site does (``sharehub agency connect --password-login``)."""
        self.site_password = password
        body = {"password": password}
        answer = self.api.post("/v1/site/broker-password", json=body, headers=self.bearer(role))
        assert answer.status_code == 204, answer.text

    def client(self, gateway: bool, source: str, *, site: bool = False) -> TestClient:
        """A client of the API, the hub's gateway or (``site``) the owner's, calling from ``source``."""
        app = (self.site_gateway if site else self.gateway if gateway else self.api).app
        return TestClient(app, client=(source, 50000))

    def fingerprint(self) -> Fingerprint:
        hub = self.hub
        hub.governance_state(refresh=True)  # the state the follower keeps, up to the log's end now
        prefix = hub.anchors.topic_prefix
        listed = self._admin.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(name, p)
            for name, t in listed.items()
            if name.startswith(prefix)
            for p in t.partitions
        ]
        asked = self._admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=10)
        ends = sorted((tp.topic, tp.partition, future.result().offset) for tp, future in asked.items())
        stores = tuple((c, hub.store(c).state_hash()) for c in sorted(hub.consumers()))
        return Fingerprint(snapshot(hub), tuple(ends), stores)

    def close(self) -> None:
        self.api.close()
        self.gateway.close()
        self.site_gateway.close()
        for close in self._close_gateways:
            close()
