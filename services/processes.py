"""Hub processes run in the background (projection worker, query API): pid files, logs, clean stops."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Children started by this process, kept so they can be waited for (and are not reported as leaked).
_children: dict[int, subprocess.Popen[bytes]] = {}
#: Seconds to wait for a process killed with SIGKILL to be gone (and reaped, when it is a child).
KILL_WAIT_S = 5.0


#: Every process started here runs ``python -m services ...``; a pid whose command line lacks it is not ours.
_LAUNCH_MARKER = b"\x00-m\x00services\x00"


def _paths(home: Path, name: str) -> tuple[Path, Path]:
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    return run / f"{name}.pid", run / f"{name}.log"


def running_pid(home: Path, name: str) -> int | None:
    pid_file, _ = _paths(home, name)
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    _reap(pid)
    child = _children.get(pid)
    if child is not None:  # started here: ours, even in the instant before it has exec'd
        if child.poll() is None:
            return pid
        _forget(pid_file)
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        pid_file.unlink(missing_ok=True)
        return None
    if _LAUNCH_MARKER not in cmdline:  # the pid was reused by something else
        pid_file.unlink(missing_ok=True)
        return None
    return pid


def _forget(pid_file: Path) -> None:
    pid_file.unlink(missing_ok=True)


def start(
    home: Path,
    name: str,
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    stdout_file: Path | None = None,
) -> tuple[int, Path]:
    """Start ``sharehub ARGS`` in the background unless it already runs; returns (pid, log file). Its
    output goes to the log; or, with ``stdout_file``, its stdout (what it prints as a result) goes there and
    its stderr to the log."""
    pid_file, log_file = _paths(home, name)
    pid = running_pid(home, name)
    if pid is not None:
        return pid, log_file
    with log_file.open("ab") as log, contextlib.ExitStack() as outputs:
        result = outputs.enter_context(stdout_file.open("wb")) if stdout_file is not None else None
        proc = subprocess.Popen(
            [sys.executable, "-m", "services", *args],
            stdout=log if result is None else result,
            stderr=subprocess.STDOUT if result is None else log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    _children[proc.pid] = proc
    pid_file.write_text(str(proc.pid))
    return proc.pid, log_file


def stop(home: Path, name: str, timeout: float = 20.0) -> bool:
    pid = running_pid(home, name)
    pid_file, _ = _paths(home, name)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        _reap(pid)
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        os.killpg(pid, signal.SIGKILL)
        killed_by = time.monotonic() + KILL_WAIT_S  # a SIGKILL is delivered, not done, when it returns
        while pid in _children and time.monotonic() < killed_by:
            _reap(pid)
            time.sleep(0.05)
        _reap(pid)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
