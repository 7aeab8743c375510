"""The projection's decisions: granted fields only, default deny, exactly-once effects, quarantine reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

from projections.projector import LogMessage, Projector, Reconciled
from projections.read_model import ReadModelStore
from services.hub import Hub
from sharehub.envelope import ZERO_HASH, ChainPosition
from tests.e2e.test_governance_in_projection import DATASET, THAI_NGUYEN, grant_thai_nguyen_its_own_members
from tests.unit.test_avro import member
from tests.unit.test_envelope import sealed


def projector(hub: Hub) -> Projector:
    return Projector(hub.governance, hub.keys, {c: hub.store(c) for c in hub.consumers()})


def messages(
    hub: Hub,
    records: list[dict[str, Any]],
    *,
    partition: int = 0,
    start: int = 0,
    occurred: list[dt.datetime] | None = None,
) -> list[LogMessage]:
    """Records sealed as one chain in lane ``partition``, at offsets from ``start`` (and, given
    ``occurred``, with those event times)."""
    topic = hub.governance.dataset("party-members").topic
    out, prev = [], ZERO_HASH
    for i, record in enumerate(records):
        when = {} if occurred is None else {"occurred_at": occurred[i]}
        envelope = sealed(hub, record=record, position=ChainPosition(partition, i + 1, prev), **when)
        prev = envelope.hash
        out.append(LogMessage(topic, partition, start + i, None, envelope.raw))
    return out


def apply(p: Projector, batch: list[LogMessage]) -> Any:
    decision = p.decide(batch)
    p.commit(decision)
    return decision


def two_versions(hub: Hub, p: Projector) -> list[dt.datetime]:
    """Member PM0000000001 projected by ``p`` as probationary, then official, 100 and 200 ms after the
    owner's key became valid (an event before it is forged); returns when each version occurred."""
    key_since = hub.governance.agencies_["coc"].key("coc/custody/1").valid_from
    moments = [key_since + dt.timedelta(milliseconds=ms) for ms in (100, 200)]
    history = [
        member(member_id="PM0000000001", status="PROBATIONARY", official_date=None),
        member(member_id="PM0000000001"),
    ]
    apply(p, messages(hub, history, occurred=moments))
    return moments


def test_each_consumer_gets_exactly_its_granted_fields(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    apply(p, messages(offline_hub, [member()]))
    dongthap = offline_hub.store("dongthap-ppc").get("party-members", "PM0000000001")
    langson = offline_hub.store("langson-ppc").get("party-members", "PM0000000001")
    assert dongthap is not None and langson is not None
    agreement = offline_hub.governance.active_agreement("dongthap-ppc", "party-members", _now())
    assert agreement is not None
    assert set(dongthap["fields"]) == set(agreement.fields)
    assert set(langson["fields"]) == {"member_id", "province_code", "commune_code", "status"}
    for fields in (dongthap["fields"], langson["fields"]):
        assert "national_id" not in fields and "phone" not in fields and "date_of_birth" not in fields


def test_an_agency_without_an_agreement_gets_no_read_model_rows(offline_hub: Hub) -> None:
    stores = {c: offline_hub.store(c) for c in [*offline_hub.consumers(), "go"]}
    p = Projector(offline_hub.governance, offline_hub.keys, stores)
    apply(p, messages(offline_hub, [member()]))
    assert stores["go"].count() == 0
    assert stores["dongthap-ppc"].count() == 1


def test_replaying_a_batch_applies_nothing_twice(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    batch = messages(offline_hub, [member(), member(status="EXPELLED"), member(member_id="PM0000000002")])
    apply(p, batch)
    second = apply(p, batch)  # as after a crash between the commit and the broker's offset commit
    assert second.applied() == 0
    assert offline_hub.store("dongthap-ppc").versions("party-members") == {
        "PM0000000001": 2,
        "PM0000000002": 1,
    }
    assert (
        offline_hub.store("dongthap-ppc").get("party-members", "PM0000000001")["fields"]["status"]
        == "EXPELLED"
    )


def test_a_partly_applied_batch_resumes_where_the_read_model_stopped(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    batch = messages(offline_hub, [member(member_id=f"PM{i:010d}") for i in range(6)])
    apply(p, batch[:4])
    apply(p, batch)
    assert sum(offline_hub.store("langson-ppc").versions("party-members").values()) == 6
    assert p.resume_offset((batch[0].topic, 0)) == 6


def test_invalid_events_are_quarantined_with_their_reason_and_never_applied(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    good = messages(offline_hub, [member()])[0]
    flipped = bytearray(good.value)
    flipped[-70] ^= 0x01
    not_owner = sealed(offline_hub, producer="go").raw
    batch = [
        LogMessage(good.topic, 0, 0, None, bytes(flipped)),
        LogMessage(good.topic, 0, 1, None, not_owner),
        LogMessage(good.topic, 0, 2, None, b"garbage"),
        LogMessage("elsewhere", 0, 0, None, good.value),
    ]
    decision = apply(p, batch)
    assert [q.reason for q in decision.quarantined] == [
        "bad_signature",
        "not_owner",
        "malformed",
        "unknown_dataset",
    ]
    assert decision.applied() == 0
    assert offline_hub.store("dongthap-ppc").count() == 0
    assert offline_hub.store("dongthap-ppc").positions()[(good.topic, 0)] == 3


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def projected(hub: Hub, count: int, applied: int) -> tuple[Projector, list[LogMessage]]:
    """A reconciled projector and ``count`` members' events in one lane, the first ``applied`` projected."""
    p = projector(hub)
    p.reconcile()
    batch = messages(hub, [member(member_id=f"PM{i:010d}") for i in range(count)])
    apply(p, batch[:applied])
    return p, batch


def lang_son_under_new_terms(hub: Hub, topic: str) -> ReadModelStore:
    """Lang Son's read model sent back to the dataset's start, as new terms do."""
    store = hub.store("langson-ppc")
    store.reset_dataset("party-members", topic, terms="new terms", agreement_id="langson-ppc.party-members.1")
    return store


def test_a_read_model_reset_to_a_datasets_start_is_backfilled_beside_the_live_stream(
    offline_hub: Hub,
) -> None:
    p, batch = projected(offline_hub, 9, applied=4)
    topic = batch[0].topic
    lang_son, dong_thap = lang_son_under_new_terms(offline_hub, topic), offline_hub.store("dongthap-ppc")
    assert p.lagging({(topic, 0): 4}) == {"langson-ppc": {(topic, 0): 0}}

    apply(p, batch[4:6])  # the stream goes on; the reset read model must not jump to its end
    assert lang_son.count("party-members") == 0 and lang_son.positions().get((topic, 0), 0) == 0
    assert sum(dong_thap.versions("party-members").values()) == 6

    backfill = p.for_one("langson-ppc")  # reads the log again from its position, 0, up to the stream's
    apply(backfill, batch[:3])
    apply(backfill, batch[3:6])
    assert p.lagging({(topic, 0): 6}) == {}, "caught up: the live stream has it again"
    apply(p, batch[6:])
    assert lang_son.versions("party-members") == {f"PM{i:010d}": 1 for i in range(9)}
    assert dong_thap.versions("party-members") == {f"PM{i:010d}": 1 for i in range(9)}, "nothing twice"


def test_R5_a_suspension_between_two_backfill_batches_purges_and_the_backfill_brings_nothing_back(
    offline_hub: Hub,
) -> None:
    p, batch = projected(offline_hub, 6, applied=6)
    lang_son = lang_son_under_new_terms(offline_hub, batch[0].topic)
    backfill = p.for_one("langson-ppc")
    apply(backfill, batch[:3])
    assert lang_son.count("party-members") == 3

    with offline_hub.governing() as gov:
        gov.suspend("cpo", "langson-ppc.party-members.1", "inspection")
    assert p.reconcile().purged == {("langson-ppc", "party-members"): 3}
    apply(backfill, batch[3:])  # the backfill goes on to the stream's end, granting nothing now
    assert lang_son.count("party-members") == 0
    assert lang_son.positions()[(batch[0].topic, 0)] == 6, "caught up: the live stream has it again"
    assert p.lagging({(batch[0].topic, 0): 6}) == {}


def test_a_partition_taken_over_goes_on_from_the_least_stored_position_with_its_chain_heads(
    offline_hub: Hub,
) -> None:
    """A partition new to a worker is judged from the read models' least position at once (with the chain
    heads of a read model standing there), so a read model reset to its start afterwards does not send the
    live stream back: it is left behind, for its backfill."""
    _, batch = projected(offline_hub, 5, applied=3)
    topic, dong_thap = batch[0].topic, offline_hub.store("dongthap-ppc")

    taken_over = projector(offline_hub)
    taken_over.resume([(topic, 0)])
    lang_son = lang_son_under_new_terms(offline_hub, topic)
    decision = apply(taken_over, batch[3:])
    assert decision.quarantined == [], "the chains go on from the heads stored at offset 3"
    assert dong_thap.versions("party-members") == {f"PM{i:010d}": 1 for i in range(5)}
    assert lang_son.count("party-members") == 0, "left behind for its backfill"
    assert taken_over.lagging({(topic, 0): 5}) == {"langson-ppc": {(topic, 0): 0}}


def test_a_read_model_joins_the_stream_where_the_log_kept_nothing_below_it(offline_hub: Hub) -> None:
    p, batch = projected(offline_hub, 5, applied=3)
    topic = batch[0].topic
    lang_son = lang_son_under_new_terms(offline_hub, topic)

    p.join_stream("langson-ppc", [(topic, 0)])
    assert lang_son.positions()[(topic, 0)] == 3
    assert lang_son.chain_heads((topic, 0)) == offline_hub.store("dongthap-ppc").chain_heads((topic, 0))
    apply(p, batch[3:])
    assert set(lang_son.versions("party-members")) == {"PM0000000003", "PM0000000004"}


def test_reconcile_purges_ended_agreements_and_resets_changed_terms_once(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    assert p.reconcile().reset, "a new read model records the terms it is projected under"
    assert p.reconcile() == Reconciled(), "nothing changes while the terms stand"
    apply(p, messages(offline_hub, [member()]))
    with offline_hub.governing() as gov:
        gov.suspend("cpo", "langson-ppc.party-members.1", "inspection")
    done = p.reconcile()
    assert done.purged == {("langson-ppc", "party-members"): 1} and not done.reset
    assert offline_hub.store("langson-ppc").count("party-members") == 0
    with offline_hub.governing() as gov:
        gov.resume("cpo", "langson-ppc.party-members.1", "inspection closed")
    assert set(p.reconcile().reset) == {("langson-ppc", "party-members")}
    assert offline_hub.store("dongthap-ppc").count("party-members") == 1


def test_a_record_breaking_a_quality_rule_reaches_no_read_model_and_is_quarantined_with_its_rule(
    offline_hub: Hub,
) -> None:
    """Publishers check the dataset's quality rules; a record sealed past them (another client) is
    quarantined by the projection with the rule it breaks, and the records around it go on."""
    p = projector(offline_hub)
    too_early = member(member_id="PM0000000002", admission_date="1925-01-01")
    decision = apply(p, messages(offline_hub, [member(), too_early, member(member_id="PM0000000003")]))
    assert [(q.reason, q.detail) for q in decision.quarantined] == [
        ("quality_rule", 'admission_date >= "1930-02-03"')
    ]
    assert decision.quarantined[0].message.offset == 1
    for consumer in ("dongthap-ppc", "langson-ppc"):
        store = offline_hub.store(consumer)
        assert store.get("party-members", "PM0000000002") is None
        assert store.get("party-members", "PM0000000001") is not None
        assert store.get("party-members", "PM0000000003") is not None


def test_a_lane_whose_start_moved_goes_on_once_a_retention_in_force_could_have_deleted_its_first_events(
    offline_hub: Hub,
) -> None:
    """party-members, kept for ever, is given a month: a lane whose first two events are gone is a gap
    (quarantined) while no event of it can be a month old, and goes on from its first event read after."""
    with offline_hub.governing() as service:
        service.set_dataset_retention("coc", "party-members", 30 * 24 * 3600 * 1000, "a month")
    batch = messages(offline_hub, [member(member_id=f"PM{i:010d}") for i in range(4)])[2:]
    stores = {c: offline_hub.store(c) for c in offline_hub.consumers()}

    def projector_at(at: dt.datetime) -> Projector:
        return Projector(offline_hub.governance, offline_hub.keys, stores, clock=lambda: at)

    now = dt.datetime.now(dt.UTC)
    early = projector_at(now).decide(batch)
    assert [q.reason for q in early.quarantined][:1] == ["chain_gap"]
    later = apply(projector_at(now + dt.timedelta(days=31)), batch)
    assert later.quarantined == []
    assert sorted(offline_hub.store("langson-ppc").versions("party-members")) == [
        "PM0000000002",
        "PM0000000003",
    ]


def test_a_record_the_row_filter_excludes_then_passes_again_in_one_batch_loses_its_history_as_in_two(
    offline_hub: Hub,
) -> None:
    """A record that leaves a read model (its row filter no longer passes) takes its versions along; a
    later event that passes again brings it back as a new record, whether or not the two come in one
    batch."""
    grant_thai_nguyen_its_own_members(offline_hub)
    key_since = offline_hub.governance.agencies_["coc"].key("coc/custody/1").valid_from
    moments = [key_since + dt.timedelta(milliseconds=ms) for ms in (100, 200, 300)]
    history = [
        member(province_code=THAI_NGUYEN, commune_code="05500"),
        member(province_code="20", commune_code="06000"),  # a transfer out: the filter no longer passes
        member(province_code=THAI_NGUYEN, commune_code="05600"),  # and back
    ]
    sealed_history = messages(offline_hub, history, occurred=moments)
    thai_nguyen = offline_hub.store("thainguyen-ppc")
    p = projector(offline_hub)
    apply(p, sealed_history[:1])
    assert thai_nguyen.get(DATASET, "PM0000000001") is not None
    apply(p, sealed_history[1:])  # out and back in one batch
    assert thai_nguyen.get(DATASET, "PM0000000001")["fields"]["commune_code"] == "05600"  # type: ignore[index]
    assert thai_nguyen.get(DATASET, "PM0000000001", as_of=moments[0]) is None
    assert thai_nguyen.version_count(DATASET) == 1
    assert thai_nguyen.versions(DATASET) == {"PM0000000001": 1}
