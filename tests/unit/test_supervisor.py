"""What a supervisor makes of its part's exits: a server's START_OVER status is a failure like any other."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from services.supervisor import START_OVER, Supervisor, exit_reason
from tests.kafka_helpers import wait_until


def test_a_part_that_does_not_start_over_is_paused_after_every_exit(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    script = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(runs)!r}); n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        f"sys.exit({START_OVER}) if n < 2 else time.sleep(60)\n"
    )
    server = Supervisor([sys.executable, "-c", script], first_pause_s=0.2, name="server", starts_over=False)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        wait_until(lambda: runs.exists() and len(runs.read_text()) == 3, timeout=20, what="three starts")
    finally:
        server.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert (server.starts, server.failures) == (3, 2)


def test_a_parts_end_is_said_plainly() -> None:
    assert exit_reason(3) == "exited with status 3"
    assert exit_reason(-9) == "was killed by SIGKILL (status -9)"
    assert exit_reason(-200) == "exited with status -200"
