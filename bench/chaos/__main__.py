"""``python -m bench.chaos [scenario ...]``: run the chaos scenarios (all by default); exit 1 on a loss."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.chaos.faults import SCENARIOS
from bench.chaos.runner import HEADER, run
from sharehub.errors import InputError
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafkaCluster


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    settings = Settings()
    try:
        cluster = LocalKafkaCluster(settings.home, settings.cache_dir, settings.local_kafka_port, 3)
        if any(SCENARIOS[n].cluster == "shared" for n in names):  # the others start one of their own
            print(f"chaos: the cluster at {cluster.start()}", file=sys.stderr)
    except InputError as exc:
        raise SystemExit(f"chaos: {exc}") from None
    print(HEADER)
    failed = False
    with tempfile.TemporaryDirectory(prefix="sharehub-chaos-", dir=settings.home) as scratch:
        for name in names:
            outcome = run(cluster, name, Path(scratch))
            print(outcome.line(), flush=True)
            failed |= not outcome.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
