"""Background hub processes: started once, stopped for real, and never confused with a stranger's pid."""

from __future__ import annotations

import os
from pathlib import Path

from services import processes
from services.hub import Hub
from tests.kafka_helpers import free_port, hub_env, wait_until


def test_a_started_process_is_found_and_stopped(offline_hub: Hub) -> None:
    args = ["serve", "--port", str(free_port())]
    pid, _log = processes.start(offline_hub.home, "api", args, env=hub_env(offline_hub))
    try:
        assert processes.running_pid(offline_hub.home, "api") == pid
        again, _ = processes.start(offline_hub.home, "api", args, env=hub_env(offline_hub))
        assert again == pid  # idempotent: one process, not two
    finally:
        assert processes.stop(offline_hub.home, "api")
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the process to be gone")
    assert processes.running_pid(offline_hub.home, "api") is None
    assert not processes.stop(offline_hub.home, "api")


def test_a_pid_file_naming_a_foreign_process_is_stale(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "api.pid").write_text(str(os.getpid()))  # pytest itself: alive, but not a hub process
    assert processes.running_pid(tmp_path, "api") is None
    assert not (run / "api.pid").exists()


def test_a_process_that_outlives_its_sigterm_is_killed_and_reaped_before_stop_returns(
    offline_hub: Hub,
) -> None:
    args = ["serve", "--port", str(free_port())]
    pid, _log = processes.start(offline_hub.home, "api", args, env=hub_env(offline_hub))
    assert processes.stop(offline_hub.home, "api", timeout=0.0)  # no grace: straight to SIGKILL
    assert not Path(f"/proc/{pid}").exists(), "gone, not a zombie, when stop returns"
    assert pid not in processes._children
