"""The file-drop connector: publishes each CSV or JSON Lines file dropped in a folder exactly once.

A file is taken when it is *ready*: directly in the folder, named ``*.csv`` or ``*.jsonl``, not hidden
(``.name``) and unchanged (its modification time) for ``settle`` seconds. The safe way to drop a file is
to write it elsewhere on the same file system (or under a hidden name) and rename it into the folder: a
rename is atomic and keeps the time of the last write, so the file is whole when it is seen; a file
copied in slowly is left alone until it has not changed for ``settle`` seconds.

Each file's source id is the SHA-256 of its content, and its positions are line numbers, so the
exactly-once core (:mod:`connectors.exactly_once`) resumes a file after a crash and publishes nothing of
a file whose content was published before, whatever its name. Bad rows go to
``rejects/<file>.rejects.jsonl`` (``{"line": n, "reason": ...}``, no row content), each line once even
across restarts; a published file moves to ``done/``. A file that fails (the broker or the key service
away) stays where it is, its error in the journal, and is tried again at the next poll.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.csv_source import read_csv
from connectors.exactly_once import ExactlyOnce, SourceReport
from connectors.jsonl_source import BadLine, Line, read_jsonl
from sharehub.avro import RecordSchema
from sharehub.errors import ConfigurationError, SharehubError

SUFFIXES = (".csv", ".jsonl")
DONE, REJECTS = "done", "rejects"

#: Told, for each file as it starts, its name and line count; returns the callback that hears progress.
ProgressFactory = Callable[[str, int], Callable[[int], None]]


class StopRequested(Exception):
    """The connector was asked to stop (SIGTERM, Ctrl-C) in the middle of a file."""


@dataclass(frozen=True)
class FileFacts:
    """What the connector learns of a file in one read: its source id and its number of lines."""

    source: str
    lines: int

    @classmethod
    def of(cls, path: Path) -> FileFacts:
        digest, lines, last = hashlib.sha256(), 0, b"\n"
        with path.open("rb") as data:
            while chunk := data.read(1 << 20):
                digest.update(chunk)
                lines += chunk.count(b"\n")
                last = chunk
        if not last.endswith(b"\n"):  # a last line without its newline
            lines += 1
        return cls(f"file:sha256:{digest.hexdigest()}", lines)


class RejectsFile:
    """``rejects/<file>.rejects.jsonl``: one JSON line per bad row, each row's line once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: set[int] = set()
        if path.is_file():
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    self._seen.add(int(json.loads(raw)["line"]))
                except (ValueError, KeyError, TypeError):
                    continue

    def write(self, bad: list[BadLine]) -> None:
        new = [b for b in bad if b.number not in self._seen]
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            for b in new:
                out.write(json.dumps({"line": b.number, "reason": b.reason}, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())  # on disk before the journal moves past these lines
        self._seen.update(b.number for b in new)


class FileDrop:
    """Watches ``folder`` and publishes each ready file through ``core``."""

    def __init__(
        self,
        folder: Path,
        core: ExactlyOnce,
        schema: RecordSchema,
        *,
        settle: float = 5.0,
        progress: ProgressFactory | None = None,
    ) -> None:
        if not folder.is_dir():
            raise ConfigurationError(f"{folder} is not a folder the connector can watch")
        self.folder = folder
        self.core = core
        self.schema = schema
        self.settle = settle
        self.progress = progress
        self.stop = threading.Event()

    def ready_files(self) -> list[Path]:
        now = time.time()
        ready = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.suffix not in SUFFIXES or not path.is_file():
                continue
            if now - path.stat().st_mtime >= self.settle:
                ready.append(path)
        return ready

    def run(self, *, once: bool, poll: float = 2.0) -> None:
        """Publish ready files until stopped (or, ``once``, until none is left that can go now)."""
        while not self.stop.is_set():
            for path in self.ready_files():
                if self.stop.is_set():
                    return
                self.publish_file(path)
            if once:
                return
            self.stop.wait(poll)

    def publish_file(self, path: Path) -> SourceReport | None:
        """Publish one file and move it to ``done/``; None when it failed (kept, its error journaled)."""
        facts = FileFacts.of(path)
        rejects = RejectsFile(self.folder / REJECTS / f"{path.name}.rejects.jsonl")
        lines = read_csv(path, self.schema) if path.suffix == ".csv" else read_jsonl(path)
        hear = None if self.progress is None else self.progress(path.name, facts.lines)
        try:
            report = self.core.publish(
                facts.source, self._until_stopped(lines), name=path.name, total=facts.lines,
                progress=hear, on_rejected=rejects.write,
            )  # fmt: skip
        except SharehubError as exc:
            self.core.failed(facts.source, path.name, str(exc))
            return None
        _move_to_done(path, self.folder / DONE, facts.source)
        return report

    def _until_stopped(self, lines: Iterable[Line | BadLine]) -> Iterator[Line | BadLine]:
        for line in lines:
            if self.stop.is_set():
                raise StopRequested
            yield line


def _move_to_done(path: Path, done: Path, source: str) -> None:
    done.mkdir(exist_ok=True)
    target = done / path.name
    if target.exists():  # another file of that name was published before: keep both
        target = done / f"{path.stem}.{source.rsplit(':', 1)[-1][:12]}{path.suffix}"
    os.replace(path, target)
