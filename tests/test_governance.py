"""The skeleton's governance: loading is validated, idempotent, and keeps credentials hashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.governance_bootstrap import issue_credential, load_governance, read_spec
from services.hub import Hub
from sharehub.errors import InputError
from sharehub.governance import GovernanceState
from sharehub.settings import Settings
from tests.conftest import demo_spec


def spec_with(**changes: Any) -> Any:
    spec = demo_spec("t-gov")
    return spec.model_copy(update=changes)


def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:9", master_key=None)


def test_loading_twice_changes_nothing(tmp_path: Path) -> None:
    first = load_governance(settings(tmp_path), demo_spec("t-same"))
    hub = Hub(settings(tmp_path))
    signing = hub.keys.signing_key("coc").private.private_bytes_raw()
    data_key_id = hub.keys.current_data_key_id("party-members")
    second = load_governance(settings(tmp_path), demo_spec("t-same"))
    assert first == second
    again = Hub(settings(tmp_path))
    assert again.keys.signing_key("coc").private.private_bytes_raw() == signing
    assert again.keys.current_data_key_id("party-members") == data_key_id


def test_topics_are_named_after_owner_and_dataset(offline_hub: Hub) -> None:
    gov = offline_hub.governance
    assert gov.dataset("party-members").topic == f"{gov.topic_prefix}.coc.party-members"
    assert read_spec(Path("demo/hub.yaml")).topic_prefix == "sharehub"


def test_credentials_are_stored_hashed(offline_hub: Hub) -> None:
    token = issue_credential(offline_hub.settings, "dongthap-ppc")
    state_file = (offline_hub.home / "governance.json").read_text()
    assert token not in state_file
    assert (
        GovernanceState.load(offline_hub.home / "governance.json").consumer_for_token(token) == "dongthap-ppc"
    )
    assert GovernanceState.load(offline_hub.home / "governance.json").consumer_for_token(token + "x") is None


def agreement(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "go.party-members.1",
        "consumer": "go",
        "dataset": "party-members",
        "fields": ["member_id", "status"],
        "purpose": "Statistics",
        "legal_basis": "Regulation 384",
        "valid_from": "2025-11-19T00:00:00Z",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"consumer": "nobody"}, "consumer 'nobody' is not a registered agency"),
        ({"dataset": "weather"}, "dataset 'weather' does not exist"),
        ({"consumer": "coc"}, "'coc' owns 'party-members' and needs no agreement"),
        ({"fields": ["member_id", "shoe_size"]}, "has no field 'shoe_size'"),
        ({"fields": ["status"]}, "must grant the key field 'member_id'"),
        ({"valid_until": "2020-01-01T00:00:00Z"}, "valid_until is not after valid_from"),
    ],
)
def test_a_bad_agreement_is_refused_with_its_reason(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    spec = spec_with(agreements=[agreement(**changes)])
    with pytest.raises(InputError, match=message):
        load_governance(settings(tmp_path), spec)


def test_a_field_above_the_consumers_clearance_is_never_granted(tmp_path: Path) -> None:
    spec = spec_with(
        agreements=[agreement(consumer="mcst-pc", id="mcst.1", fields=["member_id", "full_name"])]
    )
    with pytest.raises(
        InputError, match="'full_name' is confidential, above the internal clearance of 'mcst-pc'"
    ):
        load_governance(settings(tmp_path), spec)


def test_duplicate_agencies_are_refused(tmp_path: Path) -> None:
    spec = demo_spec("t-dup")
    spec = spec.model_copy(update={"agencies": [*spec.agencies, spec.agencies[0]]})
    with pytest.raises(InputError, match="duplicate agency id 'cpo'"):
        load_governance(settings(tmp_path), spec)


def test_a_dataset_owned_by_nobody_is_refused(tmp_path: Path) -> None:
    spec = demo_spec("t-own")
    spec = spec.model_copy(update={"datasets": [{**spec.datasets[0], "owner": "ghost"}]})
    with pytest.raises(InputError, match="owner 'ghost' is not a registered agency"):
        load_governance(settings(tmp_path), spec)


def test_nothing_is_written_when_the_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_governance(settings(tmp_path), spec_with(agreements=[agreement(consumer="nobody")]))
    assert not (tmp_path / "home" / "governance.json").exists()
    assert not (tmp_path / "home").exists()


def test_unreadable_yaml_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "hub.yaml"
    bad.write_text("operator: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        read_spec(bad)
    with pytest.raises(InputError, match="no such file"):
        read_spec(tmp_path / "missing.yaml")
