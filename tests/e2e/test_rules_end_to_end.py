"""Rules R1, R4 and R6 of DESIGN.md end to end: real broker, real ``sharehub`` processes and worker.

(R3 and R5 while the worker runs: test_agreements_take_effect.py and test_governance_in_projection.py;
R6 erasure: test_security_end_to_end.py; R7: test_query_api.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from services.hub import Hub
from services.quarantine_review import quarantined
from sharehub.kafka import client_config
from tests.kafka_helpers import Worker, sharehub, wait_until
from tests.unit.test_avro import member
from tests.unit.test_envelope import sealed
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def produce(hub: Hub, principal: str, value: bytes) -> None:
    """One message on the dataset's topic with ``principal``'s broker login; raises what the broker says."""
    failures: list[KafkaError] = []
    producer = Producer(client_config(hub.kafka_as(principal), **{"message.timeout.ms": 10_000}))
    producer.produce(
        hub.governance.dataset(DATASET).topic,
        value=value,
        partition=0,
        on_delivery=lambda err, _msg: failures.append(err) if err else None,
    )
    producer.flush(15)
    if failures:
        raise KafkaException(failures[0])


def test_R1_only_the_owners_events_reach_a_read_model(hub: Hub, worker: Worker, tmp_path: Path) -> None:
    data = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(20, seed=41), data)
    assert sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(data)).returncode == 0
    worker.start()
    dong_thap = hub.store("dongthap-ppc")
    wait_until(lambda: dong_thap.count(DATASET) == 20, timeout=120, what="20 rows", log=worker.log)

    # The broker: the Government Office's login may not write the Commission's topic at all.
    intruder = member(member_id="PM9999999999")
    forged_by_go = sealed(hub, producer="go", signing_key=hub.keys.signing_key("go"), record=intruder)
    with pytest.raises(KafkaException) as refused:
        produce(hub, "go", forged_by_go.raw)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The projection: an event that reaches the topic (say, with the owner's stolen login) but is signed by
    # another agency's key is quarantined, never applied.
    produce(hub, "coc", forged_by_go.raw)
    wait_until(
        lambda: any(
            e["reason"] == "not_owner" for e in quarantined(hub.kafka, hub.governance.quarantine_topic)
        ),
        timeout=60,
        what="the forged event in quarantine",
        log=worker.log,
    )
    assert dong_thap.get(DATASET, "PM9999999999") is None
    assert dong_thap.count(DATASET) == 20


def test_R4_clearance_bounds_the_fields_and_secret_data_waits_for_two_central_approvals(
    hub: Hub, worker: Worker
) -> None:
    party_members = hub.governance.dataset(DATASET)
    assert party_members.classification == "secret"
    with hub.governing() as gov:
        with pytest.raises(Exception, match="clearance"):  # national_id is above a province's clearance
            gov.propose(
                "thainguyen-ppc", "thainguyen-ppc.ids", "thainguyen-ppc", DATASET,
                ["member_id", "national_id"], "Check identities", "Regulation 384, Art. 5",
            )  # fmt: skip
        gov.propose(
            "thainguyen-ppc", "thainguyen-ppc.status", "thainguyen-ppc", DATASET,
            ["member_id", "status"], "Follow members' status", "Regulation 384, Art. 5",
        )  # fmt: skip
        gov.consent("coc", "thainguyen-ppc.status")
        gov.approve("cpo", "thainguyen-ppc.status")
        with pytest.raises(Exception, match="distinct|already"):
            gov.approve("cpo", "thainguyen-ppc.status")  # the same office twice is one approval
    publish_data = list(generate_party_members(25, seed=42))
    hub.publisher("coc", DATASET).publish_records(publish_data)
    worker.start()
    dong_thap, thai_nguyen = hub.store("dongthap-ppc"), hub.store("thainguyen-ppc")
    wait_until(lambda: dong_thap.count(DATASET) == 25, timeout=120, what="25 rows", log=worker.log)
    assert thai_nguyen.count(DATASET) == 0, "one central approval of secret data grants nothing"

    with hub.governing() as gov:
        gov.approve("op", "thainguyen-ppc.status")
    wait_until(
        lambda: thai_nguyen.count(DATASET) == 25,
        timeout=120,
        what="the grant after two approvals",
        log=worker.log,
    )
    assert {frozenset(r["fields"]) for r in thai_nguyen.page(DATASET, limit=100)} == {
        frozenset({"member_id", "status"})
    }


def test_R6_a_correction_by_the_owner_reaches_every_read_model(
    hub: Hub, worker: Worker, tmp_path: Path
) -> None:
    members = list(generate_party_members(15, seed=43))
    hub.publisher("coc", DATASET).publish_records(members)
    worker.start()
    stores = [hub.store("dongthap-ppc"), hub.store("langson-ppc")]
    wait_until(
        lambda: all(s.count(DATASET) == 15 for s in stores), timeout=120, what="15 rows", log=worker.log
    )

    corrected = {**members[3], "status": "EXPELLED"}
    data = tmp_path / "correction.jsonl"
    write_jsonl([corrected], data)
    by_other = sharehub(hub, "publish", "--as", "go", "--dataset", DATASET, str(data))
    assert by_other.returncode == 2 and "its owner is 'coc'" in by_other.stderr
    assert sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(data)).returncode == 0
    key = str(corrected["member_id"])

    def corrected_everywhere() -> bool:
        return all((s.get(DATASET, key) or {}).get("fields", {}).get("status") == "EXPELLED" for s in stores)

    wait_until(corrected_everywhere, timeout=60, what="the correction in both read models", log=worker.log)
    assert all(s.versions(DATASET)[key] == 2 for s in stores), "the first version and the correction"
    assert all(s.count(DATASET) == 15 for s in stores)
