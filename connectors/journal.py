"""A connector's local journal at the site: per dataset, what it knows of each source it has started.

One SQLite file per dataset (``<home>/connectors/<dataset>.journal.db``, owner-only), one row per source,
each change written in its own transaction (WAL, ``synchronous=FULL``) before it returns: a kill -9 or a
power cut leaves every change that returned, and a change costs the same whether the journal holds ten
sources or a day of a gateway's requests. An exclusive lock (``flock``) on ``<dataset>.lock`` keeps a
second connector of the same dataset out while one runs: the exactly-once reasoning
(:mod:`connectors.exactly_once`) needs one writer. The journal is also what ``sharehub connect status``
shows; it holds no record content, only names, counts, positions and errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sharehub.errors import ConfigurationError

FOLDER = "connectors"
_SUFFIX = ".journal.db"
#: The journal's form before it was a database: read once into the database, then removed.
_JSON_SUFFIX = ".journal.json"


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


def journal_path(home: Path, dataset: str) -> Path:
    """Where the journal of ``dataset`` is kept at the site ``home``."""
    return home / FOLDER / f"{dataset}{_SUFFIX}"


def journal_paths(home: Path) -> list[Path]:
    """Every dataset journal at the site."""
    return sorted((home / FOLDER).glob(f"*{_SUFFIX}"))


def journal_dataset(path: Path) -> str:
    """The dataset a journal file is of."""
    return path.name.removesuffix(_SUFFIX)


def read_journal(path: Path) -> dict[str, SourceState]:
    """Source id → state, from one journal file (no lock: a running connector's writes are whole
    transactions, seen or not); empty when there is none. Opened for writing all the same: a reader of a WAL
    database left by a connector killed mid-write must be able to recover it to see its last changes."""
    if not path.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sources'").fetchone() is None:
                return {}  # a journal being made this moment: nothing in it yet
            return dict(_rows(db))
    except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"the connector journal {path} is unreadable: {exc}") from None


def _rows(db: sqlite3.Connection) -> Iterator[tuple[str, SourceState]]:
    for source, state in db.execute("SELECT source, state FROM sources"):
        yield source, SourceState.from_json(json.loads(state))


class Journal:
    """The journal of one dataset at one site, held exclusively while open."""

    def __init__(self, home: Path, dataset: str) -> None:
        folder = home / FOLDER
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = journal_path(home, dataset)
        self._lock = (folder / f"{dataset}.lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigurationError(
                f"another connector of {dataset!r} is running at this site (it holds {folder}/{dataset}.lock)"
            ) from None
        try:
            self._db = _open(self.path)
            self.sources = dict(_rows(self._db))
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            self._lock.close()
            raise ConfigurationError(f"the connector journal {self.path} is unreadable: {exc}") from None
        self._take_json_journal(folder / f"{dataset}{_JSON_SUFFIX}")

    def get(self, source: str) -> SourceState | None:
        return self.sources.get(source)

    def put(self, source: str, state: SourceState) -> None:
        """Record ``state`` durably before returning."""
        state.updated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._write([(source, state)])
        self.sources[source] = state

    def forget(self, sources: list[str]) -> None:
        """Drop ``sources`` from the journal (finished ones past their retention), durably."""
        if not sources:
            return
        with self._db:
            self._db.executemany("DELETE FROM sources WHERE source = ?", [(s,) for s in sources])
        for source in sources:
            self.sources.pop(source, None)

    def close(self) -> None:
        self._db.close()
        self._lock.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _write(self, states: list[tuple[str, SourceState]]) -> None:
        rows = [(source, json.dumps(asdict(state), sort_keys=True)) for source, state in states]
        with self._db:
            self._db.executemany(
                "INSERT INTO sources (source, state) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET state = excluded.state",
                rows,
            )

    def _take_json_journal(self, old: Path) -> None:
        """A journal kept as JSON by an earlier release: its sources move into the database, then it goes."""
        if not old.exists():
            return
        try:
            raw = json.loads(old.read_text(encoding="utf-8"))
            taken = {source: SourceState.from_json(state) for source, state in raw["sources"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.close()
            raise ConfigurationError(f"the connector journal {old} is unreadable: {exc}") from None
        self._write([(s, st) for s, st in taken.items() if s not in self.sources])
        self.sources = {**taken, **self.sources}
        old.unlink()


def _open(path: Path) -> sqlite3.Connection:
    """The journal's database, made owner-only before its first byte."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA secure_delete=ON")
    db.execute("CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, state TEXT NOT NULL)")
    db.isolation_level = "DEFERRED"  # from here on, `with db:` is one transaction
    return db
