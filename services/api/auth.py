"""Who is calling the HTTP API: a bearer credential looked up in memory, never at a valid caller's expense.

A credential is known when the governance state (kept current by the hub's follower thread) holds its
hash. One that is not may have been issued a moment ago by another process: the request then has the
follower read the log once more, and waits for that read without holding a thread (so a flood of unknown
credentials cannot take the threads that valid requests need). What it finds is remembered: a credential
still unknown after a read that began after it was first seen is refused at once, without another read,
until governance changes or ``NEGATIVE_TTL_S`` passes.

A known credential is refused when it has expired, its rotation's overlap has ended or it was revoked
(:mod:`sharehub.gov.credentials`), judged at each request: a revocation takes effect as soon as the
follower has read it (``governance_refresh_s``), in every process of every API instance.

Failed authentications are counted per source address in a sliding window; past ``FAILURES_ALLOWED``
within ``WINDOW_S``, the source gets ``429 Too Many Requests`` with ``Retry-After`` for any credential the
hub does not know (a known one still passes, so a valid agency behind the same address is not locked out).
Both counts are exported as Prometheus counters on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.parts import KeptGovernance
from sharehub.errors import NotAuthenticated, TooManyRequests
from sharehub.gov.state import GovState
from sharehub.gov.views import token_hash

#: How long a request with an unknown credential waits for the follower's next read of the log.
RECHECK_WAIT_S = 5.0
#: A credential found unknown stays refused without a read for this long, unless governance changes.
NEGATIVE_TTL_S = 5.0
#: Failed authentications a source may make within ``WINDOW_S`` before it is refused with 429.
FAILURES_ALLOWED = 20
WINDOW_S = 60.0
#: Bounds on what is remembered (least recently seen first out).
MAX_REMEMBERED = 100_000


@dataclass
class AuthCounts:
    """Since the process started: refused credentials (by reason), and refusals with 429."""

    unknown_credential: int = 0
    missing_credential: int = 0
    throttled: int = 0
    #: Known credentials refused, by reason: expired_credential, replaced_credential, revoked_credential.
    ended: Counter[str] = field(default_factory=Counter)


class FailedAuthentications:
    """Failed authentications per source in a sliding window."""

    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allowed, self._window, self._clock = allowed, window_s, clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, source: str) -> float | None:
        """Seconds until ``source`` may fail again, or None while it is within its allowance."""
        times = self._recent(source)
        if times is None or len(times) < self._allowed:
            return None
        return max(times[0] + self._window - self._clock(), 0.001)

    def failed(self, source: str) -> None:
        times = self._recent(source)
        if times is None:
            times = self._seen[source] = deque()
        times.append(self._clock())
        while len(times) > self._allowed:
            times.popleft()
        self._seen.move_to_end(source)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)

    def _recent(self, source: str) -> deque[float] | None:
        times = self._seen.get(source)
        if times is not None:
            horizon = self._clock() - self._window
            while times and times[0] <= horizon:
                times.popleft()
        return times


class FollowedGovernance(KeptGovernance, Protocol):
    """Governance as a follower thread keeps it current, and asking it to read the log now."""

    @property
    def governance_read_at(self) -> float:
        """When (``time.monotonic()``) the last completed read of the log began."""

    def read_governance_soon(self) -> None: ...


class CredentialCheck:
    """The agency a bearer credential acts for; NotAuthenticated or TooManyRequests otherwise."""

    def __init__(
        self,
        governance: FollowedGovernance,
        failures: FailedAuthentications | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._followed = governance
        self._clock = time.monotonic  # the clock of governance_read_at
        self._now = now  # the clock credentials expire by
        self.failures = failures or FailedAuthentications()
        self.counts = AuthCounts()
        #: token hash -> (governance head it was unknown at, when that was established)
        self._unknown: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def holder(self, token: str | None, source: str) -> str:
        if token is None:
            self.counts.missing_credential += 1
            raise NotAuthenticated("a bearer credential is required")
        digest = token_hash(token)
        state = self._followed.governance
        holder = state.token_owners.get(digest)
        if holder is not None:
            return self._unless_ended(state, digest, holder, source)
        wait = self.failures.retry_after(source)
        if wait is not None:
            self.counts.throttled += 1
            raise TooManyRequests(
                f"too many failed authentications from this address; try again in {wait:.0f} s", wait
            )
        holder = await self._after_a_fresh_read(digest)
        if holder is None:
            self.failures.failed(source)
            self.counts.unknown_credential += 1
            raise NotAuthenticated("unknown credential")
        return self._unless_ended(self._followed.governance, digest, holder, source)

    def _unless_ended(self, state: GovState, digest: str, holder: str, source: str) -> str:
        """``holder``, unless the credential expired, was replaced or revoked by now: judged at each
        request, so expiry needs no event and a revocation counts as soon as the follower has read it."""
        record = state.credential(digest)
        refused = record.refusal_at(self._now()) if record is not None else None
        if refused is None:
            return holder
        self.failures.failed(source)
        self.counts.ended[refused.reason] += 1
        raise NotAuthenticated(refused.message)

    async def _after_a_fresh_read(self, digest: str) -> str | None:
        """The credential's holder as a read of the log that began after now finds it (perhaps issued a
        moment ago elsewhere), unless it was found unknown recently and governance has not changed since."""
        asked = self._clock()
        remembered = self._unknown.get(digest)
        head = self._followed.governance.head_sequence
        if remembered is not None and remembered[0] == head and asked - remembered[1] < NEGATIVE_TTL_S:
            return None
        deadline = asked + RECHECK_WAIT_S
        while self._followed.governance_read_at < asked and self._clock() < deadline:
            self._followed.read_governance_soon()
            await asyncio.sleep(0.005)
        state = self._followed.governance
        holder = state.token_owners.get(digest)
        if holder is None:
            self._unknown[digest] = (state.head_sequence, self._clock())
            self._unknown.move_to_end(digest)
            while len(self._unknown) > MAX_REMEMBERED:
                self._unknown.popitem(last=False)
        else:
            self._unknown.pop(digest, None)
        return holder
