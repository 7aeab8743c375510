"""Against the real broker: a consent sealed by another agency than the owner is refused by the hub, and
the same consent forced onto the governance log with the operator's key (past the service) is not
applied, and is reported at its offset by ``sharehub gov verify`` and ``sharehub audit verify``, as is an
event written after it in the form of a release from before seals (a downgrade)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from services.gov_operations import Caller, parse_request, perform
from services.hub import Hub
from sharehub.gov import acts
from sharehub.gov import events as ev
from sharehub.gov.acts import ActSealRefused, Presented
from tests.kafka_helpers import sharehub
from tests.unit.test_act_seals import old_release_event

pytestmark = pytest.mark.kafka

PROPOSAL = "langson-ppc.party-members.2"


def test_a_consent_sealed_by_the_wrong_agency_is_refused_and_forced_it_is_reported(hub: Hub) -> None:
    desk = hub.governance_desk()
    terms = hub.governance.agreement("langson-ppc.party-members.1").terms
    body = {
        "id": PROPOSAL, "consumer": "langson-ppc", "dataset": "party-members", "fields": list(terms.fields),
        "purpose": terms.purpose, "legal_basis": terms.legal_basis,
    }  # fmt: skip
    proposed = perform(desk, Caller("langson-ppc"), "propose", parse_request("propose", body))
    assert proposed.act_seal is not None and proposed.act_seal.key_id == "langson-ppc/custody/1"

    # go's key (the hub holds it in custody) seals coc's consent: the hub refuses it, writes nothing.
    state = hub.governance_state(refresh=True)
    consent = ev.AgreementConsented(PROPOSAL, "coc")
    wrong = acts.sign(hub.keys.signing_key("go"), state, "coc", consent, dt.datetime.now(dt.UTC))
    written = len(hub.log.read_all())
    step = parse_request("consent", {"agreement_id": PROPOSAL})
    with pytest.raises(ActSealRefused, match="must be signed by a key of 'coc'") as refused:
        perform(desk, Caller("coc"), "consent", step, signer=Presented(wrong))
    assert refused.value.reason == acts.WRONG_PARTY
    assert len(hub.log.read_all()) == written, "a refused request changes nothing"

    # Forced onto the log with the operator key: operator-signed and chained, but not coc's act.
    forced = ev.seal(
        hub.keys.signing_key("cpo"), sequence=state.head_sequence + 1, prev_hash=state.head_hash,
        occurred_at=dt.datetime.now(dt.UTC), actor="coc", payload=consent, act_seal=wrong,
    )  # fmt: skip
    hub.log.append(forced)
    assert hub.governance_state(refresh=True).agreement(PROPOSAL).stage == "proposed", "not applied"
    # And after it, an event in the form of a release from before seals (a downgrade), operator-signed.
    revoke = ev.AgreementRevoked(PROPOSAL, "cpo", "written by an old release")
    hub.log.append(ev.parse(old_release_event(hub.keys.signing_key("cpo"), forced, "cpo", revoke)))

    checked = sharehub(hub, "gov", "verify")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"offset {written}: act_wrong_party" in checked.stderr
    assert f"offset {written + 1}: act_downgrade" in checked.stderr

    audit = sharehub(hub, "audit", "verify", "--json")
    assert audit.returncode == 1, audit.stderr
    findings = [r for r in json.loads(audit.stdout)["results"] if r["reason"] != "ok"]
    assert [(f["topic"], f["offset"], f["reason"]) for f in findings] == [
        (state.governance_topic, written, acts.WRONG_PARTY),
        (state.governance_topic, written + 1, acts.DOWNGRADE),
    ]
