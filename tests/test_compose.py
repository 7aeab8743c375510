"""docker-compose.yml describes the same stack: every setting it passes exists, every role is there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from sharehub.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_the_stack_has_every_part() -> None:
    assert set(COMPOSE["services"]) == {"kafka", "postgres", "governance", "projector", "api"}
    assert COMPOSE["services"]["kafka"]["image"] == "apache/kafka:3.9.1"
    server = COMPOSE["configs"]["kafka_server"]["content"]
    assert "process.roles=broker,controller" in server
    # The same security as the local broker: SCRAM on every listener, the authorizer, no default allow.
    assert "listener.security.protocol.map=CLIENTS:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT" in server
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
        return  # the structural checks above still ran; `docker compose` is not on every machine
    result = subprocess.run([docker, "compose", "config", "-q"], cwd=REPO, capture_output=True, text=True)  # type: ignore[list-item]
    assert result.returncode == 0, result.stderr


def test_only_governance_and_its_api_hold_the_brokers_super_user_password() -> None:
    def holds(name: str) -> bool:
        service = COMPOSE["services"][name]
        merged: dict[str, object] = {}
        for part in service.get("<<", []) if isinstance(service.get("<<"), list) else [service.get("<<", {})]:
            merged.update(part.get("environment", {}))
        merged.update(service.get("environment", {}))
        return "SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE" in merged

    assert holds("governance") and holds("api")
    assert not holds("projector")
