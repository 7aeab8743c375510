"""Publishing one dataset from several processes, each the publisher of its share of the dataset's lanes.

One publishing process is bound by Python's GIL (about 85 µs of CPU an event on a 2-core machine) well
below what the broker takes. Each lane carries its own chain, so lanes can be sealed apart: process i of n
owns the lanes l with l % n == i and opens its own :class:`Publisher` for them (its own signing-key
session, key service client and producer; only its lanes' chains recovered), then seals, signs, sends and
checkpoints what it is handed. This process reads the source, validates each record
(:mod:`connectors.validated_chunks`: schema, quality rules, lines already on the topic), names its lane,
and hands each process its records in chunks, in the source's order: each lane's events keep the order of
the source, as with one process.

A publish returns once every process has flushed (its lanes' checkpoints written, every event
acknowledged); its report gathers theirs, refusals in line order. ``progress`` hears of each chunk's lines
once they were handed to the processes. The processes are started with ``spawn`` (nothing of this
process's Kafka clients is inherited) by ``opener``, a picklable callable given ``lanes=``: the SDK's
(:func:`connectors.sdk.open_lane_split_publisher`) holds the site's home, the dataset and the site's
passphrase, which cross the pipe to the child in memory, never a file or the command line, so each child
opens the site's key itself. Children die with this process and ignore Ctrl-C (this process stops them).

A process that fails or exits fails the publish with its error, and the publisher closes (the others
finish what they were handed): each lane holds whole events in chain order, and a resumed publish
(:mod:`connectors.exactly_once`) skips what the topic already holds.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from connectors.dataset_publishing import DatasetPublishing
from connectors.jsonl_source import BadLine, Line
from connectors.publisher import CHUNK, Publisher
from connectors.validated_chunks import ChunkValidator, PublishReport, Resume, Valid, ValidatedChunk, chunks
from sharehub.codec import DatasetKeys
from sharehub.errors import BrokerError, InputError, PublishingProcessError
from sharehub.gov.views import GovernanceView
from sharehub.lifetime import die_with, portable, receive_into

#: How long a publishing process may take to start (imports, governance, keys, its lanes' chains).
START_TIMEOUT_S = 120.0
#: How long a stopping process may take to flush what it was handed.
STOP_TIMEOUT_S = 90.0
#: Chunks a publishing process keeps received beyond the one it seals: how far this process runs ahead.
QUEUED = 2
#: Most processes one publisher starts.
MOST_PROCESSES = 64

Opener = Callable[..., Publisher]


class _Done(NamedTuple):
    """What a process answers at the end of a publish: its report, and lane → the offset after its last
    acknowledged event."""

    report: PublishReport
    acked_ends: dict[int, int]


class LaneSplitPublisher(DatasetPublishing):
    """Publishes records of one dataset as its owner, from ``processes`` processes (at most one a lane),
    each made by ``opener(lanes=...)``. Used as :class:`Publisher` is for lines (``publish_lines``,
    ``publish_records``, exactly-once resumption); close it, or use it as a context manager."""

    def __init__(
        self,
        *,
        bootstrap: str,
        governance: GovernanceView,
        keys: DatasetKeys,
        agency: str,
        dataset: str,
        processes: int,
        opener: Opener,
    ) -> None:
        if not 1 <= processes <= MOST_PROCESSES:
            raise InputError(f"publish from 1 to {MOST_PROCESSES} processes, not {processes}")
        super().__init__(
            bootstrap=bootstrap, governance=governance, keys=keys, agency=agency, dataset=dataset
        )
        #: The error that stopped the processes: the publisher is of no more use.
        self._broken: BaseException | None = None
        #: Every process finished the publish under way (or none is under way).
        self._settled = True
        self._processes: list[_LaneProcess] = []
        try:
            lanes = len(self._lanes())
            if not lanes:
                raise BrokerError(
                    f"topic {self.topic!r} does not exist; governance creates it when the dataset is declared"
                )
            self._validator = ChunkValidator(self._rules, self._codec, lanes, name_lanes=True)
            count = min(processes, lanes)
            context = multiprocessing.get_context("spawn")
            self._processes = [
                _LaneProcess(context, opener, frozenset(range(index, lanes, count))) for index in range(count)
            ]
            for process in self._processes:
                process.ready()
        except BaseException:
            self._stop()
            super().close()
            raise

    @property
    def processes(self) -> int:
        return len(self._processes)

    def publish_lines(
        self,
        lines: Iterable[Line | BadLine],
        *,
        event_type: str = "UPSERTED",
        resume: Resume | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PublishReport:
        """As :meth:`Publisher.publish_lines`, each lane's records sealed and sent by its process."""
        if self._broken is not None:
            raise PublishingProcessError(f"this publisher stopped after an error: {self._broken}")
        if not self._processes:
            raise PublishingProcessError("this publisher is closed")
        self._settled = False
        try:
            return self._publish(lines, event_type, resume, progress)
        except BaseException as exc:
            if not self._settled:  # a process failed, or this one was stopped while they publish
                self._broken = exc
                self._stop()
            raise

    def _publish(
        self,
        lines: Iterable[Line | BadLine],
        event_type: str,
        resume: Resume | None,
        progress: Callable[[int], None] | None,
    ) -> PublishReport:
        report = PublishReport()
        processes = self._processes
        for process in processes:
            process.send(("begin", resume))
        handed: list[list[Valid]] = [[] for _ in processes]
        try:
            for chunk in chunks(iter(lines), CHUNK):
                validated = self._validator.validated(chunk, resume, event_type)
                report.add(validated.refused)
                for valid in validated.valid:
                    handed[valid.lane % len(processes)].append(valid)
                for index, share in enumerate(handed):
                    if len(share) >= CHUNK:
                        processes[index].send(("chunk", share))
                        handed[index] = []
                if progress is not None:
                    progress(validated.lines)
        finally:  # as with one process: what was read before a source that failed part-way is still sent
            for index, share in enumerate(handed):
                if share:
                    processes[index].send(("chunk", share))
            for process in processes:
                process.send(("end", None))
            for process in processes:
                done = process.result()
                report.add(done.report)
                self.acked_ends.update(done.acked_ends)
            self._settled = True  # every process finished the publish: a source's error leaves them ready
        report.rejected.sort(key=lambda bad: bad.number)
        return report

    def close(self) -> None:
        """Have every process flush (checkpoints included) and exit, then let go of what was given to close;
        a process's failure to flush is raised."""
        try:
            failures = self._stop()
            if failures and self._broken is None:
                raise failures[0]
        finally:
            super().close()

    def _stop(self) -> list[BaseException]:
        """Stop every process; the errors they reported."""
        processes, self._processes = self._processes, []
        return [failure for process in processes if (failure := process.stop()) is not None]


class _LaneProcess:
    """One publishing process and the pipe to it."""

    def __init__(self, context: Any, opener: Opener, lanes: frozenset[int]) -> None:
        self.lanes = lanes
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child_end, os.getpid(), opener, lanes),
            name=f"sharehub-publish-lanes-{min(lanes)}",
        )
        self._process.start()
        child_end.close()

    def ready(self) -> None:
        """Wait until the process has opened its publisher; its error if it could not."""
        if not self._conn.poll(START_TIMEOUT_S):
            raise PublishingProcessError(
                f"the process publishing lanes {sorted(self.lanes)} did not start in {START_TIMEOUT_S:.0f} s"
            )
        self._answer()

    def send(self, message: tuple[str, Any]) -> None:
        try:
            self._conn.send(message)
        except OSError:
            raise self._gone() from None

    def result(self) -> _Done:
        done: _Done = self._answer()
        return done

    def _answer(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        if status == "error":
            raise value
        return value

    def _gone(self) -> BaseException:
        """Why the pipe broke: the error the process sent before it went, else its exit."""
        with contextlib.suppress(EOFError, OSError):
            if self._conn.poll(1.0):
                status, value = self._conn.recv()
                if status == "error":
                    return value  # type: ignore[no-any-return]
        self._process.join(STOP_TIMEOUT_S)
        return PublishingProcessError(
            f"the process publishing lanes {sorted(self.lanes)} exited (code {self._process.exitcode})"
        )

    def stop(self) -> BaseException | None:
        """Have the process flush and exit (killed past :data:`STOP_TIMEOUT_S`); the error it reported, if
        any."""
        failure = None
        with contextlib.suppress(OSError):
            self._conn.send(None)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with contextlib.suppress(EOFError, OSError):
            while self._conn.poll(max(0.0, deadline - time.monotonic())):
                status, value = self._conn.recv()  # the end of a publish cut short, then how it stopped
                if status == "error":
                    failure = value
                if status in ("error", "stopped"):
                    break
        self._process.join(max(0.0, deadline - time.monotonic()))
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
            failure = failure or PublishingProcessError(
                f"the process publishing lanes {sorted(self.lanes)} did not stop in {STOP_TIMEOUT_S:.0f} s"
            )
        self._conn.close()
        return failure


class _Closed(Exception):
    """The pipe from the parent closed (or said stop) in the middle of a publish."""


def _serve(conn: Connection, parent: int, opener: Opener, lanes: frozenset[int]) -> None:
    """A publishing process: open the publisher of ``lanes``, then publish each round of chunks it is handed
    (``begin``, ``chunk``..., ``end``) until the pipe closes or says stop; flush and close on the way out.

    A thread receives from the pipe, so the next chunk crosses it while this one is sealed; it holds at
    most :data:`QUEUED` chunks, and the parent waits beyond that."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops this process
    try:
        publisher = opener(lanes=lanes)
    except BaseException as exc:
        conn.send(("error", portable(exc, PublishingProcessError)))
        return
    received: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=QUEUED)
    threading.Thread(target=receive_into, args=(conn, received.put), daemon=True).start()
    try:
        conn.send(("ready", None))
        while (message := received.get()) is not None:
            kind, resume = message
            if kind != "begin":
                raise PublishingProcessError(f"a publish began with {kind!r}")
            report = publisher.publish_validated(_round(received), resume)
            conn.send(("done", _Done(report, dict(publisher.acked_ends))))
        publisher.close()
        conn.send(("stopped", None))
    except _Closed:
        with contextlib.suppress(Exception):
            publisher.close()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", portable(exc, PublishingProcessError)))
        with contextlib.suppress(Exception):
            publisher.close()


def _round(received: queue.Queue[tuple[str, Any] | None]) -> Iterator[ValidatedChunk]:
    """The chunks of one publish, until its ``end``."""
    while (message := received.get()) is not None:
        kind, valid = message
        if kind == "end":
            return
        yield ValidatedChunk(len(valid), valid, PublishReport())
    raise _Closed
