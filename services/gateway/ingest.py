"""What the gateway does with a request once it is let in: publish it exactly once, or answer as before.

Each request is one source of the exactly-once core, ``gateway:<Idempotency-Key>``, its positions the items
of the batch (1..n). The journal keeps, with the source, the SHA-256 of the request body (the same key with
another body is :class:`~sharehub.errors.IdempotencyConflict`) and, once done, the answer given: a retry is
answered from it and publishes nothing. A request cut short (the gateway killed, the broker away) is
resumed by its retry: the core reads the topic and sends only what is not there. A key is remembered for
``retention`` (24 h by default), then forgotten (pruned when a dataset is first used, then hourly).

All publishing runs on one thread (publishers, journals and the key store are not shared between threads);
the event loop only waits for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from connectors.exactly_once import ExactlyOnce, Send, SourceReport
from connectors.journal import Journal, SourceState
from connectors.jsonl_source import Line
from connectors.publisher import Publisher
from sharehub.errors import IdempotencyConflict, IdempotencyKeyInvalid, RecordValidationError

SOURCE_PREFIX = "gateway:"
RETENTION = dt.timedelta(hours=24)
PRUNE_EVERY_S = 3600.0
#: Printable ASCII without spaces, 1-200 characters (a UUID, a hash, a system's own request id).
KEY_PATTERN = re.compile(r"[!-~]{1,200}")
#: One request is one batch of the core: never split by its checkpoints.
_ONE_BATCH = 1 << 30

T = TypeVar("T")
#: (agency, dataset) → a publisher of ``dataset`` as ``agency``, signing as this gateway's mode says.
PublisherFactory = Callable[[str, str], Publisher]


def source_of(idempotency_key: str | None) -> str:
    """The core's source id of a request; IdempotencyKeyInvalid when the header is missing or malformed."""
    if idempotency_key is None:
        raise IdempotencyKeyInvalid("a write needs an Idempotency-Key header (the same on each retry)")
    if not KEY_PATTERN.fullmatch(idempotency_key):
        raise IdempotencyKeyInvalid("the Idempotency-Key must be 1-200 printable ASCII characters, no spaces")
    return SOURCE_PREFIX + idempotency_key


@dataclass
class _Dataset:
    """One dataset's publisher, journal and core, as this gateway holds them for its life."""

    publisher: Publisher
    journal: Journal
    core: ExactlyOnce
    pruned_at: float = field(default_factory=time.monotonic)


class Ingest:
    """Publishes requests' items exactly once per idempotency key, one dataset journal at a time."""

    def __init__(
        self,
        home: Path,
        publishers: PublisherFactory,
        *,
        custodial: bool,
        retention: dt.timedelta = RETENTION,
    ) -> None:
        self.home = home
        self.custodial = custodial
        self.retention = retention
        self._publishers = publishers
        self._datasets: dict[str, _Dataset] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-publish")

    async def run(self, work: Callable[[], T]) -> T:
        """``work`` on the publishing thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def publish_records(
        self, agency: str, dataset: str, source: str, digest: str, records: list[Any]
    ) -> tuple[dict[str, Any], bool]:
        """Seal and publish ``records`` (all valid, or RecordValidationError naming each bad one, and nothing
        is published); the answer, and whether it repeats an earlier one."""
        held = self._dataset(agency, dataset)
        answered = self._answered(held, dataset, source, digest)
        if answered is not None:
            return answered, True
        invalid = held.publisher.invalid_records(records)
        if invalid:
            shown = "; ".join(f"item {b.number}: {b.reason}" for b in invalid[:10])
            raise RecordValidationError(f"{len(invalid)} of {len(records)} records are invalid: {shown}")
        lines = [Line(i, r) for i, r in enumerate(records, start=1)]
        return self._publish(held, dataset, source, digest, lines, held.publisher.publish_lines), False

    def publish_envelopes(
        self, agency: str, dataset: str, source: str, digest: str, raws: list[bytes]
    ) -> tuple[dict[str, Any], bool]:
        """Verify ``raws`` as the agency's events of ``dataset`` (EnvelopeError, the codec's, naming the
        first that is not) and produce them unchanged; the answer, and whether it repeats an earlier one."""
        held = self._dataset(agency, dataset)
        answered = self._answered(held, dataset, source, digest)
        if answered is not None:
            return answered, True
        envelopes = held.publisher.verified_envelopes(raws)
        lines = [Line(i, e) for i, e in enumerate(envelopes, start=1)]
        return self._publish(held, dataset, source, digest, lines, held.publisher.publish_sealed), False

    def chain(self, agency: str, dataset: str) -> dict[str, Any]:
        """The dataset's lanes, and where the agency's chain stands in each (its next envelopes follow)."""
        lanes, heads = self._dataset(agency, dataset).publisher.chain_heads
        return {
            "dataset": dataset,
            "lanes": lanes,
            "heads": [
                {"lane": lane, "sequence": head.sequence, "hash": head.hash.hex()}
                for lane, head in sorted(heads.items())
            ],
        }

    def close(self) -> None:
        def close_all() -> None:
            for held in self._datasets.values():
                try:
                    held.publisher.close()
                finally:
                    held.journal.close()
            self._datasets.clear()

        self._thread.submit(close_all).result()
        self._thread.shutdown()

    # --- on the publishing thread -------------------------------------------------------------------------

    def _dataset(self, agency: str, dataset: str) -> _Dataset:
        held = self._datasets.get(dataset)
        if held is None:
            publisher = self._publishers(agency, dataset)  # refuses another owner, an unknown dataset
            try:
                journal = Journal(self.home, dataset)
            except BaseException:
                publisher.close()
                raise
            held = self._datasets[dataset] = _Dataset(
                publisher, journal, ExactlyOnce(publisher, journal, checkpoint_every=_ONE_BATCH)
            )
            self._prune(held)
        elif time.monotonic() - held.pruned_at > PRUNE_EVERY_S:
            self._prune(held)
        return held

    def _answered(self, held: _Dataset, dataset: str, source: str, digest: str) -> dict[str, Any] | None:
        state = held.journal.get(source)
        if state is None:
            return None
        if state.digest != digest:
            raise IdempotencyConflict(
                "this Idempotency-Key was used before with another request body; new content needs a new key"
            )
        if not state.done:
            return None  # cut short: the retry resumes it
        return state.outcome or _answer_of(state, dataset, source, self.custodial)

    def _publish(
        self, held: _Dataset, dataset: str, source: str, digest: str, lines: list[Line], send: Send
    ) -> dict[str, Any]:
        def outcome(report: SourceReport) -> dict[str, Any]:
            return {
                "dataset": dataset,
                "idempotency_key": source.removeprefix(SOURCE_PREFIX),
                "items": len(lines),
                "published": report.published + report.skipped,
                "rejected": [{"item": b.number, "reason": b.reason} for b in report.rejected],
                "custodial": self.custodial,
            }

        held.core.publish(
            source, lines, name=f"request {source.removeprefix(SOURCE_PREFIX)}", total=len(lines),
            send=send, digest=digest, outcome=outcome,
        )  # fmt: skip
        state = held.journal.get(source)
        assert state is not None and state.outcome is not None
        return state.outcome

    def _prune(self, held: _Dataset) -> None:
        horizon = (dt.datetime.now(dt.UTC) - self.retention).isoformat(timespec="seconds")
        held.journal.forget(
            [
                source
                for source, state in held.journal.sources.items()
                if source.startswith(SOURCE_PREFIX) and state.done and state.updated < horizon
            ]
        )
        held.pruned_at = time.monotonic()


def _answer_of(state: SourceState, dataset: str, source: str, custodial: bool) -> dict[str, Any]:
    """The answer of a finished source that kept none (a journal written before answers were kept)."""
    return {
        "dataset": dataset,
        "idempotency_key": source.removeprefix(SOURCE_PREFIX),
        "items": state.total or 0,
        "published": state.published + state.skipped,
        "rejected": [],
        "custodial": custodial,
    }
