"""The projection worker takes its governance from the log, while running: row filters, suspension.

Real broker, real ``sharehub project`` process; governance changes are made through the service, which writes
them to the governance topic, and the worker (another process) must see them there.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from confluent_kafka import Producer

from services.hub import Hub
from services.operations import Operations
from sharehub.avro import load_schema
from sharehub.envelope import ZERO_HASH, ChainPosition
from sharehub.kafka import client_config
from tests.kafka_helpers import Worker, wait_until
from tests.unit.test_avro import member
from tests.unit.test_envelope import sealed
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"
#: How long the agreement that expires lasts once granted: time for a running worker to fill its rows.
SHORT_AGREEMENT_S = 15
THAI_NGUYEN = "19"


def publish(hub: Hub, records: list[dict[str, object]]) -> None:
    publisher = hub.publisher("coc", DATASET)
    report = publisher.publish_records(records)
    assert report.published == len(records) and not report.rejected


def grant_thai_nguyen_its_own_members(hub: Hub) -> None:
    with hub.governing() as gov:
        gov.propose(
            "thainguyen-ppc",
            "thainguyen-ppc.party-members.1",
            "thainguyen-ppc",
            DATASET,
            ["member_id", "province_code", "commune_code", "status"],
            "Members of the province's party organisation",
            "Regulation 384, Art. 5",
            row_filter=f'province_code == "{THAI_NGUYEN}"',
        )
        gov.consent("coc", "thainguyen-ppc.party-members.1")
        gov.approve("cpo", "thainguyen-ppc.party-members.1")
        gov.approve("op", "thainguyen-ppc.party-members.1")


def test_a_row_filter_keeps_matching_records_and_drops_one_that_moves_out(hub: Hub, worker: Worker) -> None:
    grant_thai_nguyen_its_own_members(hub)
    members = list(generate_party_members(400, seed=19))
    local = [m for m in members if m["province_code"] == THAI_NGUYEN]
    assert len(local) >= 2, "the sample must hold members of the province"
    publish(hub, members)
    worker.start()
    everyone, thai_nguyen = hub.store("dongthap-ppc"), hub.store("thainguyen-ppc")
    wait_until(lambda: everyone.count(DATASET) == 400, timeout=120, what="400 rows", log=worker.log)
    wait_until(lambda: thai_nguyen.count(DATASET) == len(local), timeout=30, what="the province's rows")
    rows = thai_nguyen.page(DATASET, limit=1000)
    assert {r["fields"]["province_code"] for r in rows} == {THAI_NGUYEN}
    assert {r["key"] for r in rows} == {str(m["member_id"]) for m in local}
    assert set(rows[0]["fields"]) == {"member_id", "province_code", "commune_code", "status"}

    moved = {**local[0], "province_code": "20", "commune_code": members[0]["commune_code"]}
    publish(hub, [moved])  # a transfer out of the province: the record no longer passes the filter
    wait_until(
        lambda: thai_nguyen.get(DATASET, str(moved["member_id"])) is None,
        timeout=60,
        what="the transferred member to leave the province's read model",
        log=worker.log,
    )
    assert thai_nguyen.count(DATASET) == len(local) - 1
    assert everyone.get(DATASET, str(moved["member_id"])) is not None


def test_R5_a_suspension_on_the_log_purges_the_running_workers_read_model(hub: Hub, worker: Worker) -> None:
    first = list(generate_party_members(100, seed=5))
    publish(hub, first)
    worker.start()
    dong_thap, lang_son = hub.store("dongthap-ppc"), hub.store("langson-ppc")
    wait_until(
        lambda: dong_thap.count(DATASET) == lang_son.count(DATASET) == 100,
        timeout=120,
        what="100 rows in both read models",
        log=worker.log,
    )
    with hub.governing() as gov:
        gov.suspend("cpo", "langson-ppc.party-members.1", "inspection")
    wait_until(
        lambda: lang_son.count(DATASET) == 0, timeout=30, what="Lang Son's rows purged", log=worker.log
    )
    later = list(generate_party_members(50, seed=5, start_index=100))
    publish(hub, later)
    wait_until(lambda: dong_thap.count(DATASET) == 150, timeout=60, what="150 rows", log=worker.log)
    assert lang_son.count(DATASET) == 0, "no rows for a suspended agreement, old or new"
    assert dong_thap.count(DATASET) == 150, "the other consumer keeps its agreement and its rows"
    state = hub.governance_state(refresh=True)
    assert state.agreement("langson-ppc.party-members.1").status_at(dt.datetime.now(dt.UTC)) == "suspended"


def test_R5_an_agreement_that_expires_takes_its_rows_along(hub: Hub, worker: Worker) -> None:
    publish(hub, list(generate_party_members(60, seed=8)))
    worker.start()
    dong_thap, thai_nguyen = hub.store("dongthap-ppc"), hub.store("thainguyen-ppc")
    wait_until(lambda: dong_thap.count(DATASET) == 60, timeout=120, what="60 rows", log=worker.log)
    # Granted to a worker already running, for the next few seconds.
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SHORT_AGREEMENT_S)
    with hub.governing() as gov:
        gov.propose(
            "thainguyen-ppc", "thainguyen-ppc.party-members.short", "thainguyen-ppc", DATASET,
            ["member_id", "status"], "A short inspection", "Regulation 384, Art. 5", valid_until=ends,
        )  # fmt: skip
        gov.consent("coc", "thainguyen-ppc.party-members.short")
        gov.approve("cpo", "thainguyen-ppc.party-members.short")
        gov.approve("op", "thainguyen-ppc.party-members.short")
    wait_until(
        lambda: thai_nguyen.count(DATASET) == 60, timeout=60, what="60 rows before expiry", log=worker.log
    )
    assert dt.datetime.now(dt.UTC) < ends, "the worker must fill the read model before the agreement ends"
    wait_until(
        lambda: thai_nguyen.count(DATASET) == 0, timeout=60, what="the rows to go at expiry", log=worker.log
    )
    assert dt.datetime.now(dt.UTC) >= ends
    assert dong_thap.count(DATASET) == 60


def test_a_field_raised_above_a_consumers_clearance_leaves_its_read_model(hub: Hub, worker: Worker) -> None:
    publish(hub, list(generate_party_members(60, seed=7)))
    worker.start()
    dong_thap, lang_son = hub.store("dongthap-ppc"), hub.store("langson-ppc")
    wait_until(
        lambda: dong_thap.count(DATASET) == lang_son.count(DATASET) == 60,
        timeout=120,
        what="60 rows in both read models",
        log=worker.log,
    )
    assert "party_cell" in dong_thap.page(DATASET, limit=1)[0]["fields"]
    lang_son_before = lang_son.page(DATASET, limit=1000)

    raised = copy.deepcopy(load_schema(DATASET).raw)
    for field in raised["fields"]:
        if field["name"] == "party_cell":
            field["classification"] = "secret"  # above Dong Thap's confidential clearance
    with hub.governing() as gov:
        gov.register_schema("coc", DATASET, raised)
    wait_until(
        lambda: (
            dong_thap.count(DATASET) == 60
            and all("party_cell" not in r["fields"] for r in dong_thap.page(DATASET, limit=1000))
        ),
        timeout=60,
        what="party_cell gone from every row of Dong Thap's read model",
        log=worker.log,
    )
    later = next(generate_party_members(1, seed=7, start_index=60))
    publish(hub, [later])  # written under the same Avro schema: the new annotation still rules it
    wait_until(
        lambda: dong_thap.get(DATASET, str(later["member_id"])) is not None,
        timeout=60,
        what="the new member in Dong Thap's read model",
        log=worker.log,
    )
    row = dong_thap.get(DATASET, str(later["member_id"]))
    assert row is not None and "party_cell" not in row["fields"] and "full_name" in row["fields"]
    lang_son_now = [r for r in lang_son.page(DATASET, limit=1000) if r["key"] != str(later["member_id"])]
    assert lang_son_now == lang_son_before, "a consumer not granted the field keeps its rows as they were"


def test_a_record_past_the_quality_rules_is_quarantined_and_counted_by_dataset_and_rule(
    hub: Hub, worker: Worker
) -> None:
    """Software at the owner's site that seals past the publisher's check (with the owner's own key): the
    worker quarantines the record with the rule it breaks, applies the records around it, and the status
    and the metrics the API serves count the break by dataset and rule."""
    topic = hub.governance.dataset(DATASET).topic
    records = [
        member(),
        member(member_id="PM0000000002", admission_date="1925-01-01"),  # admitted before the Party was
        member(member_id="PM0000000003"),
    ]
    producer = Producer(client_config(hub.kafka_as("coc")))
    previous = ZERO_HASH
    for sequence, record in enumerate(records, start=1):
        envelope = sealed(hub, record=record, position=ChainPosition(0, sequence, previous))
        previous = envelope.hash
        producer.produce(topic, value=envelope.raw, partition=0)
    assert producer.flush(10) == 0

    worker.start()
    store = hub.store("dongthap-ppc")
    wait_until(
        lambda: store.positions().get((topic, 0), 0) == 3, timeout=120, what="the lane read", log=worker.log
    )
    assert {r["key"] for r in store.page(DATASET, limit=10)} == {"PM0000000001", "PM0000000003"}
    rule = 'admission_date >= "1930-02-03"'
    status = Operations(governance=hub, read_models=hub, kafka=hub.kafka).status()
    assert status["quality_rule_breaks"] == {DATASET: {rule: 1}}
    assert status["quarantined"] == {"quality_rule": 1}
    metrics = Operations(governance=hub, read_models=hub, kafka=hub.kafka).metrics().decode()
    escaped = rule.replace('"', '\\"')  # as the Prometheus text format writes a label's quotes
    assert f'sharehub_quality_rule_breaks{{dataset="{DATASET}",rule="{escaped}"}} 1.0' in metrics
