"""Killing a process under test at a chosen point of its work: each look at its state is taken with it stopped
(SIGSTOP, every thread), so what the look saw is still true when the SIGKILL lands, however fast it runs."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], *, timeout: float = 120) -> None:
    """SIGKILL ``process`` at the first look where ``ready()`` holds, letting it run about 10 ms between
    looks; fails when it ends first. ``ready`` answers False, never raises, when it cannot tell."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        _stop(process)
        if ready():
            break
        process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the process finished before it could be killed"


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGSTOP)
    tasks = Path(f"/proc/{process.pid}/task")
    while not all(_stopped(task) for task in tasks.iterdir()):
        time.sleep(0.001)


def _stopped(task: Path) -> bool:
    try:
        stat = (task / "stat").read_text()
    except FileNotFoundError:  # a thread that has ended
        return True
    return stat[stat.rindex(")") + 2] in "tTZX"
