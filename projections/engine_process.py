"""The projection engine in a process of its own, so that a worker uses two cores: while the engine
verifies, decrypts and writes one batch, the worker's process takes the next from Kafka.

The engine process is built by a factory the worker names (a module-level function, imported anew in the
child: no key, password or open connection crosses the pipe, the child reads the same settings). Calls and
answers cross the pipe pickled: messages, decisions to quarantine, counts. It dies
with the worker: killed at once if the worker is killed (Linux's parent-death signal), and it stops when
its pipe closes. A batch killed half way is a transaction never committed, exactly as in one process.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from projections.engine import Judged, LocalEngine, Reconciliation
from projections.projector import LogMessage
from projections.read_model_tables import TopicPartition
from sharehub.collector import collect_for_batches
from sharehub.errors import EngineProcessError
from sharehub.lifetime import die_with, portable, receive_into

#: How long the engine process may take to start (imports, governance, keys, read models).
START_TIMEOUT_S = 120.0
#: How long a stopping engine process may take to finish its batch and close.
STOP_TIMEOUT_S = 30.0
#: What may run while a decided batch waits for its commit (its commit, giving it up, reading a stored
#: position): every other call waits behind it.
_WHILE_A_BATCH_WAITS = frozenset({"commit", "abandon", "stored_offset"})
#: A call to the engine: (id, method, arguments).
_Call = tuple[int, str, tuple[Any, ...]]


class EngineProcess:
    """A :class:`LocalEngine` made by ``factory(*args)`` in a child process, called through a pipe.

    Calls go out in the order made, from any thread, and the engine takes them in that order; each answer
    comes back to the call that asked. :meth:`project_in_turn` does not wait for its answer, so the next
    batch crosses the pipe while the engine still projects the one before."""

    def __init__(self, factory: Callable[..., LocalEngine], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end, os.getpid(), factory, args), name="sharehub-projection-engine"
        )
        self._process.start()
        child_end.close()
        if not self._conn.poll(START_TIMEOUT_S):
            self._process.kill()
            raise EngineProcessError(f"the projection engine did not start in {START_TIMEOUT_S:.0f} s")
        try:
            status, topics = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(STOP_TIMEOUT_S)
            raise self._exited() from None
        if status == "error":
            self._process.join(STOP_TIMEOUT_S)
            raise topics
        self._topics: list[str] = topics
        #: Sending is one call at a time; the answers are read by a thread of their own.
        self._sending = threading.Lock()
        #: Calls waiting for their answer, by id; and, once the engine is gone, the error every call gets.
        self._asking = threading.Lock()
        self._asked: dict[int, Future[Any]] = {}
        self._gone: EngineProcessError | None = None
        #: Waiting for the process's exit is one thread at a time: two threads reaping it at once can leave
        #: one of them without the exit code (its ``waitpid`` finds the child already reaped by the other).
        self._reaping = threading.Lock()
        self._call_ids = itertools.count(1)
        self._answers = threading.Thread(target=self._read_answers, name="sharehub-engine-answers")
        self._answers.daemon = True
        self._answers.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def stored_offset(self, tp: TopicPartition) -> int:
        return int(self._call("stored_offset", tp))

    def resume_in_turn(self, tps: Sequence[TopicPartition]) -> Future[None]:
        answer: Future[None] = self._ask("resume", list(tps))
        return answer

    def lagging(self, live: Mapping[TopicPartition, int]) -> dict[str, dict[TopicPartition, int]]:
        behind: dict[str, dict[TopicPartition, int]] = self._call("lagging", dict(live))
        return behind

    def start_backfill(self, consumer: str) -> None:
        self._call("start_backfill", consumer)

    def join_stream_in_turn(self, consumer: str, tps: Sequence[TopicPartition]) -> Future[None]:
        answer: Future[None] = self._ask("join_stream", consumer, list(tps))
        return answer

    def backfill_in_turn(self, consumer: str, batch: Sequence[LogMessage]) -> Future[int]:
        answer: Future[int] = self._ask("backfill", consumer, list(batch))
        return answer

    def commit(self, judged: Judged) -> None:
        self._call("commit", judged)

    def abandon(self, reason: str) -> None:
        self._call("abandon", reason)

    def project(self, batch: Sequence[LogMessage]) -> Judged:
        return self.project_in_turn(batch).result()

    def project_in_turn(self, batch: Sequence[LogMessage]) -> Future[Judged]:
        answer: Future[Judged] = self._ask("project", list(batch))
        return answer

    def reconcile(self) -> Reconciliation:
        done: Reconciliation = self._call("reconcile")
        return done

    def prune_history(self, horizons: Mapping[str, dt.datetime]) -> dict[str, int]:
        forgotten: dict[str, int] = self._call("prune_history", dict(horizons))
        return forgotten

    def close(self) -> None:
        """Have the engine process finish and close its read models; kill it if it does not. Calls still
        unanswered then fail."""
        with self._sending:
            if self._process.pid is None or self._process.exitcode is not None:
                return
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._reap(STOP_TIMEOUT_S)
            if self._process.exitcode is None:
                self._process.kill()
                self._reap(None)
        self._answers.join(STOP_TIMEOUT_S)
        self._conn.close()

    def _reap(self, timeout: float | None) -> None:
        with self._reaping:
            self._process.join(timeout)

    def _exited(self) -> EngineProcessError:
        return EngineProcessError(f"the projection engine exited (code {self._process.exitcode})")

    def _call(self, method: str, *args: Any) -> Any:
        return self._ask(method, *args).result()

    def _ask(self, method: str, *args: Any) -> Future[Any]:
        """The call's answer to come. An engine already gone fails the answer, never the asking: a caller
        that does not wait (:meth:`project_in_turn`) learns it where it learns every other failure."""
        answer: Future[Any] = Future()
        with self._sending:
            with self._asking:
                if self._gone is not None:
                    answer.set_exception(self._gone)
                    return answer
                call_id = next(self._call_ids)
                self._asked[call_id] = answer
            try:
                self._conn.send((call_id, method, args))
            except OSError as exc:
                with self._asking:
                    unanswered = self._asked.pop(call_id, None) is answer
                if unanswered:  # else the answers' reader, finding the engine gone, has failed it already
                    answer.set_exception(self._gone_under_a_send(exc))
        return answer

    def _gone_under_a_send(self, exc: OSError) -> EngineProcessError:
        """The pipe broke under a send: the engine's exit once it has one, so that every call that learns
        of a dead engine says the same (whether its send broke the pipe or its answer never came); the
        pipe's own error while the process has not exited."""
        self._reap(1.0)
        if self._process.exitcode is not None:
            return self._exited()
        return EngineProcessError(f"the projection engine is gone ({exc})")

    def _read_answers(self) -> None:
        """Give each answer to its call until the engine is gone; then every call still waiting fails."""
        while True:
            try:
                call_id, status, value = self._conn.recv()
            except (EOFError, OSError):
                break
            with self._asking:
                answer = self._asked.pop(call_id)
            if status == "error":
                answer.set_exception(value)
            else:
                answer.set_result(value)
        self._reap(1.0)
        gone = self._exited()
        with self._asking:
            self._gone = gone
            unanswered, self._asked = self._asked, {}
        for answer in unanswered.values():
            answer.set_exception(gone)


def _serve(conn: Connection, parent: int, factory: Callable[..., LocalEngine], args: tuple[Any, ...]) -> None:
    """The engine process: answer calls in the order they came until the pipe closes or says stop.

    A thread receives the calls, so the next batch crosses the pipe while this one is projected. While a
    decided batch waits for its commit (its quarantined events go to Kafka first), every call that could
    change the read models or decide a later batch waits behind the commit (or the worker giving the batch
    up)."""
    die_with(parent)
    # Ctrl-C and a stop reach the whole process group: the worker stops this process once its batch is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        engine = factory(*args)
    except BaseException as exc:
        conn.send(("error", portable(exc, EngineProcessError)))
        return
    collect_for_batches()
    try:
        conn.send(("ok", engine.topics))
        calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        receiver = threading.Thread(target=receive_into, args=(conn, calls.put), name="sharehub-engine-calls")
        receiver.daemon = True
        receiver.start()
        held_back: collections.deque[_Call] = collections.deque()
        while True:
            if held_back and not engine.awaits_commit:
                call = held_back.popleft()
            else:
                received = calls.get()
                if received is None:
                    return
                if engine.awaits_commit and received[1] not in _WHILE_A_BATCH_WAITS:
                    held_back.append(received)
                    continue
                call = received
            call_id, method, call_args = call
            try:
                result = getattr(engine, method)(*call_args)
            except Exception as exc:
                conn.send((call_id, "error", portable(exc, EngineProcessError)))
            else:
                conn.send((call_id, "ok", result))
    finally:
        engine.close()
