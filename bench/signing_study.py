"""The envelope's cost, step by step, and what signing a batch at once buys (issue: envelope security).

Seals and opens realistic ``party-members`` records on one core, interleaved with plain fastavro
encode/decode of the same records in the same run, for batch sizes 1 (a signature per event) up to 256.
Reports events/s, the ratio to plain Avro, and how open's time splits into parse, signature, decrypt.

Run: ``.venv/bin/python -m bench.signing_study [--events N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.records import Sealer
from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.codec import DatasetCodec
from sharehub.envelope import Envelope, authenticate, decrypt, parse
from sharehub.gov.log import MemoryLog
from sharehub.gov.state import GovState
from sharehub.settings import Settings
from tooling.synthetic import generate_party_members

DATASET = "party-members"
SPEC = Path(__file__).resolve().parents[1] / "demo" / "hub.yaml"


def _hub(home: Path) -> Hub:
    settings = Settings(home=home, kafka_bootstrap="127.0.0.1:9", master_key=None)
    hub = Hub(settings, log=MemoryLog())
    spec = read_spec(SPEC)
    study = spec.model_copy(update={"topic_prefix": "study", "custodial": spec.site_agencies})
    load(hub.governance_desk(), study, topics=False)
    return hub


def _authenticated(envelope: Envelope, governance: GovState) -> Envelope:
    authenticate(envelope, topic_dataset=DATASET, signers=governance)
    return envelope


def _timed(work: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    work()
    return n / (time.perf_counter() - start)


def run(events: int, repeats: int) -> list[dict[str, Any]]:
    hub = _hub(Path(tempfile.mkdtemp(prefix="sharehub-study-")))
    sealers = {batch: Sealer.of(hub, batch=batch) for batch in (1, 16, 64, 256)}
    records = sealers[256].datums(hub, list(generate_party_members(events, seed=384)))  # keys made, cached
    schema = sealers[256].schema
    key_field = hub.governance.dataset(DATASET).key_field

    def seal_all(batch: int) -> list[bytes]:
        return [envelope.raw for envelope in sealers[batch].seal_chain(records)]

    def open_all(raws: list[bytes]) -> None:
        reader = DatasetCodec(DATASET, key_field, hub.governance, sealers[256].keys)
        reader.open_many([(0, raw) for raw in raws], heads=None)

    bodies = [schema.encode(r) for r in records]
    rows = []
    for batch in (1, 16, 64, 256):
        seal_rates, open_rates, encode_rates, decode_rates = [], [], [], []
        for _ in range(repeats):  # hub and baseline interleaved, so both see the same machine
            encode_rates.append(_timed(lambda: [schema.encode(r) for r in records], events))
            seal_rates.append(_timed(functools.partial(seal_all, batch), events))
            raws = seal_all(batch)
            decode_rates.append(_timed(lambda: [schema.decode(b) for b in bodies], events))
            open_rates.append(_timed(functools.partial(open_all, raws), events))
        rows.append(
            {
                "batch": batch,
                "seal": statistics.median(seal_rates),
                "open": statistics.median(open_rates),
                "open_min": min(open_rates),
                "open_max": max(open_rates),
                "avro_encode": statistics.median(encode_rates),
                "avro_decode": statistics.median(decode_rates),
                "bytes": sum(len(r) for r in raws) / events,
            }
        )
    # The envelope's own steps, one at a time (what the codec runs in order), a signature per event.
    raws = seal_all(1)
    parsed = [parse(r) for r in raws]
    split = {
        "parse": _timed(lambda: [parse(r) for r in raws], events),
        "authenticate (signature per event)": _timed(
            lambda: [_authenticated(e, hub.governance) for e in parsed], events
        ),
        "decrypt + decode": _timed(
            lambda: [decrypt(e, signers=hub.governance, keys=hub.keys) for e in parsed], events
        ),
    }
    hub.close()
    return [*rows, {"split": split}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = run(args.events, args.repeats)
    print(
        f"{args.events} party-members events, {args.repeats} repetitions, "
        "medians (min–max for open), one core\n"
    )
    print(
        "| signature covers | seal ev/s | open ev/s (min–max) | open / Avro decode "
        "| seal / Avro encode | bytes/event |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in results[:-1]:
        print(
            f"| {row['batch']} event(s) | {row['seal']:,.0f} | {row['open']:,.0f} ({row['open_min']:,.0f}–"
            f"{row['open_max']:,.0f}) | {row['open'] / row['avro_decode']:.3f} | "
            f"{row['seal'] / row['avro_encode']:.3f} | {row['bytes']:.0f} |"
        )
    print("\nopen, step by step (signature per event):\n")
    for step, rate in results[-1]["split"].items():
        print(f"- {step}: {rate:,.0f} events/s ({1e6 / rate:.1f} µs)")


if __name__ == "__main__":
    main()
