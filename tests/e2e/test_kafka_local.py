"""The local broker manager (``tooling.kafka_local``) and ``sharehub kafka``, against real brokers.

These brokers live in temporary homes on their own ports (29192 and up), never on 29092, so the shared
broker the rest of the suite uses is not disturbed. The jars come from the default cache, so the
Maven fetch happens once per machine. One broker is shared by the module; the tests that need a
broker in a particular state (failed, stale) make their own in their own ``tmp_path``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sharehub.kafka import client_config
from sharehub.settings import Settings
from tooling.kafka_local import (
    KAFKA_VERSION,
    BrokerStartError,
    LocalKafka,
    PortInUseError,
)
from tooling.kafka_local.broker import _new_cluster_id
from tooling.kafka_local.jars import POM

PORT = 29192  # and 29193 for its controller, 29194 for its mutual-TLS listener
SPARE_PORT = 29195  # brokers that are made to fail, and 29196, 29197
CONFLICT_PORT = 29198  # only ever bound by a plain socket
SHAREHUB = Path(sys.executable).with_name("sharehub")
CACHE_DIR = Settings().cache_dir


def _processes_of(kafka: LocalKafka) -> list[int]:
    """Every live process whose command line runs this broker's server.properties."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if str(kafka.config_file) in args:
            found.append(int(entry.name))
    return found


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The outer environment may point at the suite's shared broker; these runs must not see it.
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    return subprocess.run(
        [str(SHAREHUB), *args],
        env={**base, "SHAREHUB_CACHE_DIR": str(CACHE_DIR), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(tmp_path_factory.mktemp("kafka-home"), CACHE_DIR, PORT)
    broker.start()
    yield broker
    broker.stop()


# ---------------------------------------------------------------------- with the shared module broker


@pytest.mark.kafka
def test_start_returns_bootstrap_and_messages_round_trip(kafka: LocalKafka) -> None:
    bootstrap = kafka.start()
    assert bootstrap == f"127.0.0.1:{PORT}"

    admin = AdminClient(client_config(kafka.admin_access()))
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    # Partitions and replication left to the broker: its defaults (3 and 1) must be usable.
    for future in admin.create_topics([NewTopic(topic, num_partitions=-1, replication_factor=-1)]).values():
        future.result(timeout=30)
    # Creation returns before the broker's own metadata cache has the topic: ask until it does.
    deadline = time.monotonic() + 30
    described = admin.list_topics(topic=topic, timeout=10).topics[topic]
    while described.error is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        described = admin.list_topics(topic=topic, timeout=10).topics[topic]
    assert described.error is None, described.error
    assert len(described.partitions) == 3

    producer = Producer(client_config(kafka.admin_access()))
    producer.produce(topic, key=b"k", value=b"hello sharehub")
    assert producer.flush(30) == 0

    consumer = Consumer(
        client_config(kafka.admin_access(), **{"group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    )
    try:
        consumer.subscribe([topic])
        received = None
        deadline = time.monotonic() + 60
        while received is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                received = (msg.key(), msg.value())
    finally:
        consumer.close()
    assert received == (b"k", b"hello sharehub")


@pytest.mark.kafka
def test_the_broker_lets_no_one_in_without_a_login(kafka: LocalKafka) -> None:
    anonymous = AdminClient({"bootstrap.servers": kafka.bootstrap})
    with pytest.raises(KafkaException):
        anonymous.list_topics(timeout=5)
    properties = kafka.config_file.read_text()
    assert "StandardAuthorizer" in properties and "allow.everyone.if.no.acl.found=false" in properties
    for secret in (kafka.config_file, kafka.admin_password_file, kafka.certificate.key_file):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"


@pytest.mark.kafka
def test_topics_are_not_auto_created(kafka: LocalKafka) -> None:
    producer = Producer(client_config(kafka.admin_access(), **{"message.timeout.ms": 3000}))
    errors: list[KafkaError] = []
    producer.produce("nobody-created-this", value=b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    assert errors and errors[0] is not None
    admin = AdminClient(client_config(kafka.admin_access()))
    assert "nobody-created-this" not in admin.list_topics(timeout=10).topics


@pytest.mark.kafka
def test_second_start_is_idempotent(kafka: LocalKafka) -> None:
    first = kafka.status()
    assert first.running and first.pid is not None
    again = LocalKafka(kafka.home, CACHE_DIR, PORT)  # as a second command would see it
    started = time.monotonic()
    assert again.start() == kafka.bootstrap
    assert time.monotonic() - started < 15
    assert again.status().pid == first.pid
    assert _processes_of(kafka) == [first.pid]


@pytest.mark.kafka
def test_status_is_truthful(kafka: LocalKafka, tmp_path: Path) -> None:
    never_started = LocalKafka(tmp_path, CACHE_DIR, SPARE_PORT).status()
    assert not never_started.running and never_started.pid is None
    assert never_started.bootstrap == f"127.0.0.1:{SPARE_PORT}"
    assert not (tmp_path / "kafka").exists()  # asking must not create state

    kafka.start()
    running = kafka.status()
    assert running.running and running.bootstrap == kafka.bootstrap
    args = Path(f"/proc/{running.pid}/cmdline").read_bytes().split(b"\0")
    assert b"kafka.Kafka" in args and str(kafka.config_file).encode() in args
    assert kafka.pid_file.read_text().strip() == str(running.pid)


@pytest.mark.kafka
def test_cli_status_exit_codes(kafka: LocalKafka, tmp_path: Path) -> None:
    kafka.start()
    ours = {"SHAREHUB_HOME": str(kafka.home), "SHAREHUB_LOCAL_KAFKA_PORT": str(PORT)}

    up = _cli("kafka", "status", **ours)
    assert up.returncode == 0, up.stderr
    assert "running" in up.stdout

    down = _cli("kafka", "status", SHAREHUB_HOME=str(tmp_path), SHAREHUB_LOCAL_KAFKA_PORT=str(SPARE_PORT))
    assert down.returncode == 3, down.stderr
    assert "not running" in down.stdout

    login = {
        "SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE": str(kafka.admin_password_file),
        "SHAREHUB_KAFKA_CA_FILE": str(kafka.ca_file),
    }
    external_up = _cli("kafka", "status", SHAREHUB_KAFKA_BOOTSTRAP=kafka.bootstrap, **login)
    assert external_up.returncode == 0, external_up.stderr
    # No login: not answered.
    ca = str(kafka.ca_file)
    unknown = _cli("kafka", "status", SHAREHUB_KAFKA_BOOTSTRAP=kafka.bootstrap, SHAREHUB_KAFKA_CA_FILE=ca)
    assert unknown.returncode == 3, unknown.stderr
    external_down = _cli("kafka", "status", SHAREHUB_KAFKA_BOOTSTRAP=f"127.0.0.1:{SPARE_PORT}")
    assert external_down.returncode == 3, external_down.stderr
    assert "NOT answering" in external_down.stdout


@pytest.mark.kafka
def test_cli_start_prints_the_address_last_and_is_idempotent(kafka: LocalKafka) -> None:
    pid = kafka.status().pid
    run = _cli("kafka", "start", SHAREHUB_HOME=str(kafka.home), SHAREHUB_LOCAL_KAFKA_PORT=str(PORT))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == kafka.bootstrap
    assert kafka.status().pid == pid


def test_cli_with_external_broker_starts_and_stops_nothing(tmp_path: Path) -> None:
    for command in ("start", "stop"):
        run = _cli("kafka", command, SHAREHUB_HOME=str(tmp_path), SHAREHUB_KAFKA_BOOTSTRAP="10.0.0.1:9092")
        assert run.returncode == 0, run.stderr
        assert "external" in run.stderr
    assert run.stdout == ""  # stop prints nothing machine-readable
    assert not (tmp_path / "kafka").exists()


# ---------------------------------------------------------------------- own brokers, own states


def test_stale_pid_file_counts_as_not_running(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, CACHE_DIR, SPARE_PORT)
    kafka.state_dir.mkdir(parents=True)

    gone = subprocess.Popen(["true"])
    gone.wait()
    kafka.pid_file.write_text(f"{gone.pid}\n")
    status = kafka.status()
    assert not status.running and status.pid is None
    assert "stale" in status.detail
    assert not kafka.pid_file.exists()

    # A pid reused by an unrelated process: not ours, and stop() must leave that process alone.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        kafka.pid_file.write_text(f"{stranger.pid}\n")
        assert not kafka.status().running
        assert not kafka.pid_file.exists()
        kafka.pid_file.write_text(f"{stranger.pid}\n")
        assert kafka.stop() is False
        assert stranger.poll() is None
        assert not kafka.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_port_held_by_another_process_is_reported(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", CONFLICT_PORT))
        holder.listen()
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{CONFLICT_PORT}.*already in use"):
            LocalKafka(tmp_path, CACHE_DIR, CONFLICT_PORT).start()
        run = _cli(
            "kafka", "start", SHAREHUB_HOME=str(tmp_path), SHAREHUB_LOCAL_KAFKA_PORT=str(CONFLICT_PORT)
        )
    assert run.returncode == 1
    assert "already in use" in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""


@pytest.mark.kafka
def test_failed_start_shows_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, CACHE_DIR, SPARE_PORT)

    # Time runs out: a JVM cannot answer within a tenth of a second.
    with pytest.raises(BrokerStartError, match=r"did not answer .* within") as timed_out:
        kafka.start(timeout=0.1)
    assert str(kafka.logs_dir) in str(timed_out.value)
    assert _processes_of(kafka) == [] and not kafka.pid_file.exists()

    # The process dies: storage formatted for another node id is refused at startup.
    meta = kafka.data_dir / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=2"))
    with pytest.raises(BrokerStartError, match="exited during startup") as died:
        kafka.start()
    assert "Stored node id 2 doesn't match" in str(died.value)
    assert _processes_of(kafka) == [] and not kafka.pid_file.exists()


def test_cluster_ids_look_like_kafkas() -> None:
    for _ in range(200):
        cluster_id = _new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_pom_pins_the_version_the_code_expects() -> None:
    assert f"<version>{KAFKA_VERSION}</version>" in POM.read_text()


# ---------------------------------------------------------------------- last: stops the module broker


@pytest.mark.kafka
def test_stop_leaves_no_process(kafka: LocalKafka) -> None:
    kafka.start()
    pid = kafka.status().pid
    assert pid is not None
    assert kafka.stop() is True
    assert not Path(f"/proc/{pid}").exists()
    assert _processes_of(kafka) == []
    assert not kafka.pid_file.exists()
    assert not kafka.status().running
    assert kafka.stop() is False
    down = _cli("kafka", "status", SHAREHUB_HOME=str(kafka.home), SHAREHUB_LOCAL_KAFKA_PORT=str(PORT))
    assert down.returncode == 3


def test_demo_up_on_unsecured_storage_says_what_to_remove(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, CACHE_DIR, SPARE_PORT)
    kafka.data_dir.mkdir(parents=True)
    (kafka.data_dir / "meta.properties").write_text("node.id=1\n")  # formatted by a release before logins
    run = _cli("demo", "up", SHAREHUB_HOME=str(tmp_path), SHAREHUB_LOCAL_KAFKA_PORT=str(SPARE_PORT))
    assert run.returncode == 1
    assert "formatted without authentication" in run.stderr and str(kafka.state_dir) in run.stderr
    assert "Traceback" not in run.stderr
    assert _processes_of(kafka) == []
