"""The soak's publishing load, a process of its own: ``python -m bench.soak.publish_load RATE SECONDS``.

New party members at RATE events a second for SECONDS, published with the hub's own publisher (idempotent,
acks=all) of the hub in ``SHAREHUB_HOME``, in batches of half a second's worth, each when it is due
(an open loop: a publisher that falls behind sends the next batch at once, and how far behind it is shows
in ``behind_s``, rather than quietly publishing less). Members come from one generator stream: starting
one per batch costs more than the batch's publishing. A batch counts as acknowledged only when
``publish_records`` returned; a failed batch is counted and not retried (:mod:`bench.chaos.load`).

Once its publisher is made (governance read, chains recovered from the log) it writes ``{"ready": true}``
and starts on the line ``go`` on stdin, so both loads start together whatever their start-up took. Then
every second a JSON line on stdout: ``{"t": monotonic seconds, "acked": events, "failed_batches": n,
"behind_s": worst lateness}``; at the end ``{"acknowledged": [[first index, count], ...], "seconds": from
go to the last batch}``: member ``PM`` + index + 1 on ten digits
(:func:`tooling.synthetic.generate_party_members`).
"""

from __future__ import annotations

import itertools
import sys
import time

from bench.chaos.load import DATASET
from bench.soak.lines import emit, ready_then_wait_for_go
from connectors.publisher import Publisher
from services.hub import Hub
from sharehub.errors import SharehubError
from tooling.synthetic import generate_party_members

OWNER = "coc"
SEED = 2000
#: Each ``publish_records`` ends with a flush (a checkpoint of every lane that moved, then every ack waited
#: for): a tenth of a second's batches spent most of their time there, half a second's amortise it.
BATCHES_PER_S = 2
REPORT_EVERY_S = 1.0


def acknowledged_ranges(batches: list[tuple[int, int]]) -> list[list[int]]:
    """Contiguous (first index, count) batches merged into as few ranges as they make."""
    merged: list[list[int]] = []
    for first, count in sorted(batches):
        if merged and merged[-1][0] + merged[-1][1] == first:
            merged[-1][1] += count
        else:
            merged.append([first, count])
    return merged


def run(rate: float, seconds: float) -> None:
    batch = max(1, round(rate / BATCHES_PER_S))
    batches_due = int(seconds * rate / batch)
    members = generate_party_members(batches_due * batch, SEED)
    acknowledged: list[tuple[int, int]] = []
    with Hub() as hub:
        publisher: Publisher | None = hub.publisher(OWNER, DATASET)
        ready_then_wait_for_go()
        acked = failed = 0
        behind = 0.0
        start = time.monotonic()
        next_report = start + REPORT_EVERY_S
        for i in range(batches_due):
            due = start + i * batch / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            behind = max(behind, time.monotonic() - due)
            records = list(itertools.islice(members, batch))
            try:
                if publisher is None:
                    publisher = hub.publisher(OWNER, DATASET)
                report = publisher.publish_records(records)
            except SharehubError:
                failed += 1
                publisher = None  # a new one recovers its chains from the log as it is now
            else:
                if report.published == len(records):
                    acknowledged.append((i * batch, len(records)))
                    acked += len(records)
                else:
                    failed += 1
            if time.monotonic() >= next_report:
                emit({"t": time.monotonic(), "acked": acked, "failed_batches": failed, "behind_s": behind})
                acked = failed = 0
                behind = 0.0
                next_report += REPORT_EVERY_S
        emit({"t": time.monotonic(), "acked": acked, "failed_batches": failed, "behind_s": behind})
        seconds = time.monotonic() - start
        if publisher is not None:
            publisher.close()
    emit({"acknowledged": acknowledged_ranges(acknowledged), "seconds": seconds})


if __name__ == "__main__":
    run(float(sys.argv[1]), float(sys.argv[2]))
