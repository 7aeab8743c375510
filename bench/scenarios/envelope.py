"""(a) Sealing and opening envelopes against plain fastavro encoding and decoding, one thread.

Hub: sealing as the publisher does it, through the dataset's codec (encode → AES-256-GCM of the shared
fields under the dataset key and of the personal fields under the member's own key → one Ed25519
signature per batch of 256 over a Merkle root), then ``open_many`` as the projection does it (parse →
batch signature, checked once per batch → ownership → lane → decrypt both parts → decode). Keys come from
the real key store, fetched once before the timing, so this measures the envelope and not the store.
Baseline: ``fastavro.schemaless_writer`` / ``schemaless_reader`` of the same records under the same schema.
"""

from __future__ import annotations

import io
import time
from typing import Any

import fastavro

from bench import records
from bench.environment import DATASET, new_hub
from bench.model import Config, Row, ScenarioResult
from bench.stats import interleaved
from sharehub.codec import DatasetCodec
from sharehub.errors import EnvelopeError


def run(config: Config) -> ScenarioResult:
    hub = new_hub(config.workdir / "envelope", None)
    try:
        sealer = records.Sealer.of(hub)
        datums = sealer.datums(hub, records.members(config.events, config.seed))
        governance, keys = hub.governance, sealer.keys
        parsed = sealer.schema.parsed
        key_field = governance.dataset(DATASET).key_field

        def hub_side(_rep: int) -> dict[str, float]:
            started = time.perf_counter()
            envelopes = sealer.seal_chain(datums)
            sealed = time.perf_counter()
            reader = DatasetCodec(DATASET, key_field, governance, keys)  # every batch signature checked once
            outcomes = reader.open_many([(0, envelope.raw) for envelope in envelopes], heads=None)
            opened = time.perf_counter()
            assert not any(isinstance(o, EnvelopeError) for o in outcomes)
            return {"seal_s": sealed - started, "open_s": opened - sealed, "round_trip_s": opened - started}

        def baseline_side(_rep: int) -> dict[str, float]:
            started = time.perf_counter()
            bodies = []
            for datum in datums:
                out = io.BytesIO()
                fastavro.schemaless_writer(out, parsed, datum)
                bodies.append(out.getvalue())
            encoded = time.perf_counter()
            for body in bodies:
                _decoded: Any = fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
            decoded = time.perf_counter()
            return {
                "encode_s": encoded - started,
                "decode_s": decoded - encoded,
                "round_trip_s": decoded - started,
            }

        hub_side(-1), baseline_side(-1)  # warm-up: first calls pay for imports and caches
        measured = interleaved(config.reps, hub_side, baseline_side)
        envelope_size = len(sealer.seal_chain(datums[:1])[0].raw)
        body = io.BytesIO()
        fastavro.schemaless_writer(body, parsed, datums[0])
    finally:
        hub.close()
    n = len(datums)
    return ScenarioResult(
        id="a",
        title="Envelope seal and open vs plain fastavro encode and decode (one thread)",
        hub="DatasetCodec.seal_many (signed by 256) / open_many",
        baseline="fastavro schemaless_writer / schemaless_reader",
        reps=config.reps,
        rows=[
            Row("seal vs encode", "throughput", "seal_s", "encode_s", n),
            Row("open vs decode", "throughput", "open_s", "decode_s", n),
            Row("round trip", "throughput", "round_trip_s", "round_trip_s", n),
        ],
        measurements=measured,
        notes=[
            f"{n:,} party-members records per repetition; a one-event batch envelope is "
            f"{envelope_size} bytes for a {len(body.getvalue())}-byte Avro body.",
            "One thread, one core: fastavro holds the GIL; each cryptography call runs on its caller.",
        ],
    )
