"""The bench's own hub: a local broker on a dedicated port and home, and governance per scenario.

Each scenario gets a fresh home and a unique topic prefix, so runs never read each other's events. The
governance is demo/hub.yaml's agencies with only the ``party-members`` dataset and its agreements: adding
datasets to the demo must not change what the projection benchmarks measure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.gov.apply import GovSpec
from sharehub.gov.log import MemoryLog
from sharehub.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEMO_SPEC = REPO / "demo" / "hub.yaml"
#: Under /tmp and apart from the demo (29092) and the tests (29592, 29692).
BENCH_HOME = Path("/tmp/sharehub-bench")
#: A local broker takes three ports: its clients' (SASL_SSL), its controller's, its mutual-TLS listener's.
BENCH_KAFKA_PORT = 29792
#: The scale run has a broker of its own, so the suite can run (and stop its broker) meanwhile.
SCALE_KAFKA_PORT = 29796
#: The PostgreSQL the outbox scenario and the runs on PostgreSQL read models start when none is named
#: (scripts/postgres.sh, data under /tmp); past the scale broker's three ports (29796-29798).
BENCH_PG_PORT = 29799
#: Any address where nothing listens: hubs that never talk to Kafka are given this one.
NO_BROKER = "127.0.0.1:9"
DATASET = "party-members"
OWNER = "coc"


@contextmanager
def broker(home: Path = BENCH_HOME, port: int = BENCH_KAFKA_PORT, *, fresh: bool = True) -> Iterator[str]:
    """The broker named by SHAREHUB_KAFKA_BOOTSTRAP, or a local one, stopped on the way out: fresh (its
    topics of earlier runs removed) unless ``fresh`` is false (a kept data set, audited again)."""
    named = os.environ.get("SHAREHUB_KAFKA_BOOTSTRAP")
    if named:
        yield Hub(Settings(home=home, kafka_bootstrap=named)).kafka_admin
        return
    from tooling.kafka_local import LocalKafka

    kafka = LocalKafka(home / "broker", Settings().cache_dir, port)
    if fresh and not kafka.status().running:
        # Topics of earlier runs would only slow the broker's start: every run begins empty.
        shutil.rmtree(home / "broker", ignore_errors=True)
    kafka.start()
    # Governance in every bench hub uses the broker's super user (as in the tests and the demo).
    os.environ["SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE"] = str(kafka.admin_password_file)
    # And verifies the broker with the CA that issued its certificate.
    os.environ["SHAREHUB_KAFKA_CA_FILE"] = str(kafka.ca_file)
    try:
        yield kafka.admin_access()
    finally:
        kafka.stop()


@contextmanager
def postgres() -> Iterator[str]:
    """The PostgreSQL named by SHAREHUB_BENCH_POSTGRES_URL (or the tests' SHAREHUB_TEST_POSTGRES_URL), or a
    throwaway local one (``scripts/postgres.sh``) on :data:`BENCH_PG_PORT`, stopped on the way out. That one
    commits as production does (fsync and full-page writes on), not as the suite's server, which turns them
    off for speed."""
    named = os.environ.get("SHAREHUB_BENCH_POSTGRES_URL") or os.environ.get("SHAREHUB_TEST_POSTGRES_URL")
    if named:
        yield named
        return
    script = [str(REPO / "scripts" / "postgres.sh")]
    env = os.environ | {"SHAREHUB_TEST_PG_PORT": str(BENCH_PG_PORT), "SHAREHUB_PG_DURABLE": "1"}
    started = subprocess.run([*script, "start"], env=env, check=True, capture_output=True, text=True)
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([*script, "stop"], env=env, check=False, capture_output=True)


def bench_spec(prefix: str | None = None) -> GovSpec:
    spec = read_spec(DEMO_SPEC)
    return spec.model_copy(
        update={
            "topic_prefix": prefix or f"bench{uuid.uuid4().hex[:10]}",
            "custodial": spec.site_agencies,  # the bench hub plays every part: it signs for the owner
            "datasets": [d for d in spec.datasets if d.id == DATASET],
            "agreements": [a for a in spec.agreements if a.dataset == DATASET],
        }
    )


def settings(home: Path, bootstrap: str | None, read_model_url: str | None = None) -> Settings:
    """Settings for a bench hub; explicit values, so SHAREHUB_* variables of the caller do not leak in.
    Read models: SQLite files under ``home`` unless ``read_model_url`` names others (a PostgreSQL URL:
    a schema per consumer in that database)."""
    return Settings(
        home=home,
        kafka_bootstrap=str(bootstrap) if bootstrap else NO_BROKER,
        master_key=None,
        read_model_url=read_model_url,
        read_model_password_file=None,
    )


def new_hub(home: Path, bootstrap: str | None, read_model_url: str | None = None) -> Hub:
    """Governance, keys and (with a broker) topics in a fresh ``home``; read models under it, or where
    ``read_model_url`` says (:func:`settings`)."""
    shutil.rmtree(home, ignore_errors=True)
    s = settings(home, bootstrap, read_model_url)
    hub = Hub(s, log=None if bootstrap is not None else MemoryLog())
    load(hub.governance_desk(), bench_spec(), topics=bootstrap is not None)
    if bootstrap is not None:
        wait_for_leaders(bootstrap, [d.topic for d in hub.governance.datasets()])
    return hub


def wait_for_leaders(bootstrap: str, topics: list[str], timeout: float = 60.0) -> None:
    """Block until every partition of ``topics`` answers offset requests.

    A topic that was just created has no partition leader for a moment, and the publisher's chain-head
    recovery would fail on it with NOT_LEADER_FOR_PARTITION.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from sharehub.kafka import client_config

    consumer = Consumer(client_config(bootstrap, **{"group.id": f"sharehub-bench-{uuid.uuid4()}"}))
    deadline = time.monotonic() + timeout
    try:
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
            for p in partitions:
                while True:
                    try:
                        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                        break
                    except KafkaException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
    finally:
        consumer.close()


def hub_with_read_models(hub: Hub, read_models: Path) -> Hub:
    """The same governance and keys as ``hub``, with its read models in ``read_models`` (made empty)."""
    shutil.rmtree(read_models, ignore_errors=True)
    read_models.mkdir(parents=True)
    url = f"sqlite:///{read_models.resolve()}/{{consumer}}.db"
    return Hub(settings(hub.home, hub.settings.kafka_bootstrap, url))


def hub_env(hub: Hub) -> dict[str, str]:
    """Environment for a ``sharehub`` subprocess working on ``hub``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    env.update(
        SHAREHUB_HOME=str(hub.home.resolve()),
        SHAREHUB_KAFKA_BOOTSTRAP=hub.settings.bootstrap,
        SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE=str(hub.settings.admin_password_path),
        SHAREHUB_KAFKA_CA_FILE=str(hub.settings.kafka_ca_path),
        SHAREHUB_CACHE_DIR=str(hub.settings.cache_dir),
    )
    if hub.settings.read_model_url:
        env["SHAREHUB_READ_MODEL_URL"] = hub.settings.read_model_url
    return env
