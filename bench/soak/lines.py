"""How a soak load talks to the soak: JSON lines on its stdout, the word ``go`` on its stdin."""

from __future__ import annotations

import json
import sys


def emit(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def ready_then_wait_for_go() -> None:
    """Say the load is ready, and wait for the soak to start every load at once."""
    emit({"ready": True})
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the soak did not say go")
