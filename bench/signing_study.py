"""The envelope's cost, step by step, and what signing a batch at once buys (issue: envelope security).

Seals and opens realistic ``party-members`` records on one core, interleaved with plain fastavro
encode/decode of the same records in the same run, for batch sizes 1 (a signature per event) up to 256.
Reports events/s, the ratio to plain Avro, and how open's time splits into parse, signature, decrypt.

Run: ``.venv/bin/python -m bench.signing_study [--events N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.synthetic import generate_party_members
from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.avro import record_from_json
from sharehub.envelope import (
    ZERO_HASH,
    ChainPosition,
    VerifiedRoots,
    authenticate,
    decrypt,
    open_envelope,
    parse,
    pseudonym,
    seal_unsigned,
    sign_batch,
)
from sharehub.gov.log import MemoryLog
from sharehub.keys import subject_key_id
from sharehub.settings import Settings

DATASET = "party-members"
SPEC = Path(__file__).resolve().parents[1] / "demo" / "hub.yaml"


def _hub(home: Path) -> Hub:
    settings = Settings(home=home, kafka_bootstrap="127.0.0.1:9", master_key=None)
    hub = Hub(settings, log=MemoryLog())
    load(hub, read_spec(SPEC).model_copy(update={"topic_prefix": "study"}), topics=False)
    return hub


def _timed(work: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    work()
    return n / (time.perf_counter() - start)


def run(events: int, repeats: int) -> list[dict[str, Any]]:
    hub = _hub(Path(tempfile.mkdtemp(prefix="sharehub-study-")))
    schema = hub.governance.current_schema(DATASET)
    records = [record_from_json(schema, r) for r in generate_party_members(events, seed=384)]
    routing = hub.keys.routing_key(DATASET)
    refs = [pseudonym(routing, r["member_id"]) for r in records]
    hub.keys.ensure_subject_keys(DATASET, refs)
    subjects = [subject_key_id(DATASET, ref) for ref in refs]
    for key_id in subjects:  # warm the key cache: the study measures the envelope, not SQLite
        hub.keys.subject_key(key_id)
    data_key_id = hub.keys.current_data_key_id(DATASET)
    data_key = hub.keys.data_key(data_key_id)
    signing = hub.keys.signing_key("coc")

    def seal_all(batch: int) -> list[bytes]:
        unsigned, raws, prev = [], [], ZERO_HASH
        for i, (record, key_id) in enumerate(zip(records, subjects, strict=True)):
            event = seal_unsigned(
                schema=schema,
                record=record,
                producer="coc",
                dataset=DATASET,
                event_type="UPSERTED",
                position=ChainPosition(0, i + 1, prev),
                signing_key_id=signing.key_id,
                data_key_id=data_key_id,
                data_key=data_key,
                subject_key_id=key_id,
                subject_key=hub.keys.subject_key(key_id),
            )
            prev = event.hash
            unsigned.append(event)
            if len(unsigned) == batch:
                raws += [e.raw for e in sign_batch(unsigned, signing)]
                unsigned = []
        return raws + [e.raw for e in sign_batch(unsigned, signing)]

    def open_all(raws: list[bytes]) -> None:
        roots = VerifiedRoots()
        for raw in raws:
            open_envelope(raw, topic_dataset=DATASET, signers=hub.governance, keys=hub.keys, roots=roots)

    bodies = [schema.encode(r) for r in records]
    rows = []
    for batch in (1, 16, 64, 256):
        seal_rates, open_rates, encode_rates, decode_rates = [], [], [], []
        for _ in range(repeats):  # hub and baseline interleaved, so both see the same machine
            encode_rates.append(_timed(lambda: [schema.encode(r) for r in records], events))
            seal_rates.append(_timed(lambda b=batch: seal_all(b), events))
            raws = seal_all(batch)
            decode_rates.append(_timed(lambda: [schema.decode(b) for b in bodies], events))
            open_rates.append(_timed(lambda r=raws: open_all(r), events))
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
    raws = seal_all(1)
    parsed = [parse(r) for r in raws]
    split = {
        "parse": _timed(lambda: [parse(r) for r in raws], events),
        "authenticate (signature per event)": _timed(
            lambda: [authenticate(e, topic_dataset=DATASET, signers=hub.governance) for e in parsed], events
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
