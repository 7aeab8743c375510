"""A dataset's retention: how long its topic keeps each event, declared with it and changed later.

``retention_ms`` is set by ``DatasetDeclared`` and changed by ``DatasetRetentionChanged`` (the owner's or the
operator's decision, with a reason): -1 keeps the events for ever, a positive number of milliseconds deletes
each one once it is that old. Provisioning gives the topic the current retention; the read models' history
horizons follow the current one too (:mod:`sharehub.history`).

Records a topic no longer holds are judged by the retention *in force*, not the current one alone: each
dataset remembers its retentions and when each took effect, and :func:`retains_from` reduces them to the
first moment a retention could have deleted one of its events. A retention declared with the dataset could
from the start (as the audit always took it: it never sees a deleted record's time). One that follows a time
kept for ever could delete nothing before it took effect, nor before the dataset's oldest possible event
(its declaration) was that old; and it counts only if it lasted that long. So records deleted while the
dataset was kept for ever stay a finding until a later retention could itself have deleted them, and a
retention lengthened again (even to for ever) takes back nothing it could already have deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sharehub.errors import InputError
from sharehub.gov import events as ev
from sharehub.gov.views import KEPT_FOR_EVER

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

#: The longest retention the log can hold (an Avro long, as Kafka's ``retention.ms``).
LONGEST_MS = 2**63 - 1
#: One retention and when it took effect; a dataset's first is its declaration's.
Period = tuple[dt.datetime, int]


def check_retention_ms(what: str, retention_ms: int) -> None:
    """``retention_ms`` is -1 (for ever) or from 1 ms to :data:`LONGEST_MS`; InputError naming ``what``
    otherwise."""
    if retention_ms != KEPT_FOR_EVER and not 1 <= retention_ms <= LONGEST_MS:
        raise InputError(
            f"{what}: retention_ms must be -1 (for ever) or from 1 to {LONGEST_MS} milliseconds, "
            f"not {retention_ms}"
        )


def check_changed(state: GovState, p: ev.DatasetRetentionChanged) -> None:
    """A new retention: in range, and other than the current one."""
    what = f"dataset {p.dataset!r}"
    check_retention_ms(what, p.retention_ms)
    if p.retention_ms == state.datasets_[p.dataset].retention_ms:
        now = describe(p.retention_ms)
        raise InputError(f"{what} already keeps its events {now}: the change changes nothing")


def describe(retention_ms: int) -> str:
    """``for ever``, or ``86400000 ms``."""
    return "for ever" if retention_ms == KEPT_FOR_EVER else f"{retention_ms} ms"


def retains_from(periods: Sequence[Period]) -> dt.datetime | None:
    """The first moment one of the dataset's retentions (``periods``, oldest first, its declaration's
    first) could delete one of its events; None: none ever could (kept for ever throughout, or each
    retention after a time kept for ever ended before it could)."""
    if not periods:
        return None
    declared_at = periods[0][0]
    moments = []
    for n, (since, retention_ms) in enumerate(periods):
        if retention_ms == KEPT_FOR_EVER:
            continue
        first = since if n == 0 else _aged(since, declared_at, retention_ms)
        until = periods[n + 1][0] if n + 1 < len(periods) else None
        if until is None or first <= until:
            moments.append(first)
    return min(moments, default=None)


def _aged(since: dt.datetime, declared_at: dt.datetime, retention_ms: int) -> dt.datetime:
    """When a retention taking effect at ``since`` could first delete an event written no earlier than
    ``declared_at`` (at the latest, the last representable time)."""
    try:
        return max(since, declared_at + dt.timedelta(milliseconds=retention_ms))
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)
