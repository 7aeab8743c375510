"""docker-compose.yml describes the same stack: every setting it passes exists, every role is there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sharehub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(TEXT)


def _merge_keys_with_a_list_value(node: yaml.Node) -> list[int]:
    """Lines (1-based) of each `<<:` whose value is a sequence of maps, anywhere in the document."""
    found: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge" and isinstance(value, yaml.SequenceNode):
                found.append(key.start_mark.line + 1)
            found += _merge_keys_with_a_list_value(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _merge_keys_with_a_list_value(item)
    return found


def test_every_merge_takes_one_map_so_every_yaml_reader_agrees() -> None:
    # A list merge (`<<: [*a, *b]`) is resolved in different orders by different readers (PyYAML 6.0.3 and
    # 6.0.4 disagree): which service holds which secret must not depend on that.
    assert _merge_keys_with_a_list_value(yaml.compose(TEXT)) == []


def test_the_stack_has_every_part() -> None:
    assert set(COMPOSE["services"]) == {"kafka", "kafka-1", "kafka-2", "kafka-3", "postgres", "governance",
                                        "projector", "api"}  # fmt: skip
    assert COMPOSE["services"]["kafka"]["image"] == "apache/kafka:3.9.1"
    server = COMPOSE["configs"]["kafka_server"]["content"]
    assert "process.roles=broker,controller" in server
    # The same security as the local broker: SCRAM over TLS and mutual TLS for clients (no plaintext
    # client listener), SASL on the controller's, the authorizer, no default allow.
    assert "listener.security.protocol.map=CLIENTS:SASL_SSL,CONTROLLER:SASL_PLAINTEXT,AGENCIES:SSL" in server
    assert "listener.name.agencies.ssl.client.auth=required" in server
    assert "ssl.keystore.type=PEM" in server and "ssl.truststore.location=/run/secrets/hub_ca" in server
    assert "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$$/$$1/,DEFAULT" in server
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in server
    assert "allow.everyone.if.no.acl.found=false" in server
    assert COMPOSE["services"]["governance"]["command"] == ["gov", "apply", "--yes", "demo/hub.yaml"]
    assert COMPOSE["services"]["projector"]["command"] == ["project"]


def test_every_sharehub_variable_is_a_real_setting() -> None:
    fields = {f"SHAREHUB_{name.upper()}" for name in Settings.model_fields}
    for name, service in COMPOSE["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("SHAREHUB_"):
                assert variable in fields, f"{name}: {variable} is not a sharehub setting"


def test_no_password_is_written_in_the_file() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD:" not in text
    assert "POSTGRES_PASSWORD_FILE: /run/secrets/db_password" in text
    assert 'password="$$admin"' in text  # Kafka's passwords come from the secret at start


def test_docker_compose_accepts_the_file_when_it_is_installed() -> None:
    docker = shutil.which("docker")
    has_compose = (
        docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_compose:
        pytest.skip("`docker compose` is not installed here: only the structural checks in this file ran")
    result = subprocess.run([docker, "compose", "config", "-q"], cwd=REPO, capture_output=True, text=True)  # type: ignore[list-item]
    assert result.returncode == 0, result.stderr


def test_only_governance_and_its_api_hold_the_brokers_super_user_password() -> None:
    def holds(name: str) -> bool:
        service = COMPOSE["services"][name]
        in_environment = "SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE" in service.get("environment", {})
        return in_environment and "kafka_admin_password" in service.get("secrets", [])

    assert holds("governance") and holds("api")
    assert not holds("projector")
    # Every service still runs the hub's image with the database settings.
    for name in ("governance", "projector", "api"):
        service = COMPOSE["services"][name]
        assert service["image"] == "sharehub:latest"
        assert "SHAREHUB_READ_MODEL_URL" in service["environment"]


def test_every_wire_is_tls_verified_with_the_hub_ca() -> None:
    services = COMPOSE["services"]
    assert {"hub_ca", "kafka_tls_cert", "kafka_tls_key"} <= set(services["kafka"]["secrets"])
    for name in ("governance", "projector", "api"):
        service = services[name]
        assert service["environment"]["SHAREHUB_KAFKA_CA_FILE"] == "/run/secrets/hub_ca", name
        assert "hub_ca" in service["secrets"], name
    api = services["api"]
    assert {"api_tls_cert", "api_tls_key"} <= set(api["secrets"])
    assert api["environment"]["SHAREHUB_API_TLS_CERT_FILE"] == "/run/secrets/api_tls_cert"
    assert api["environment"]["SHAREHUB_API_TLS_KEY_FILE"] == "/run/secrets/api_tls_key"
    health = " ".join(api["healthcheck"]["test"])
    assert "https://127.0.0.1:8384/healthz" in health and "cafile='/run/secrets/hub_ca'" in health
    # Only the broker holds its key, only the API its own.
    for name, service in services.items():
        secrets = set(service.get("secrets", []))
        assert "kafka_tls_key" not in secrets or name == "kafka"
        assert not any(s.startswith("kafka_") and s.endswith("_tls_key") for s in secrets) or name.startswith(
            "kafka"
        )
        assert "api_tls_key" not in secrets or name == "api"


def test_the_cluster_profile_is_three_voters_replicating_three_ways_with_two_in_sync() -> None:
    services = COMPOSE["services"]
    nodes = [f"kafka-{n}" for n in (1, 2, 3)]
    assert all(services[n]["profiles"] == ["cluster"] for n in nodes)
    assert "profiles" not in services["kafka"], "the lone broker stays the default stack's"
    assert [services[n]["environment"]["NODE_ID"] for n in nodes] == ["1", "2", "3"]
    server = COMPOSE["configs"]["kafka_cluster_node"]["content"]
    settings = dict(line.split("=", 1) for line in server.splitlines() if "=" in line)
    assert settings["controller.quorum.voters"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert settings["node.id"] == "@NODE@" and "@NODE@" in settings["advertised.listeners"]
    for key, value in {
        "default.replication.factor": "3",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "false",
        "allow.everyone.if.no.acl.found": "false",
    }.items():
        assert settings[key] == value, key
    # The same security as the lone broker, line for line, apart from what places a node in its cluster.
    single = COMPOSE["configs"]["kafka_server"]["content"].splitlines()
    placing = ("node.id", "controller.quorum.voters", "advertised.listeners", "offsets.", "transaction.")
    assert {line for line in single if not line.startswith(placing)} <= set(server.splitlines())
    # Each node its own certificate and key; no node another's, and none the API's.
    for n in (1, 2, 3):
        secrets = set(services[f"kafka-{n}"]["secrets"])
        assert {f"kafka_{n}_tls_cert", f"kafka_{n}_tls_key", "hub_ca"} <= secrets
        assert not {s for s in secrets if s.endswith("_tls_key")} - {f"kafka_{n}_tls_key"}
        assert services[f"kafka-{n}"]["volumes"] == [f"kafka-{n}-data:/var/lib/kafka/data"]
