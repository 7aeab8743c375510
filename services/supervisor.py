"""Keep a worker process running: restart it when it exits, at once when it asked to start over, after a
growing pause when it failed.

``sharehub project`` runs the projection worker under a :class:`Supervisor`. The worker exits with
:data:`START_OVER` when it must read governance and positions anew (a new dataset or consumer, a read model
sent back to a dataset's start, its engine gone): it is started again at once. Any other exit is a failure
(a crash, an exception faust could not handle, a kill): it is started again after a pause that doubles from
``first_pause_s`` up to ``max_pause_s``, and falls back to ``first_pause_s`` once a worker has run for
``stable_s``. The worker dies with the supervisor (parent-death signal), and SIGTERM or SIGINT to the
supervisor stops both: the worker gets SIGTERM (faust's graceful stop) and, after ``stop_timeout_s``, SIGKILL.

``sharehub up`` runs several supervisors at once (:func:`supervise_all`), each naming its part in its log
lines; a part that does not start over (the query API, the gateway) treats every exit as a failure.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from types import FrameType

from sharehub.lifetime import die_with

#: Exit status of a worker that stops to start over (EX_TEMPFAIL): restarted without a pause.
START_OVER = 75

log = logging.getLogger("sharehub.supervisor")


class Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        *,
        first_pause_s: float = 1.0,
        max_pause_s: float = 60.0,
        stable_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        name: str = "worker",
        starts_over: bool = True,
    ) -> None:
        self._command = list(command)
        #: What the log lines call the supervised part; whether its START_OVER exit restarts it at once.
        self.name, self._starts_over = name, starts_over
        self._first_pause, self._max_pause, self._stable = first_pause_s, max_pause_s, stable_s
        self._stop_timeout = stop_timeout_s
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._terminated: subprocess.Popen[bytes] | None = None
        #: How many times a worker was started, and how many of its exits were failures.
        self.starts = 0
        self.failures = 0

    def run(self) -> int:
        """Run until SIGTERM or SIGINT (then 0) or :meth:`stop`. Signals are handled when run in the main
        thread; otherwise only :meth:`stop` ends it."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        pause = self._first_pause
        while not self._stopping.is_set():
            started = time.monotonic()
            status = self._run_once()
            if self._stopping.is_set():
                break
            if status == START_OVER and self._starts_over:
                log.info("%s stopped to start over; starting a new one", self.name)
                pause = self._first_pause
                continue
            self.failures += 1
            if time.monotonic() - started >= self._stable:
                pause = self._first_pause
            log.error("%s %s; starting a new one in %.0f s", self.name, exit_reason(status), pause)
            if self._stopping.wait(pause):
                break
            pause = min(pause * 2, self._max_pause)
        return 0

    def stop(self) -> None:
        self._stopping.set()
        self._terminate(self._child)

    def _terminate(self, child: subprocess.Popen[bytes] | None) -> None:
        # Once: a second SIGTERM makes uvicorn and faust skip their graceful stop.
        if child is not None and child is not self._terminated and child.poll() is None:
            self._terminated = child
            child.send_signal(signal.SIGTERM)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop()

    def _run_once(self) -> int:
        parent = os.getpid()
        self._child = subprocess.Popen(self._command, preexec_fn=lambda: die_with(parent))  # noqa: PLW1509
        self.starts += 1
        if self._stopping.is_set():  # stopped while it was being started
            self._terminate(self._child)
        log.info("%s started (pid %d)", self.name, self._child.pid)
        while True:
            try:
                return self._child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if self._stopping.is_set():
                    return self._stop_child()

    def _stop_child(self) -> int:
        assert self._child is not None
        try:
            return self._child.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within %.0f s; killing it", self.name, self._stop_timeout)
            self._child.kill()
            return self._child.wait()


def exit_reason(status: int) -> str:
    """How a child ended, for a log line: ``exited with status 3``, ``was killed by SIGKILL (status -9)``."""
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name} (status {status})"
        except ValueError:
            pass
    return f"exited with status {status}"


def supervise_all(supervisors: Sequence[Supervisor]) -> int:
    """Run each supervisor on a thread of its own until SIGTERM or SIGINT (then stop them all, each part
    gracefully, and return 0). Call in the main thread. Each thread outlives its child, so the children's
    parent-death signal (sent when the thread that started them ends) fires only when this process dies."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: _stop_all(supervisors, signal.Signals(signum).name))
    threads = [threading.Thread(target=s.run, name=s.name) for s in supervisors]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)  # short waits: the main thread must run the signal handler
    log.info("every part stopped")
    return 0


def _stop_all(supervisors: Sequence[Supervisor], why: str) -> None:
    log.info("%s: stopping %s", why, ", ".join(s.name for s in supervisors))
    for supervisor in supervisors:
        supervisor.stop()
