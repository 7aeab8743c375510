"""``sharehub audit access``: who queried what, when, why and under which agreement version, answered from
the access log alone (so from the auditor's own site as well as from the hub).

Records are named in the log by their pseudonyms (subject refs); the auditor, who holds no routing key, asks
the record's owner for the pseudonym of a record key (``sharehub agency pseudonym``, docs/audit.md) and
selects by that hex. Legacy records (from before access records were signed) are answered too, marked
``signed: false``; ``sharehub audit verify`` says whether the signed ones are authentic and complete.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from services.access_log import read_access_log
from sharehub.errors import InputError

_SUBJECT_REF = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class AccessQuestion:
    """Which access records: each criterion given narrows the answer; ``start``/``end`` bound ``at``
    (``[start, end)``)."""

    consumer: str | None = None
    dataset: str | None = None
    subject_ref: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.subject_ref is not None:
            if not _SUBJECT_REF.fullmatch(self.subject_ref):
                raise InputError("--subject-ref: a record's pseudonym, 32 lower-case hex digits")
            if self.dataset is None:
                raise InputError("--subject-ref needs --dataset: a record's pseudonym depends on its dataset")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise InputError(f"--from {self.start.isoformat()} is not before --to {self.end.isoformat()}")

    def holds(self, record: dict[str, Any]) -> bool:
        at: dt.datetime = record["at"]
        return (
            (self.consumer is None or record["consumer"] == self.consumer)
            and (self.dataset is None or record["dataset"] == self.dataset)
            and (self.subject_ref is None or self.subject_ref in record["record_refs"])
            and (self.start is None or at >= self.start)
            and (self.end is None or at < self.end)
        )


def answered(bootstrap: str, topic: str, question: AccessQuestion) -> list[dict[str, Any]]:
    """The access records ``question`` holds for, oldest first."""
    return sorted(_matching(bootstrap, topic, question), key=lambda r: r["at"])


def _matching(bootstrap: str, topic: str, question: AccessQuestion) -> Iterator[dict[str, Any]]:
    for record in read_access_log(bootstrap, topic):
        if question.holds(record):
            yield record


def as_json(record: dict[str, Any]) -> dict[str, Any]:
    """A record as one JSON object (times in ISO 8601, the chain link's hash in hex)."""
    out = dict(record)
    for name in ("at", "as_of"):
        if isinstance(out.get(name), dt.datetime):
            out[name] = out[name].isoformat()
    if isinstance(out.get("prev_hash"), bytes):
        out["prev_hash"] = out["prev_hash"].hex()
    return out
