"""Shared fixtures: the real Kafka broker for the session, and a fresh hub per test.

The broker is the one named by ``SHAREHUB_KAFKA_BOOTSTRAP`` (``make test`` starts one), or a local one
started here. Each hub gets its own topic namespace, consumer group and home, so tests never see each
other's events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.gov.apply import GovSpec
from sharehub.gov.log import MemoryLog
from sharehub.kafka import KafkaAccess, KafkaTls
from sharehub.keys import SecretBytes
from sharehub.settings import Settings
from tests.kafka_helpers import Worker
from tests.softhsm import SoftHsmToken, make_token

REPO = Path(__file__).resolve().parents[1]
DEMO_SPEC = REPO / "demo" / "hub.yaml"
FALLBACK_KAFKA_PORT = 29692


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    named = os.environ.get("SHAREHUB_KAFKA_BOOTSTRAP")
    if named:
        yield named
        return
    from tooling.kafka_local import LocalKafka

    broker = LocalKafka(REPO / ".sharehub-test" / "session", Settings().cache_dir, FALLBACK_KAFKA_PORT)
    bootstrap = broker.start()
    os.environ["SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE"] = str(broker.admin_password_file)
    os.environ["SHAREHUB_KAFKA_CA_FILE"] = str(broker.ca_file)
    os.environ["SHAREHUB_KAFKA_MTLS_BOOTSTRAP"] = broker.mtls_bootstrap
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> KafkaAccess:
    """The broker's super user (governance's login), from the password file the broker made."""
    password = Path(os.environ["SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE"]).read_text().strip()
    return KafkaAccess(kafka_bootstrap, "admin", SecretBytes(password.encode()), kafka_tls())


def kafka_tls() -> KafkaTls:
    """TLS to the test broker, verified against the CA that issued its certificate."""
    return KafkaTls(Path(os.environ["SHAREHUB_KAFKA_CA_FILE"]))


@pytest.fixture(scope="session")
def kafka_data_dir(kafka_bootstrap: str) -> Path:
    """Where the test broker keeps its topic segments: beside its admin password file, as the local broker
    lays out its home (``sharehub kafka start`` or the broker this suite started)."""
    data = Path(os.environ["SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE"]).parent / "data"
    if not (data / "meta.properties").is_file():
        pytest.fail(f"{data} is not the test broker's data directory; run the suite with 'make test'")
    return data


def demo_spec(
    prefix: str | None = None, *, own_sites: tuple[str, ...] = (), vocabulary: bool = False
) -> GovSpec:
    """The demo's governance under a fresh prefix. A test hub plays every part on one machine: every agency
    but those of ``own_sites`` is in its custody (its key store makes their keys and broker logins); the
    agencies of ``own_sites`` make their keys and logins at their own sites, as in the demo.

    Without ``vocabulary`` its agreements are of free-text purpose, as every agreement was before the
    purpose vocabulary (no purposes, no legal bases, datasets for any purpose): the many tests that state
    purposes of their own, and propose agreements of their own, run on that compatible path. Tests of the
    vocabulary itself ask for it."""
    spec = read_spec(DEMO_SPEC)
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    custodial = [a for a in spec.site_agencies if a not in own_sites]
    spec = spec.model_copy(update={"topic_prefix": prefix, "custodial": custodial})
    if vocabulary:
        return spec
    return spec.model_copy(
        update={
            "purposes": [],
            "legal_bases": [],
            "datasets": [d.model_copy(update={"purposes": ()}) for d in spec.datasets],
            "agreements": [a.model_copy(update={"purposes": ()}) for a in spec.agreements],
        }
    )


@pytest.fixture
def offline_hub(tmp_path: Path) -> Iterator[Hub]:
    """A hub with demo governance and keys, for tests that need no broker: its governance log is in memory."""
    settings = Settings(
        home=tmp_path / "home", kafka_bootstrap="127.0.0.1:9", master_key=None, read_model_url=None
    )
    hub = Hub(settings, log=MemoryLog())
    load(hub.governance_desk(), demo_spec(), topics=False)
    yield hub
    hub.close()


def demo_hub(home: Path, kafka_bootstrap: str) -> Iterator[Hub]:
    """A hub with demo governance, keys and its own topics on the real broker, closed afterwards."""
    settings = Settings(home=home, kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None)
    hub = Hub(settings)
    load(hub.governance_desk(), demo_spec())
    yield hub
    hub.close()


@pytest.fixture
def hub(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Hub]:
    """A hub with demo governance, keys and its own topics on the real broker."""
    yield from demo_hub(tmp_path / "home", kafka_bootstrap)


@pytest.fixture
def worker(hub: Hub) -> Iterator[Worker]:
    """The projection worker of ``hub`` as a real background process, stopped after the test."""
    w = Worker(hub)
    yield w
    w.stop()


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsmToken:
    """A throwaway SoftHSM2 token of this test's own (``SOFTHSM2_CONF`` points at it); skipped, with the
    reason, where SoftHSM2 is not installed."""
    token = make_token(tmp_path / "softhsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    return token
