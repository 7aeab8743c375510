"""A connector's local journal at the site: per dataset, what it knows of each source it has started.

One JSON file per dataset (``<home>/connectors/<dataset>.journal.json``), replaced atomically (written to a
temporary file, fsynced, renamed, the folder fsynced): a kill -9 leaves the old journal or the new one,
never half of one. An exclusive lock (``flock``) on ``<dataset>.lock`` keeps a second connector of the same
dataset out while one runs: the exactly-once reasoning (:mod:`connectors.exactly_once`) needs one writer.
The journal is also what ``sharehub connect status`` shows; it holds no record content, only names,
counts, positions and errors.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sharehub.errors import ConfigurationError
from sharehub.keys import write_private

FOLDER = "connectors"


@dataclass
class SourceState:
    """One source as the journal knows it."""

    #: What a person calls it (a file's name); the source id itself is a content hash or a table.
    name: str
    #: Lines (rows) the source holds, when known.
    total: int | None = None
    #: Every position up to this one is on the topic, or was rejected (written after the broker's acks).
    acked: int = 0
    #: Lane → an offset at or after which every event of this source past ``acked`` lies (written before
    #: any of them was sent); recovery reads the topic down to it and no further.
    marks: dict[int, int] = field(default_factory=dict)
    published: int = 0
    skipped: int = 0
    rejected: int = 0
    done: bool = False
    #: Never done (an outbox table): fed batch after batch, its positions are not line counts.
    endless: bool = False
    #: Of an endless source: rows beyond ``acked`` at the source when it last looked (its lag).
    pending: int | None = None
    #: The last error that stopped this source (cleared when it goes on).
    error: str | None = None
    updated: str = ""
    #: The hash of the content the source was started with, when its id does not name it (a gateway's
    #: idempotency key): the same id offered with other content is a conflict.
    digest: str | None = None
    #: What the connector answered for the finished source (a gateway's response), to answer a retry alike.
    outcome: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SourceState:
        state = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        state.marks = {int(lane): int(offset) for lane, offset in raw.get("marks", {}).items()}
        return state


def journal_paths(home: Path) -> list[Path]:
    """Every dataset journal at the site."""
    return sorted((home / FOLDER).glob("*.journal.json"))


def read_journal(path: Path) -> dict[str, SourceState]:
    """Source id → state, from one journal file (read-only; no lock)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {source: SourceState.from_json(state) for source, state in raw["sources"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"the connector journal {path} is unreadable: {exc}") from None


class Journal:
    """The journal of one dataset at one site, held exclusively while open."""

    def __init__(self, home: Path, dataset: str) -> None:
        folder = home / FOLDER
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / f"{dataset}.journal.json"
        self._lock = (folder / f"{dataset}.lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigurationError(
                f"another connector of {dataset!r} is running at this site (it holds {folder}/{dataset}.lock)"
            ) from None
        self.sources = read_journal(self.path)

    def get(self, source: str) -> SourceState | None:
        return self.sources.get(source)

    def put(self, source: str, state: SourceState) -> None:
        """Record ``state`` durably before returning."""
        state.updated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.sources[source] = state
        self._write()

    def _write(self) -> None:
        data = {"sources": {s: asdict(st) for s, st in self.sources.items()}}
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)

    def forget(self, sources: list[str]) -> None:
        """Drop ``sources`` from the journal (finished ones past their retention), durably."""
        if not sources:
            return
        for source in sources:
            self.sources.pop(source, None)
        self._write()

    def close(self) -> None:
        self._lock.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
