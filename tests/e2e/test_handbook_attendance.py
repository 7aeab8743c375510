"""The Handbook's data per member (#23 item 8): the demo's agreement grants the Lang Son Provincial Party
Committee its own cells' members at their meetings — attendance, opinions and activity scores, never how each
one voted (secret, above a province's clearance) — and nothing of another province."""

from __future__ import annotations

from services.hub import Hub
from tests.kafka_helpers import Worker, wait_until
from tooling.synthetic import generate_handbook_attendance

DATASET = "handbook-attendance"
LANG_SON = "20"


def test_a_province_committee_sees_its_own_cells_members_at_their_meetings_and_not_their_votes(
    hub: Hub, worker: Worker
) -> None:
    agreement = hub.governance.agreement("langson-ppc.handbook-attendance.1").terms
    assert "vote" not in agreement.fields and hub.governance.dataset(DATASET).classification == "secret"
    records = list(generate_handbook_attendance(12 * 400, seed=3, changes=0.2))
    latest = {r["attendance_id"]: r for r in records}  # a later event is the record's later state
    ours = {key: r for key, r in latest.items() if r["province_code"] == LANG_SON}
    assert 12 <= len(ours) < len(latest) / 10, "the sample has Lang Son's members and many others"
    assert any(r["vote"] for r in ours.values()), "Lang Son's members voted at some meetings"

    assert hub.publisher("coc", DATASET).publish_records(records).published == len(records)
    worker.start()
    lang_son = hub.store("langson-ppc")
    granted = {key: {f: r[f] for f in agreement.fields} for key, r in ours.items()}

    def held() -> dict[str, dict[str, object]]:
        return {row["key"]: row["fields"] for row in lang_son.page(DATASET, limit=len(latest))}

    wait_until(lambda: held() == granted, timeout=120, what="Lang Son's rows, latest states", log=worker.log)
    assert hub.store("dongthap-ppc").count(DATASET) == 0, "no agreement, no rows"
