"""(e) The audit's replay of a topic, checking every signature and chain, against a plain read of it.

Hub: ``services.audit.audit_verify`` over the bench hub's governance (public keys only: parse, batch
signatures checked once per batch, ownership, every lane's sequence and hash links). Baseline: a bare
confluent-kafka consumer reading the same topic from offset 0 to its end, doing nothing with the bytes.
"""

from __future__ import annotations

import time

from bench import records
from bench.environment import DATASET, OWNER, new_hub
from bench.kafka_io import read_batches
from bench.model import Config, Row, ScenarioResult
from bench.stats import interleaved
from services.audit import audit_verify


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    bootstrap = config.bootstrap
    hub = new_hub(config.workdir / "audit", bootstrap)
    try:
        governance = hub.governance
        topic = governance.dataset(DATASET).topic
        n = config.events
        publisher = hub.publisher(OWNER, DATASET)
        publisher.publish_records(records.members(n, config.seed))
        publisher.close()

        def hub_side(_rep: int) -> dict[str, float]:
            started = time.perf_counter()
            report = audit_verify(hub.kafka, governance, every_event=False)  # one process
            elapsed = time.perf_counter() - started
            summary = report.topics.get(topic)
            checked = summary.verified if summary is not None else 0
            if checked != n or report.findings:
                raise RuntimeError(f"audit saw {checked} of {n} events, {len(report.findings)} findings")
            return {"audit_s": elapsed}

        def baseline_side(_rep: int) -> dict[str, float]:
            started = time.perf_counter()
            count = sum(len(batch) for batch in read_batches(bootstrap, topic))
            elapsed = time.perf_counter() - started
            if count != n:
                raise RuntimeError(f"read {count} of {n} messages")
            return {"read_s": elapsed}

        measured = interleaved(config.reps, hub_side, baseline_side)
    finally:
        hub.close()
    return ScenarioResult(
        id="e",
        title="Audit verify vs a plain read of the same topic",
        hub="services.audit.audit_verify (signatures, ownership, lane chains; public keys only)",
        baseline="confluent_kafka.Consumer reading the topic to its end, no checks",
        reps=config.reps,
        rows=[Row("verify vs read", "throughput", "audit_s", "read_s", n)],
        measurements=measured,
        notes=[
            f"{n:,} party-members events on 3 partitions; the audit also reads the hub's other dataset "
            "topics (empty here) and its checkpoints.",
        ],
    )
