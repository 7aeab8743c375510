"""The projection engine in a process of its own, so that a worker uses two cores: while the engine
verifies, decrypts and writes one batch, the worker's process takes the next from Kafka.

The engine process is built by a factory the worker names (a module-level function, imported anew in the
child: no key, password or open connection crosses the pipe, the child reads the same settings). Calls and
answers cross the pipe pickled: messages, decisions to quarantine, counts. It dies
with the worker: killed at once if the worker is killed (Linux's parent-death signal), and it stops when
its pipe closes. A batch killed half way is a transaction never committed, exactly as in one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from projections.engine import Judged, LocalEngine, Reconciliation
from projections.projector import LogMessage
from projections.read_model import TopicPartition

#: How long the engine process may take to start (imports, governance, keys, read models).
START_TIMEOUT_S = 120.0
#: How long a stopping engine process may take to finish its batch and close.
STOP_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1


class EngineProcessError(RuntimeError):
    """The engine process failed, or is gone."""


class EngineProcess:
    """A :class:`LocalEngine` made by ``factory(*args)`` in a child process, called through a pipe. Calls
    from several threads are taken one at a time."""

    def __init__(self, factory: Callable[..., LocalEngine], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end, os.getpid(), factory, args), name="sharehub-projection-engine"
        )
        self._process.start()
        child_end.close()
        self._lock = threading.Lock()
        if not self._conn.poll(START_TIMEOUT_S):
            self._process.kill()
            raise EngineProcessError(f"the projection engine did not start in {START_TIMEOUT_S:.0f} s")
        try:
            self._topics: list[str] = self._reply()
        except BaseException:
            self._process.join(STOP_TIMEOUT_S)
            raise

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def stored_offset(self, tp: TopicPartition) -> int:
        return int(self._call("stored_offset", tp))

    def forget(self, tps: Sequence[TopicPartition]) -> None:
        self._call("forget", list(tps))

    def commit(self, judged: Judged) -> None:
        self._call("commit", judged)

    def project(self, batch: Sequence[LogMessage]) -> Judged:
        judged: Judged = self._call("project", list(batch))
        return judged

    def reconcile(self) -> Reconciliation:
        done: Reconciliation = self._call("reconcile")
        return done

    def prune_history(self, before: dt.datetime) -> dict[str, int]:
        forgotten: dict[str, int] = self._call("prune_history", before)
        return forgotten

    def close(self) -> None:
        """Have the engine process finish and close its read models; kill it if it does not."""
        with self._lock:
            if self._process.pid is None or self._process.exitcode is not None:
                return
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(STOP_TIMEOUT_S)
            if self._process.exitcode is None:
                self._process.kill()
                self._process.join()
            self._conn.close()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((method, args))
            except OSError as exc:
                raise EngineProcessError(f"the projection engine is gone ({exc})") from None
            return self._reply()

    def _reply(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(1.0)
            raise EngineProcessError(
                f"the projection engine exited (code {self._process.exitcode})"
            ) from None
        if status == "error":
            raise value
        return value


def _serve(conn: Connection, parent: int, factory: Callable[..., LocalEngine], args: tuple[Any, ...]) -> None:
    """The engine process: answer calls until the pipe closes or says stop."""
    _die_with(parent)
    # Ctrl-C and a stop reach the whole process group: the worker stops this process once its batch is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        engine = factory(*args)
    except BaseException as exc:
        conn.send(("error", _portable(exc)))
        return
    try:
        conn.send(("ok", engine.topics))
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            if request is None:
                return
            method, args = request
            try:
                result = getattr(engine, method)(*args)
            except Exception as exc:
                conn.send(("error", _portable(exc)))
            else:
                conn.send(("ok", result))
    finally:
        engine.close()


def _die_with(parent: int) -> None:
    """Be killed the moment the worker dies, however it dies (Linux); or go now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the pipe, else an EngineProcessError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return EngineProcessError(f"{type(exc).__name__}: {exc}")
