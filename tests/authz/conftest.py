"""One hub for the whole matrix, built once: demo governance on the real broker, each role's login and
credential, records in the consumer's read model, the HTTP apps over it, and the owner's site with its own
gateway (whose key service is a real API process of the hub, over HTTPS)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services import processes
from services.gov_operations import Caller, perform
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from sharehub.gov.key_request import make_key_request
from sharehub.kafka import KafkaAccess
from sharehub.keys import SecretBytes, SigningKey
from sharehub.settings import Settings
from tests.authz.broker_probes import ALLOWED, Topics, write
from tests.authz.matrix import AGENCY_ROLES, SERVICE_ROLES
from tests.authz.world import World
from tests.conftest import demo_spec
from tests.e2e.test_agency_sdk import PASSPHRASE, _site
from tests.kafka_helpers import answers, free_port, hub_env, wait_until
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector

#: The broker probes' dataset (the owner's; events on it are junk, which nothing here reads as events).
PROBED_DATASET = "handbook-activities"


def _site_key(hub: Hub, agency: str) -> SigningKey:
    """A signing key of ``agency``'s own site, registered from its request: the hub never holds it."""
    key = SigningKey(f"{agency}/sign/site", Ed25519PrivateKey.generate())
    request = make_key_request(key, agency=agency, valid_from=dt.datetime.now(dt.UTC))
    perform(hub.governance_desk(), Caller(hub.governance.operator, local=True), "register-key", request)
    return key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[World]:
    home = tmp_path_factory.mktemp("authz") / "home"
    # The API checkpoints its access-log lane only when it closes: a checkpoint written by time (or after
    # so many records) could land between a refused step and the look at every topic's end after it.
    settings = Settings(
        home=home, kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None,
        access_checkpoint_every=1_000_000_000, access_checkpoint_seconds=0,
    )  # fmt: skip
    with Hub(settings) as hub, _api_process(hub) as api:
        auditor, owner = AGENCY_ROLES["auditor"], AGENCY_ROLES["owner"]
        # The demo as it ships (its vocabulary too); the auditor logs in from its site.
        load(hub.governance_desk(), demo_spec(own_sites=(auditor,), vocabulary=True))
        credentials = {role: issue_credential(hub, agency) for role, agency in AGENCY_ROLES.items()}
        apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 4)]))
        site = _site(hub, home.parent, api(), owner, credential=credentials["owner"])
        built = World.build(
            hub, credentials, Topics.of(hub.governance, PROBED_DATASET, owner), site, PASSPHRASE
        )
        password = secrets.token_urlsafe(32)
        built.set_broker_password("auditor", password)
        logins = {role: hub.kafka_as(agency) for role, agency in AGENCY_ROLES.items() if role != "auditor"}
        logins |= {role: hub.kafka_as(name) for role, name in SERVICE_ROLES.items()}
        logins["auditor"] = _login(hub, auditor, password)
        logins["unknown"] = _login(hub, "nobody", secrets.token_urlsafe(32))
        built.logins.update(logins)
        built.site_signers[auditor] = _site_key(hub, auditor)
        _seed(built)
        try:
            yield built
        finally:
            built.close()


@contextmanager
def _api_process(hub: Hub) -> Iterator[Callable[[], str]]:
    """The hub's API as a real process (the owner's site takes its keys from it over HTTPS), started on
    first use: governance must be loaded first."""
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    started = False

    def address() -> str:
        nonlocal started
        quiet = {"SHAREHUB_ACCESS_CHECKPOINT_EVERY": "1000000000", "SHAREHUB_ACCESS_CHECKPOINT_SECONDS": "0"}
        processes.start(hub.home, "api", ["serve", "--port", str(port)], env=hub_env(hub) | quiet)
        started = True
        wait_until(lambda: answers(hub, base + "/healthz"), timeout=60, what="the API")
        return base

    try:
        yield address
    finally:
        if started:
            processes.stop(hub.home, "api")


def _login(hub: Hub, name: str, password: str) -> KafkaAccess:
    return KafkaAccess(
        hub.settings.bootstrap, hub.principal(name), SecretBytes(password.encode()), hub.kafka_tls
    )


def _seed(world: World) -> None:
    """One record at the start of partition 0 of every topic a probe reads, by a role that may write it."""
    t = world.topics
    for role, topic in [("owner", t.dataset), ("owner", t.checkpoints), ("projector", t.quarantine),
                        ("api", t.access_log), ("api", t.access_checkpoints)]:  # fmt: skip
        assert write(world.logins[role], topic) == ALLOWED, (role, topic)
