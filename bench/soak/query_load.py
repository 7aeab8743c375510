"""The soak's query load, a process of its own: ``python -m bench.soak.query_load URL CA_FILE RATE SECONDS``
with the consumer's bearer credential in ``SOAK_QUERY_TOKEN`` (not on the command line, where ``ps``
shows it).

GET ``URL`` (a page of a read model over the query API, HTTPS verified with ``CA_FILE``) at RATE requests a
second for SECONDS: an open loop, as :mod:`bench.load`'s, each request started when due however many are
still waiting and its latency counted from then. Unlike that client, which fails on the first answer that
is not a 200 and keeps every task to the end, this one runs for a duration: it counts every answer by its
status (0: none within :data:`REQUEST_TIMEOUT_S`, or the connection failed) and forgets each request once
answered, so its own memory stays flat however long it runs.

It writes ``{"ready": true}`` and starts on the line ``go`` on stdin (as the publishing load). Then every
second a JSON line on stdout: ``{"t": monotonic seconds, "statuses": {"200": n, ...}, "latencies_ms":
[...]}`` for the requests answered since the line before; at the end ``{"seconds": from go to the last
answer}``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import time
from collections import Counter

import aiohttp

from bench.soak.lines import emit, ready_then_wait_for_go

#: Connections kept open at most: more than are ever waiting at 500 requests a second on a server
#: answering in tens of milliseconds; a slower server makes requests wait for one, which their latency shows.
CONNECTIONS = 64
REQUEST_TIMEOUT_S = 10.0
REPORT_EVERY_S = 1.0
#: The purpose dongthap-ppc's agreement on party-members names (demo/hub.yaml): what its queries state.
PURPOSE = "party-member-management"


class Interval:
    """The answers since the last report."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.latencies_ms: list[float] = []
        #: Requests without an answer, by the exception's name.
        self.failures: Counter[str] = Counter()

    def flush(self) -> None:
        emit({"t": time.monotonic(), "statuses": dict(self.statuses), "latencies_ms": self.latencies_ms,
              "failures": dict(self.failures)})  # fmt: skip
        self.statuses, self.latencies_ms, self.failures = Counter(), [], Counter()


async def run(url: str, tls: ssl.SSLContext, token: str, rate: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    interval = Interval()
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, ssl=tls)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    headers = {"Authorization": f"Bearer {token}"}
    params = {"purpose": PURPOSE, "limit": "20"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def query(due: float) -> None:
            try:
                async with session.get(url, params=params) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 0
                interval.failures[type(exc).__name__] += 1
            interval.statuses[status] += 1
            interval.latencies_ms.append((loop.time() - due) * 1000)

        waiting: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.01
        next_report = start + REPORT_EVERY_S
        for i in range(int(seconds * rate)):
            due = start + i / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            task = asyncio.ensure_future(query(due))
            waiting.add(task)
            task.add_done_callback(waiting.discard)
            if loop.time() >= next_report:
                interval.flush()
                next_report += REPORT_EVERY_S
        await asyncio.gather(*waiting)
    interval.flush()


def main(argv: list[str]) -> None:
    url, ca_file, rate, seconds = argv
    tls = ssl.create_default_context(cafile=ca_file)
    ready_then_wait_for_go()
    started = time.monotonic()
    asyncio.run(run(url, tls, os.environ["SOAK_QUERY_TOKEN"], float(rate), float(seconds)))
    emit({"seconds": time.monotonic() - started})


if __name__ == "__main__":
    main(sys.argv[1:])
