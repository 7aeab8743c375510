"""The hub's governance: applied from YAML through the log, idempotent, refused as a whole, pinned trust."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.governance_bootstrap import issue_credential, load, plan_spec, read_spec
from services.hub import Hub
from sharehub.errors import InputError, UnknownReferenceError
from sharehub.gov import fold
from sharehub.gov.apply import GovSpec
from sharehub.gov.apply import read_spec as parse_spec
from sharehub.gov.log import MemoryLog
from sharehub.settings import Settings
from tests.conftest import demo_spec


def spec_with(**changes: Any) -> GovSpec:
    """The demo spec with some parts replaced by plain YAML-like data, validated as a file would be."""
    return parse_spec({**demo_spec("t-gov").model_dump(mode="json"), **changes})


def offline(tmp_path: Path, log: MemoryLog | None = None) -> Hub:
    settings = Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:9", master_key=None)
    return Hub(settings, log=log if log is not None else MemoryLog())


def test_applying_twice_changes_nothing(tmp_path: Path) -> None:
    log = MemoryLog()
    hub = offline(tmp_path, log)
    first = load(hub.governance_desk(), demo_spec("t-same"), topics=False)
    assert first, "the first apply writes events"
    signing = hub.keys.signing_key("coc").private.private_bytes_raw()
    data_key_id = hub.keys.current_data_key_id("party-members")
    hub.close()
    again = offline(tmp_path, log)
    assert plan_spec(again.governance_desk(), demo_spec("t-same"), broker=False) == []
    assert load(again.governance_desk(), demo_spec("t-same"), topics=False) == []
    assert len(log.events) == len(first)
    assert again.keys.signing_key("coc").private.private_bytes_raw() == signing
    assert again.keys.current_data_key_id("party-members") == data_key_id


def test_the_state_is_the_log_folded_with_the_pinned_key(offline_hub: Hub) -> None:
    pinned = offline_hub.anchors
    assert pinned.operator == "cpo"
    assert list(pinned.keys) == ["cpo/sign/1"]
    rebuilt = fold(offline_hub.log.read_all(), pinned.trust, pinned.topic_prefix)
    assert rebuilt.dump() == offline_hub.governance.dump()


def test_topics_are_named_after_owner_and_dataset(offline_hub: Hub) -> None:
    gov = offline_hub.governance
    assert gov.dataset("party-members").topic == f"{gov.topic_prefix}.coc.party-members"
    assert read_spec(Path("demo/hub.yaml")).topic_prefix == "sharehub"


def test_credentials_reach_the_log_as_hashes_only(offline_hub: Hub) -> None:
    token = issue_credential(offline_hub, "dongthap-ppc")
    assert not any(token.encode() in raw for raw in offline_hub.log.read_all())
    assert offline_hub.governance.consumer_for_token(token) == "dongthap-ppc"
    assert offline_hub.governance.consumer_for_token(token + "x") is None
    with pytest.raises(UnknownReferenceError, match="unknown agency 'nobody'"):
        issue_credential(offline_hub, "nobody")


def agreement(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "go.party-members.1",
        "consumer": "go",
        "dataset": "party-members",
        "fields": ["member_id", "status"],
        "purpose": "Statistics",
        "legal_basis": "Regulation 384",
        "valid_from": "2025-11-19T00:00:00Z",
        "approvers": ["cpo", "op"],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"consumer": "nobody"}, "'nobody'"),
        ({"dataset": "weather"}, "no dataset 'weather'"),
        ({"consumer": "coc"}, "coc"),
        ({"fields": ["member_id", "shoe_size"]}, "shoe_size"),
        ({"valid_until": "2020-01-01T00:00:00Z"}, "valid"),
    ],
)
def test_a_bad_agreement_refuses_the_whole_spec(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    log = MemoryLog()
    spec = spec_with(agreements=[agreement(**changes)])
    with pytest.raises(InputError, match=message):
        load(offline(tmp_path, log).governance_desk(), spec, topics=False)
    assert log.events == [], "a refused spec writes nothing to the log"


def test_a_field_above_the_consumers_clearance_is_never_granted(tmp_path: Path) -> None:
    spec = spec_with(
        agreements=[agreement(consumer="mcst-pc", id="mcst.1", fields=["member_id", "full_name"])]
    )
    with pytest.raises(InputError, match="full_name"):
        load(offline(tmp_path).governance_desk(), spec, topics=False)


def test_duplicate_agencies_are_refused(tmp_path: Path) -> None:
    spec = demo_spec("t-dup")
    spec = spec.model_copy(update={"agencies": [*spec.agencies, spec.agencies[1]]})
    with pytest.raises(InputError, match="coc"):
        load(offline(tmp_path).governance_desk(), spec, topics=False)


def test_a_dataset_owned_by_nobody_is_refused(tmp_path: Path) -> None:
    spec = demo_spec("t-own")
    ghost = spec.datasets[0].model_copy(update={"owner": "ghost"})
    spec = spec.model_copy(update={"datasets": [ghost], "agreements": []})
    with pytest.raises(InputError, match="ghost"):
        load(offline(tmp_path).governance_desk(), spec, topics=False)


def test_another_operator_or_prefix_for_the_same_home_is_refused(offline_hub: Hub) -> None:
    other = demo_spec("t-other")
    with pytest.raises(InputError, match="pins operator 'cpo'"):
        plan_spec(offline_hub.governance_desk(), other)


def test_a_home_without_governance_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(UnknownReferenceError, match="sharehub gov apply"):
        offline(tmp_path).governance  # noqa: B018


def test_unreadable_yaml_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "hub.yaml"
    bad.write_text("operator: [unclosed\n")
    with pytest.raises(InputError):
        read_spec(bad)
    with pytest.raises(InputError, match="no such file"):
        read_spec(tmp_path / "missing.yaml")


def test_the_catalog_keeps_quality_rules_and_publishing_enforces_them(offline_hub: Hub) -> None:
    from connectors.record_rules import RecordRules
    from sharehub.errors import RecordValidationError
    from tooling.synthetic import generate_party_members

    ds = offline_hub.governance.dataset("party-members")
    assert 'admission_date >= "1930-02-03"' in ds.quality_rules
    rules = RecordRules(offline_hub.governance, "party-members")
    member = next(generate_party_members(1, seed=4))
    assert rules.validated(member)["member_id"] == member["member_id"]
    early = {**member, "admission_date": "1920-01-01"}
    with pytest.raises(RecordValidationError, match='not met: admission_date >= "1930-02-03"'):
        rules.validated(early)


def test_a_schema_version_must_keep_every_quality_rule_meaningful(offline_hub: Hub) -> None:
    from sharehub.avro import load_schema

    schema = dict(load_schema("party-members").raw)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "official_date"]
    with offline_hub.governing() as gov, pytest.raises(InputError, match="quality rule .* official_date"):
        gov.register_schema("coc", "party-members", schema)
