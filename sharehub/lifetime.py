"""A child process that must not outlive its parent: killed the moment the parent dies (Linux's
parent-death signal), however the parent dies, even by SIGKILL; what its parent sends it, taken off the pipe
as it comes; and its errors, made fit to cross the pipe back."""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Call in the child: be killed when ``parent`` dies; or exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def portable(exc: BaseException, fallback: Callable[[str], BaseException]) -> BaseException:
    """``exc`` if it survives a pipe to the parent (pickled), else ``fallback`` of a message naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return fallback(f"{type(exc).__name__}: {exc}")


def receive_into(conn: Connection, put: Callable[[Any], None]) -> None:
    """Hand each message from ``conn`` to ``put`` as it comes (a thread's loop); None once the pipe closes or
    the sender says stop (sends None). ``put`` may block: the sender then waits once the pipe is full."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        put(message)
        if message is None:
            return
