"""What SQLite leaves on disk after rows are deleted, and how to leave nothing.

A deleted row's bytes stay in the database file's free space unless ``PRAGMA secure_delete`` is on (then
SQLite overwrites them with zeros), and earlier images of its page stay in the write-ahead log's frames,
even after a checkpoint, until the log is truncated. Stores that hold keys or personal data turn
``secure_delete`` on for every connection, and truncate the log after an erasure or a purge.
"""

from __future__ import annotations

import sqlite3
import time

#: How long a truncation waits for readers in the middle of a transaction to let the log go.
CHECKPOINT_TIMEOUT_S = 30.0


def truncate_write_ahead_log(db: sqlite3.Connection, timeout: float = CHECKPOINT_TIMEOUT_S) -> bool:
    """Copy every page of the write-ahead log into the database file and truncate the log to 0 bytes (its
    old frames hold earlier images of pages). A reader in the middle of a transaction holds it up: try
    again until ``timeout``. Returns whether the log is empty now."""
    deadline = time.monotonic() + timeout
    while True:
        busy, _log_frames, _copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
