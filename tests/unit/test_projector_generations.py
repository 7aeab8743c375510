"""Blue/green in the projection: terms that only widen a grant build a new generation beside the rows served
(which stay served, and take the live stream), swapped in once it has caught up; terms that narrow one still
take the rows away first; an agreement that ends takes every generation."""

from __future__ import annotations

from pathlib import Path

from projections.generations import only_widens
from projections.projector import Projector
from projections.read_model import ReadModelStore
from projections.read_model_tables import Generations
from services.hub import Hub
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projected, projector

DATASET = "party-members"
BUILD = "langson-ppc/party-members"
NARROW = {"member_id", "province_code", "commune_code", "status"}
WIDE = [*sorted(NARROW), "party_cell", "official_date"]


def replace_lang_sons_terms(hub: Hub, fields: list[str]) -> None:
    """Lang Son's agreement replaced by one granting ``fields``."""
    with hub.governing() as gov:
        gov.propose("langson-ppc", "langson-ppc.party-members.2", "langson-ppc", DATASET, fields,
                    "Follow members' status", "Regulation 384, Art. 5")  # fmt: skip
        gov.consent("coc", "langson-ppc.party-members.2")
        gov.approve("cpo", "langson-ppc.party-members.2")
        gov.approve("op", "langson-ppc.party-members.2")
        gov.revoke("cpo", "langson-ppc.party-members.1", "superseded by .2")


def fields_served(store: ReadModelStore) -> set[frozenset[str]]:
    return {frozenset(r["fields"]) for r in store.page(DATASET, limit=1000)}


def test_widened_terms_are_built_beside_the_rows_served_and_swapped_in_once_caught_up(
    offline_hub: Hub,
) -> None:
    p, batch = projected(offline_hub, 9, applied=4)
    topic = batch[0].topic
    lang_son, dong_thap = offline_hub.store("langson-ppc"), offline_hub.store("dongthap-ppc")
    replace_lang_sons_terms(offline_hub, WIDE)
    done = p.reconcile()
    assert done.building == {("langson-ppc", DATASET): 4} and not done.reset and not done.purged
    assert p.lagging({(topic, 0): 4}) == {BUILD: {(topic, 0): 0}}, "only the new generation is behind"

    apply(p, batch[4:6])  # the live stream goes on into the rows served, under the terms active now
    assert lang_son.count(DATASET) == 6 and fields_served(lang_son) == {frozenset(NARROW), frozenset(WIDE)}
    assert p.reconcile().swapped == {}, "the new generation has nothing yet"

    backfill = p.for_one(BUILD)  # reads the log again from the generation's position, 0
    apply(backfill, batch[:3])
    assert lang_son.count(DATASET) == 6, "never fewer rows served while the generation is built"
    apply(backfill, batch[3:6])
    assert p.lagging({(topic, 0): 6}) == {}, "caught up: the live stream has the generation too"
    apply(p, batch[6:])
    assert fields_served(lang_son) == {frozenset(NARROW), frozenset(WIDE)}, "still the old generation"

    done = p.reconcile()
    assert done.swapped == {("langson-ppc", DATASET): 9}
    assert done.retired == {"langson-ppc": 9 + 9}, "the old generation's rows and pairs (no past versions)"
    assert fields_served(lang_son) == {frozenset(WIDE)}
    assert lang_son.versions(DATASET) == {f"PM{i:010d}": 1 for i in range(9)}, "each event applied once"
    assert dong_thap.versions(DATASET) == {f"PM{i:010d}": 1 for i in range(9)}, "the others untouched"
    assert lang_son.generations()[DATASET] == Generations(DATASET + "~")
    assert p.reconcile().swapped == {} and p.lagging({(topic, 0): 9}) == {}


def test_a_worker_started_after_the_terms_changed_follows_the_generation_being_built(
    offline_hub: Hub,
) -> None:
    p, batch = projected(offline_hub, 6, applied=6)
    topic = batch[0].topic
    replace_lang_sons_terms(offline_hub, WIDE)
    p.reconcile()
    restarted = projector(offline_hub)
    restarted.resume([(topic, 0)])
    assert restarted.lagging({(topic, 0): 6}) == {}, "the stream resumes where the rows served stand"
    restarted.reconcile()
    assert restarted.lagging({(topic, 0): 6}) == {BUILD: {(topic, 0): 0}}


def test_narrowed_terms_take_the_rows_away_first(offline_hub: Hub) -> None:
    p, _ = projected(offline_hub, 3, applied=3)
    replace_lang_sons_terms(offline_hub, ["member_id", "status"])
    done = p.reconcile()
    assert done.reset == {("langson-ppc", DATASET): 3} and not done.building
    assert offline_hub.store("langson-ppc").count(DATASET) == 0


def test_R5_a_suspension_while_a_generation_is_built_purges_both_and_the_backfill_brings_nothing_back(
    offline_hub: Hub,
) -> None:
    p, batch = projected(offline_hub, 6, applied=6)
    lang_son = offline_hub.store("langson-ppc")
    replace_lang_sons_terms(offline_hub, WIDE)
    p.reconcile()
    backfill = p.for_one(BUILD)
    apply(backfill, batch[:3])

    with offline_hub.governing() as gov:
        gov.suspend("cpo", "langson-ppc.party-members.2", "inspection")
    assert p.reconcile().purged == {("langson-ppc", DATASET): 6 + 3}
    apply(backfill, batch[3:])  # the backfill goes on to the stream's end, writing nothing now
    apply(p, messages(offline_hub, [member(member_id="PM0000000099")], start=6, partition=1))
    assert lang_son.count(DATASET) == 0 and DATASET not in lang_son.generations()
    assert lang_son.positions(building=batch[0].topic) == {}
    assert p.lagging({(batch[0].topic, 0): 6}) == {}


def test_terms_only_widen_a_grant_with_the_same_row_filter_and_every_field_kept() -> None:
    narrow = '{"fields":["a","b"],"row_filter":null}'
    assert only_widens(narrow, '{"fields":["a","b","c"],"row_filter":null}')
    assert only_widens(narrow, narrow), "a replay, or a renewal: the same grant again"
    assert not only_widens(narrow, '{"fields":["a","c"],"row_filter":null}')
    assert not only_widens(narrow, '{"fields":["a","b"],"row_filter":"status = \\"OFFICIAL\\""}')
    assert not only_widens(None, narrow), "what rows made before recorded nothing hold is not known"


def test_a_read_model_named_otherwise_than_its_agency_is_projected_and_built_under_the_agencys_terms(
    offline_hub: Hub, tmp_path: Path
) -> None:
    """A rebuild's scratch store is named ``<agency>__rebuild``: the projector's key names the agency."""
    scratch = ReadModelStore(f"sqlite:///{tmp_path}/{{consumer}}.db", "langson-ppc__rebuild")
    scratch.create()
    p = Projector(offline_hub.governance, offline_hub.keys, {"langson-ppc": scratch})
    p.reconcile()
    batch = messages(offline_hub, [member(member_id=f"PM{i:010d}") for i in range(3)])
    apply(p, batch)
    assert fields_served(scratch) == {frozenset(NARROW)} and scratch.count(DATASET) == 3

    replace_lang_sons_terms(offline_hub, WIDE)
    assert p.reconcile().building == {("langson-ppc", DATASET): 3}
    apply(p.for_one(BUILD), batch)
    assert p.reconcile().swapped == {("langson-ppc", DATASET): 3}
    assert fields_served(scratch) == {frozenset(WIDE)}
