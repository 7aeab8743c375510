"""Agreements take effect from the log while the worker runs: activation backfills, new terms rebuild.

Real broker, real ``sharehub project`` process. Every record is published once, so in a correct read model
each row was made by exactly one event (version 1): a backfill that applied an event twice, or a replay that
touched another consumer's read model again, shows up as a version above 1.
"""

from __future__ import annotations

import pytest

from projections.read_model import ReadModelStore
from services.hub import Hub
from tests.kafka_helpers import Worker, wait_until
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def publish(hub: Hub, records: list[dict[str, object]]) -> None:
    report = hub.publisher("coc", DATASET).publish_records(records)
    assert report.published == len(records) and not report.rejected


def grant(hub: Hub, agreement: str, consumer: str, fields: list[str]) -> None:
    with hub.governing() as gov:
        gov.propose(
            consumer, agreement, consumer, DATASET, fields, "Follow members' status", "Regulation 384, Art. 5"
        )
        gov.consent("coc", agreement)
        gov.approve("cpo", agreement)
        gov.approve("op", agreement)


def each_row_made_once(store: ReadModelStore, count: int) -> bool:
    versions = store.versions(DATASET)
    return len(versions) == count and set(versions.values()) == {1}


def test_R3_a_consumer_granted_while_the_worker_runs_gets_the_dataset_from_its_start(
    hub: Hub, worker: Worker
) -> None:
    publish(hub, list(generate_party_members(150, seed=31)))
    worker.start()
    dong_thap, thai_nguyen = hub.store("dongthap-ppc"), hub.store("thainguyen-ppc")
    wait_until(lambda: dong_thap.count(DATASET) == 150, timeout=120, what="150 rows", log=worker.log)
    assert thai_nguyen.count(DATASET) == 0, "default deny: no agreement, no rows"

    grant(hub, "thainguyen-ppc.party-members.status", "thainguyen-ppc", ["member_id", "status"])
    wait_until(
        lambda: each_row_made_once(thai_nguyen, 150),
        timeout=120,
        what="the new consumer's backfill of all 150 members",
        log=worker.log,
    )
    assert {frozenset(r["fields"]) for r in thai_nguyen.page(DATASET, limit=200)} == {
        frozenset({"member_id", "status"})
    }
    publish(hub, list(generate_party_members(20, seed=31, start_index=150)))
    wait_until(lambda: each_row_made_once(thai_nguyen, 170), timeout=60, what="170 rows", log=worker.log)
    assert each_row_made_once(dong_thap, 170), "the replay for one consumer applies nothing twice to another"
    assert worker.alive()


def test_widened_terms_rebuild_the_rows_with_the_new_fields(hub: Hub, worker: Worker) -> None:
    members = list(generate_party_members(120, seed=32))
    publish(hub, members)
    worker.start()
    lang_son, dong_thap = hub.store("langson-ppc"), hub.store("dongthap-ppc")
    wait_until(lambda: lang_son.count(DATASET) == 120, timeout=120, what="120 rows", log=worker.log)
    narrow = {"member_id", "province_code", "commune_code", "status"}
    assert set(lang_son.get(DATASET, str(members[0]["member_id"]))["fields"]) == narrow  # type: ignore[index]

    wide = [*sorted(narrow), "party_cell", "official_date"]
    grant(hub, "langson-ppc.party-members.2", "langson-ppc", wide)
    with hub.governing() as gov:
        gov.revoke("cpo", "langson-ppc.party-members.1", "superseded by .2")

    def rebuilt() -> bool:
        rows = lang_son.page(DATASET, limit=200)
        return len(rows) == 120 and all(set(r["fields"]) == set(wide) for r in rows)

    wait_until(rebuilt, timeout=120, what="every row with the widened fields", log=worker.log)
    assert each_row_made_once(lang_son, 120)
    assert each_row_made_once(dong_thap, 120)


def test_R5_a_resumed_agreement_brings_its_rows_back_from_the_log(hub: Hub, worker: Worker) -> None:
    publish(hub, list(generate_party_members(90, seed=33)))
    worker.start()
    lang_son = hub.store("langson-ppc")
    wait_until(lambda: lang_son.count(DATASET) == 90, timeout=120, what="90 rows", log=worker.log)
    with hub.governing() as gov:
        gov.suspend("cpo", "langson-ppc.party-members.1", "inspection")
    wait_until(lambda: lang_son.count(DATASET) == 0, timeout=30, what="the purge", log=worker.log)
    publish(hub, list(generate_party_members(30, seed=33, start_index=90)))  # published while suspended
    with hub.governing() as gov:
        gov.resume("cpo", "langson-ppc.party-members.1", "inspection closed")
    wait_until(
        lambda: each_row_made_once(lang_son, 120),
        timeout=120,
        what="all 120 rows back, including those published during the suspension",
        log=worker.log,
    )
