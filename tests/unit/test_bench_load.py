"""The benchmark's fixed-rate client (bench.load): an open loop, so its numbers are the server's.

No timing goal is asserted: only what makes the latencies honest. Every request is made once; each starts
when due even while earlier ones still wait (a closed loop would hide a slow server by sending less);
latency counts from when a request was due; a failed request fails the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import late_runs, paced, paced_gets


def test_every_call_is_made_once_and_timed_from_when_it_was_due() -> None:
    made: list[int] = []

    def call(i: int) -> None:
        made.append(i)
        if i == 3:
            time.sleep(0.05)  # a slow answer: its own latency and the next one's show it

    latencies = paced(10, 200.0, call)
    assert sorted(made) == list(range(10))
    assert len(latencies) == 10 and all(ms >= 0 for ms in latencies)
    assert latencies[3] >= 50
    assert latencies[4] >= 50 - 1000 / 200  # due 5 ms after call 3, sent only once it ended


class _Answers(BaseHTTPRequestHandler):
    """200 for /ok/<key>, after /slow/ waits; 404 for anything else."""

    release = threading.Event()
    started: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        path = self.path.split("?", 1)[0]
        self.started.append(path)
        if path.startswith("/slow/"):
            self.release.wait(5)
        status = 200 if path.startswith(("/ok/", "/slow/")) else 404
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Answers.release.clear()
    _Answers.started.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Answers.release.set()
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def test_requests_start_when_due_while_earlier_ones_still_wait(server: str) -> None:
    # The first requests hang until the last one has arrived: only an open loop ever sends it.
    keys = [str(i) for i in range(8)]
    arrived_while_held: list[int] = []

    def release_when_all_arrived() -> None:
        deadline = time.monotonic() + 3
        while len(_Answers.started) < len(keys) and time.monotonic() < deadline:
            time.sleep(0.005)
        arrived_while_held.append(len(_Answers.started))
        _Answers.release.set()

    releaser = threading.Thread(target=release_when_all_arrived)
    releaser.start()
    latencies = paced_gets(len(keys), 100.0, f"{server}/slow/", keys, {})
    releaser.join()
    assert arrived_while_held == [len(keys)]
    assert sorted(_Answers.started) == sorted(f"/slow/{k}" for k in keys)
    assert len(latencies) == len(keys)
    assert latencies[0] >= 60  # the first waited for the last, due 70 ms later


def test_an_answer_other_than_200_fails_the_run(server: str) -> None:
    assert len(paced_gets(3, 100.0, f"{server}/ok/", ["a", "b", "c"], {})) == 3
    with pytest.raises(RuntimeError, match=r"GET [abc]: 404"):
        paced_gets(3, 100.0, f"{server}/missing/", ["a", "b", "c"], {})


def test_connections_opened_first_are_not_timed(server: str) -> None:
    _Answers.started.clear()
    latencies = paced_gets(3, 100.0, f"{server}/ok/", ["a", "b", "c"], {}, connect_first=5)
    assert len(latencies) == 3
    # Five untimed GETs of the keys in turn (at once, so in any order), all answered before the first timed
    # one went out.
    assert sorted(_Answers.started[:5]) == ["/ok/a", "/ok/a", "/ok/b", "/ok/b", "/ok/c"]
    assert _Answers.started[5:] == ["/ok/a", "/ok/b", "/ok/c"]


def test_late_answers_are_told_as_runs_with_where_each_began_and_its_longest() -> None:
    latencies = [1.0, 2.0, 80.0, 300.0, 60.0, 3.0, 50.0, 51.0, 2.0, 120.0]
    assert late_runs(latencies, rate=200.0) == [
        {"at_s": 0.01, "requests": 3, "longest_ms": 300.0},
        {"at_s": 0.035, "requests": 1, "longest_ms": 51.0},  # 50.0 is not late: only what is over the bar
        {"at_s": 0.045, "requests": 1, "longest_ms": 120.0},
    ]
    assert late_runs([1.0, 2.0], rate=200.0) == []
    assert late_runs([10.0, 20.0], rate=100.0, over_ms=5.0) == [
        {"at_s": 0.0, "requests": 2, "longest_ms": 20.0}
    ]
