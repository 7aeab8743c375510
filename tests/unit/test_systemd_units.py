"""The systemd units in deploy/systemd/: what each runs, how it is restarted and stopped, and its hardening.
``systemd-analyze verify`` checks them too where systemd is installed."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from services.cli.up_command import WORKER_STOP_S

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
VENV_SHAREHUB = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sharehub"
INSTALLED_SHAREHUB = "/opt/sharehub/.venv/bin/sharehub"
COMMANDS = {
    "sharehub-project.service": "sharehub project",
    "sharehub-api.service": "sharehub serve",
    "sharehub-gateway.service": "sharehub serve gateway",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictSUIDSGID": "yes",
    "ReadWritePaths": "/var/lib/sharehub",
    "UMask": "0077",
}
#: Keys of systemd 254 and later that older ones ignore (the doubling restart pause).
NEWER_KEYS = ("RestartSteps", "RestartMaxDelaySec")


def _unit(name: str) -> configparser.ConfigParser:
    # strict=False: a unit may repeat a key (SystemCallFilter); the last one wins here (checked as text).
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


def test_every_unit_is_tested() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_unit_runs_its_command_restarted_on_failure_with_a_growing_pause(name: str) -> None:
    unit = _unit(name)
    service = unit["Service"]
    command = service["ExecStart"].split()
    assert Path(command[0]).name == "sharehub" and command[0].startswith("/")
    assert " ".join(["sharehub", *command[1:]]).startswith(COMMANDS[name])
    if name == "sharehub-api.service":
        assert command[1:] == ["serve"]
    assert service["Restart"] == "on-failure"
    # The supervisor's pause: 1 s, doubled (six steps reach the minute), at most a minute.
    assert (service["RestartSec"], service["RestartSteps"], service["RestartMaxDelaySec"]) == ("1", "6", "60")
    assert unit["Unit"]["StartLimitIntervalSec"] == "0", "never given up on, as the supervisor never gives up"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/sharehub/sharehub.env"
    assert service["Environment"] == "SHAREHUB_HOME=/var/lib/sharehub"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_unit_runs_unprivileged_and_hardened(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["User"] not in ("", "root", "0") and service["Group"] not in ("", "root", "0")
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert "~@privileged" in (UNITS / name).read_text(encoding="utf-8")


def test_the_worker_has_longer_to_stop_than_its_graceful_stop() -> None:
    assert float(_unit("sharehub-project.service")["Service"]["TimeoutStopSec"]) > WORKER_STOP_S


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: only the parsed checks above ran")
    for name in COMMANDS:  # verify checks that ExecStart's program exists: point it at this checkout's
        text = (UNITS / name).read_text(encoding="utf-8").replace(INSTALLED_SHAREHUB, str(VENV_SHAREHUB))
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in COMMANDS)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    complaints = [
        line for line in result.stderr.splitlines()
        if line.strip() and not re.search(rf"Unknown key '({'|'.join(NEWER_KEYS)})'", line)
    ]  # fmt: skip
    assert result.returncode == 0 and complaints == [], result.stderr
