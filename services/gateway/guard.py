"""Who may call the gateway, how often, and how much: checked before a request's body is read.

- **Who.** A bearer credential, as the hub's API takes it. At an agency's site: the agency's own credential,
  the one the hub issued it (``<site>/credential``, written by ``sharehub agency connect``), compared in
  constant time: only the agency's own systems hold it, and no other agency's credential is known here. At
  the hub (custodial mode): any agency's credential governance issued
  (:class:`services.api.auth.CredentialCheck`).
  A source address that keeps failing gets 429 with Retry-After, as on the hub's API.
- **How often.** A token bucket per agency: ``rate`` requests a second, bursts of ``burst``; past it, 429 with
  Retry-After (the seconds until a token is back).
- **How much.** A body over ``max_body`` bytes is 413 (:class:`services.api.body_limit.BodyLimit`, the
  bound of every HTTP server): refused on its Content-Length before a byte is read, or as soon as a
  chunked body passes the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.api.auth import CredentialCheck, FailedAuthentications
from sharehub.errors import ConfigurationError, NotAuthenticated, TooManyRequests

#: Default body limit: 8 MiB, a batch of some thousands of records or envelopes.
MAX_BODY = 8 * 1024 * 1024


class SiteCredential:
    """The one credential a site's gateway takes: its agency's own (the file ``agency connect`` wrote)."""

    def __init__(self, agency: str, credential_file: Path) -> None:
        try:
            token = credential_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"the site's credential {credential_file} is unreadable ({exc}); connect the site first "
                "('sharehub agency connect')"
            ) from None
        self.agency = agency
        self._digest = hashlib.sha256(token.encode()).digest()
        self.failures = FailedAuthentications()

    async def holder(self, token: str | None, source: str) -> str:
        if token is None:
            raise NotAuthenticated("a bearer credential is required")
        wait = self.failures.retry_after(source)
        if wait is not None:
            message = f"too many failed authentications from this address; try again in {wait:.0f} s"
            raise TooManyRequests(message, wait)
        if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest):
            self.failures.failed(source)
            raise NotAuthenticated(
                f"unknown credential: this gateway takes the credential of {self.agency!r}"
            )
        return self.agency


#: The agency a bearer credential acts for (NotAuthenticated, TooManyRequests): a site's or the hub's check.
Credentials = SiteCredential | CredentialCheck


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimit:
    """Requests per agency: ``rate`` a second on average, ``burst`` at once."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, agency: str) -> None:
        """One request of ``agency``, or TooManyRequests with the seconds until it may come again."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.setdefault(agency, _Bucket(float(self.burst), now))
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / self.rate
                raise TooManyRequests(
                    f"{agency!r} sends more than {self.rate:g} requests a second; try again in "
                    f"{math.ceil(wait)} s",
                    wait,
                )
            bucket.tokens -= 1.0
