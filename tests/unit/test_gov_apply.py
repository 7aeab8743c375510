"""Declarative bootstrap: plan lines, applying them, and idempotency (the second plan is empty)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sharehub.avro import RecordSchema
from sharehub.errors import InputError, LifecycleViolation
from sharehub.gov import GovernanceService, fold
from sharehub.gov import events as ev
from sharehub.gov.apply import LocalSite, apply, plan, read_spec, rehearse
from sharehub.gov.key_request import make_key_request
from sharehub.gov.log import MemoryLog
from sharehub.gov.state import GovState
from sharehub.gov.verify import Trust
from sharehub.kek import FileKek
from sharehub.keys import LocalKeyStore, SecretBytes, SigningKey
from tests.gov_support import T0, Clock

DEMO = Path(__file__).resolve().parents[2] / "demo" / "hub.yaml"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


CENTRAL_OFFICES = ("cpo", "op", "ona", "go")


def demo_spec(**approvers: tuple[str, ...]) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    owners = {d["id"]: d["owner"] for d in raw["datasets"]}
    for agreement in raw["agreements"]:
        # Two central offices that neither own the dataset (the owner consents) nor read it.
        others = (owners[agreement["dataset"]], agreement["consumer"])
        default = tuple(o for o in CENTRAL_OFFICES if o not in others)[:2]
        agreement["approvers"] = list(approvers.get(agreement["consumer"], default))
    # The hub makes every agency's first key: all in its custody (the site-agencies test: the demo's way).
    raw["custodial"] = [a["id"] for a in raw["agencies"] if a["id"] != raw["operator"]]
    return raw


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[LocalKeyStore]:
    store = LocalKeyStore(tmp_path / "keys.db", FileKek(SecretBytes(bytes(32))))
    yield store
    store.close()


def operator_service(keys: LocalKeyStore) -> GovernanceService:
    keys.create_signing_key("cpo", "cpo/sign/1")
    return GovernanceService.in_memory("cpo", keys.signing_key("cpo"), clock=Clock(T0))


def test_plan_apply_then_nothing_to_do(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    spec = read_spec(demo_spec())
    changes = plan(spec, svc.state)
    lines = [str(c) for c in changes]
    assert lines[0] == "+ register agency cpo (Central Party Office)"
    assert "+ register agency coc (Central Organization Commission)" in lines
    assert "+ add signing key coc/custody/1 to coc" in lines
    assert "+ declare dataset party-members (owner coc, secret)" in lines
    assert any(line.startswith("+ register schema party-members v1 (") for line in lines)
    assert (
        "+ propose agreement langson-ppc.party-members.1 (langson-ppc reads party-members, 4 fields)" in lines
    )
    assert "+ consent agreement langson-ppc.party-members.1 by coc" in lines
    assert "+ approve agreement langson-ppc.party-members.1 by op" in lines
    apply(changes, svc, keys)
    assert plan(spec, svc.state) == []
    assert svc.state.active_agreement("langson-ppc", "party-members", T0) is not None
    assert keys.has("party-members/data/1", "data") and keys.has("dongthap-ppc/custody/1", "signing")
    # The agency's public key on the log is the one in the key store.
    on_log = svc.state.signing_public_key("coc", "coc/custody/1", T0).public_bytes_raw()
    assert on_log == keys.signing_key("coc").private.public_key().public_bytes_raw()
    assert fold(svc._log.read_all(), svc.state.trust).dump() == svc.state.dump()


def test_agencies_not_in_custody_get_no_key_from_the_hub(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    raw["custodial"] = yaml.safe_load(DEMO.read_text(encoding="utf-8")).get("custodial", [])
    assert raw["custodial"] == [], "the demo's agencies all make their keys at their sites"
    spec = read_spec(raw)
    assert "coc" in spec.site_agencies and "cpo" not in spec.site_agencies
    with pytest.raises(InputError, match=r"must be signed by their own agency.*coc: consent agreement"):
        apply(plan(spec, svc.state), svc, keys)  # no site here: nobody can sign their acts
    assert svc._log.read_all() == [], "refused before its first change"
    sites = {a: site_of(a) for a in spec.site_agencies}
    changes = plan(spec, svc.state, sites)
    added = [str(c) for c in changes if c.op == "add_key" and "public_key" not in c.args]
    assert added == ["+ add signing key cpo/sign/1 to cpo"], "only the operator's key is the hub's"
    assert "+ register site key coc/sign/1 of coc (its signed request)" in map(str, changes)
    apply(changes, svc, keys, sites=sites)
    assert [k.key_id for k in svc.state.agencies_["coc"].keys] == ["coc/sign/1"]
    assert [a for a in spec.site_agencies if keys.has(f"{a}/custody/1", "signing")] == []
    consent = next(e for e in map(ev.parse, svc._log.read_all()) if e.type == "AgreementConsented")
    assert consent.actor == "coc" and consent.act_seal is not None
    assert consent.act_seal.key_id == "coc/sign/1", "sealed at coc's site, not by the hub"


def site_of(agency: str) -> LocalSite:
    """A site of ``agency`` on this machine: its key and the request registering it."""
    key = SigningKey(f"{agency}/sign/1", Ed25519PrivateKey.generate())
    return LocalSite((make_key_request(key, agency=agency, valid_from=T0),), key)


@pytest.mark.parametrize(
    ("custodial", "message"),
    [
        (["nobody"], "names agencies the spec does not: nobody"),
        (["cpo"], "is the hub itself"),
    ],
)
def test_custody_must_name_agencies_other_than_the_operator(custodial: list[str], message: str) -> None:
    raw = demo_spec()
    raw["custodial"] = custodial
    with pytest.raises(InputError, match=message):
        read_spec(raw)


def test_a_half_done_agreement_is_moved_along(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    spec = read_spec(demo_spec())
    changes = plan(spec, svc.state)
    # Stop just after the first consent, as if the process had died there.
    stop = next(i for i, c in enumerate(changes) if c.op == "consent") + 1
    apply(changes[:stop], svc, keys)
    rest = [str(c) for c in plan(spec, svc.state)]
    assert rest[0] == "~ approve agreement dongthap-ppc.party-members.1 by cpo"
    assert "~ approve agreement dongthap-ppc.party-members.1 by op" in rest
    assert (
        "+ propose agreement langson-ppc.party-members.1 (langson-ppc reads party-members, 4 fields)" in rest
    )


def test_an_agreement_removed_from_the_spec_is_revoked(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    apply(plan(read_spec(raw), svc.state), svc, keys)
    raw["agreements"] = [a for a in raw["agreements"] if a["id"] != "langson-ppc.party-members.1"]
    changes = plan(read_spec(raw), svc.state)
    assert [str(c) for c in changes] == [
        "- revoke agreement langson-ppc.party-members.1 (no longer in the spec)"
    ]
    apply(changes, svc, keys)
    assert svc.state.agreement("langson-ppc.party-members.1").stage == "revoked"
    assert plan(read_spec(raw), svc.state) == []


def _without_party_cell(tmp_path: Path) -> Path:
    """A version of party-members' schema without ``party_cell`` (which dongthap-ppc's agreement grants)."""
    shipped = json.loads((SCHEMAS / "party-members.avsc").read_text(encoding="utf-8"))
    shipped["fields"] = [f for f in shipped["fields"] if f["name"] != "party_cell"]
    path = tmp_path / "schemas" / "party-members-v2.avsc"
    path.parent.mkdir()
    path.write_text(json.dumps(shipped), encoding="utf-8")
    return path


def test_a_breaking_schema_is_taken_in_the_change_set_that_replaces_what_it_breaks(
    keys: LocalKeyStore, tmp_path: Path
) -> None:
    keys.create_signing_key("cpo", "cpo/sign/1")
    log = MemoryLog()
    svc = GovernanceService(GovState(Trust.of("cpo", keys.signing_key("cpo")), "sharehub"),
                            keys.signing_key("cpo"), log, clock=Clock(T0))  # fmt: skip
    raw = demo_spec()
    apply(plan(read_spec(raw), svc.state), svc, keys)
    _without_party_cell(tmp_path)
    [dataset] = [d for d in raw["datasets"] if d["id"] == "party-members"]
    dataset["schema_file"] = "schemas/party-members-v2.avsc"  # from the spec file's folder
    spec_file = tmp_path / "hub.yaml"

    # The new version alone: refused as a whole, before anything reaches the log.
    spec_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    alone = plan(read_spec(spec_file), svc.state)
    assert [str(c) for c in alone] == [f"~ register schema party-members v2 ({_fingerprint(tmp_path)})"]
    before = log.read_all()
    with pytest.raises(InputError, match=r"breaks 1 term\(s\).*dongthap-ppc.party-members.1.*party_cell"):
        rehearse(alone, before, svc, keys)
    assert log.read_all() == before

    # With the agreement it breaks replaced by one without the field: one change set, in that order.
    [old] = [a for a in raw["agreements"] if a["id"] == "dongthap-ppc.party-members.1"]
    successor = {**old, "id": "dongthap-ppc.party-members.2"}
    successor["fields"] = [f for f in old["fields"] if f != "party_cell"]
    raw["agreements"] = [successor if a is old else a for a in raw["agreements"]]
    spec_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    changes = plan(read_spec(spec_file), svc.state)
    assert [c.op for c in changes] == [
        "revoke",
        "register_schema",
        "propose",
        "consent",
        "approve",
        "approve",
    ]
    rehearse(changes, log.read_all(), svc, keys)
    apply(changes, svc, keys)
    state = svc.state
    assert state.agreement("dongthap-ppc.party-members.1").stage == "revoked"
    assert state.agreement("dongthap-ppc.party-members.2").stage == "approved"
    assert "party_cell" not in state.datasets_["party-members"].schemas[-1].fields
    assert plan(read_spec(spec_file), state) == []


def _fingerprint(tmp_path: Path) -> str:
    text = (tmp_path / "schemas" / "party-members-v2.avsc").read_text(encoding="utf-8")
    return RecordSchema.from_json("party-members", json.loads(text)).fingerprint.hex()


def test_a_schema_file_that_cannot_be_read_is_a_clear_error(keys: LocalKeyStore, tmp_path: Path) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    raw["datasets"][0]["schema_file"] = "nowhere.avsc"
    spec_file = tmp_path / "hub.yaml"
    spec_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(InputError, match="dataset party-members: schema_file .*nowhere.avsc"):
        plan(read_spec(spec_file), svc.state)
    (tmp_path / "junk.avsc").write_text("{not json", encoding="utf-8")
    raw["datasets"][0]["schema_file"] = "junk.avsc"
    spec_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(InputError, match="junk.avsc"):
        plan(read_spec(spec_file), svc.state)


def test_secret_agreement_without_two_approvers_is_refused_at_plan(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    del raw["agreements"][0]["approvers"]
    with pytest.raises(InputError, match="needs 2 distinct central approvers; list them under 'approvers'"):
        plan(read_spec(raw), svc.state)


def test_changed_terms_are_refused(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    apply(plan(read_spec(raw), svc.state), svc, keys)
    raw["agreements"][1]["fields"] = ["member_id", "status"]
    with pytest.raises(
        InputError, match="agreement langson-ppc.party-members.1 differs from the log in fields"
    ):
        plan(read_spec(raw), svc.state)
    raw = demo_spec()
    raw["agencies"][1]["clearance"] = "secret"
    with pytest.raises(InputError, match="agency coc differs from the log in clearance"):
        plan(read_spec(raw), svc.state)


def test_bad_spec(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="operator"):
        read_spec({"agencies": []})
    path = tmp_path / "hub.yaml"
    path.write_text("operator: [", encoding="utf-8")
    with pytest.raises(InputError):
        read_spec(path)


def test_a_dataset_whose_purposes_differ_from_the_log_is_given_the_specs(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    apply(plan(read_spec(raw), svc.state), svc, keys)
    members = raw["datasets"][0]
    assert members["id"] == "party-members"
    members["purposes"] = [*members["purposes"], "document-handling"]
    changes = plan(read_spec(raw), svc.state)
    purposes = "party-member-management, party-member-statistics, document-handling"
    assert [str(c) for c in changes] == [f"~ set purposes of dataset party-members ({purposes})"]
    apply(changes, svc, keys)
    assert svc.state.datasets_["party-members"].purposes == tuple(members["purposes"])
    assert plan(read_spec(raw), svc.state) == []


def test_a_narrowing_comes_after_the_agreements_the_spec_no_longer_lists_are_revoked(
    keys: LocalKeyStore,
) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    apply(plan(read_spec(raw), svc.state), svc, keys)
    raw["datasets"][0]["purposes"] = ["party-member-management"]  # langson-ppc's names statistics
    with pytest.raises(
        LifecycleViolation, match="langson-ppc.party-members.1 .active: party-member-statistics"
    ):
        apply(plan(read_spec(raw), svc.state), svc, keys)
    raw["agreements"] = [a for a in raw["agreements"] if a["id"] != "langson-ppc.party-members.1"]
    changes = plan(read_spec(raw), svc.state)
    assert [str(c) for c in changes] == [
        "- revoke agreement langson-ppc.party-members.1 (no longer in the spec)",
        "~ set purposes of dataset party-members (party-member-management)",
    ]
    apply(changes, svc, keys)
    assert svc.state.datasets_["party-members"].purposes == ("party-member-management",)
    raw["datasets"][0]["classification"] = "top-secret"
    with pytest.raises(InputError, match="dataset party-members differs from the log in classification"):
        plan(read_spec(raw), svc.state)


def test_a_dataset_whose_retention_differs_from_the_log_is_given_the_specs(keys: LocalKeyStore) -> None:
    svc = operator_service(keys)
    raw = demo_spec()
    apply(plan(read_spec(raw), svc.state), svc, keys)
    members = raw["datasets"][0]
    assert members["id"] == "party-members" and members.get("retention_ms", -1) == -1
    members["retention_ms"] = 30 * 24 * 3600 * 1000
    changes = plan(read_spec(raw), svc.state)
    assert [str(c) for c in changes] == ["~ set retention of dataset party-members (2592000000 ms)"]
    apply(changes, svc, keys)
    assert svc.state.dataset("party-members").retention_ms == members["retention_ms"]
    assert plan(read_spec(raw), svc.state) == []

    members["retention_ms"] = -1
    members["purposes"] = [*members["purposes"], "document-handling"]
    assert [str(c) for c in plan(read_spec(raw), svc.state)] == [
        "~ set purposes of dataset party-members (party-member-management, party-member-statistics, "
        "document-handling)",
        "~ set retention of dataset party-members (for ever)",
    ]
    apply(plan(read_spec(raw), svc.state), svc, keys)
    assert [r for _, r in svc.state.datasets_["party-members"].retentions] == [-1, 30 * 24 * 3600 * 1000, -1]
    members["retention_ms"] = 0
    with pytest.raises(InputError, match="retention_ms must be -1 .for ever. or from 1"):
        rehearse(plan(read_spec(raw), svc.state), svc._log.read_all(), svc, keys)
