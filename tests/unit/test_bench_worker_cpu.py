"""The scale run's CPU per process of a projection worker, read from /proc: the faust process is the one
that runs ``project run``, its engine the one multiprocessing spawned; time spent by either is counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.load import command_line, cpu_seconds
from bench.scale import worker_cpu_seconds

#: A parent named like the worker's faust process, which burns CPU in a child spawned as the engine is.
_FAMILY = """
import multiprocessing, sys, time
def burn(seconds, then_wait=0.0):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    time.sleep(then_wait)
if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=burn, args=(0.6, 30.0))
    child.start()
    burn(0.3)
    print("ready", flush=True)
    time.sleep(30)
"""


def test_a_live_process_has_its_command_line_and_growing_cpu_time_and_a_gone_one_none() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) >= before + 0.15
    assert "python" in command_line(os.getpid())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert cpu_seconds(gone.pid) == 0.0 and command_line(gone.pid) == ""


def test_cpu_is_counted_for_the_worker_process_and_its_spawned_engine_apart(tmp_path: Path) -> None:
    script = tmp_path / "family.py"
    script.write_text(_FAMILY)
    # " project run" in its command line, as `python -m services project run` has
    proc = subprocess.Popen(
        [sys.executable, str(script), "project", "run"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        used = worker_cpu_seconds(proc.pid)
        while used["engine"] < 0.55 and time.monotonic() < deadline:
            time.sleep(0.05)
            used = worker_cpu_seconds(proc.pid)
        assert used["worker"] >= 0.25
        assert 0.55 <= used["engine"] < used["worker"] + 1.0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the spawned child too
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_process_of_neither_role_is_not_counted_as_either() -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert worker_cpu_seconds(other.pid) == {}
    finally:
        other.kill()
        other.wait()
