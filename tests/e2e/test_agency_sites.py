"""Publishing with the key of the agency's own site, registered by its request, on the real broker.

The hub registers the public half (after checking the request proves possession of the private one) and
never holds the private key; events then verify under the key the site made; a forged request, an
unregistered key and a revoked key are refused before anything changes or is published.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from connectors.site import AgencySite
from services.gov_operations import Caller, perform
from services.hub import Hub
from sharehub.errors import ForgedKeyRequest, InputError
from sharehub.gov.key_request import KeyRequest
from tests.kafka_helpers import sharehub, topic_messages
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka

DATASET = "party-members"
PASSPHRASE = b"the site keeps this, not the hub"


def _site(tmp_path: Path, label: str = "site-1") -> tuple[AgencySite, KeyRequest]:
    return AgencySite.init(tmp_path / "sites" / "coc", "coc", PASSPHRASE, label=label)


def _signers_on_topic(hub: Hub) -> set[str]:
    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    codec = hub.codec(DATASET)
    return {
        codec.verify(raw, partition).header.signer_key_id for partition, _, raw in topic_messages(hub, topic)
    }


def test_events_signed_at_the_site_verify_under_the_registered_key_the_hub_never_held(
    hub: Hub, tmp_path: Path
) -> None:
    site, request = _site(tmp_path)
    perform(hub.governance_desk(), Caller("cpo", local=True), "register-key", request)
    assert not hub.keys.has(request.key_id, "signing"), "the hub holds only the public half"

    report = hub.publisher("coc", DATASET, signer=site.signing_key(PASSPHRASE)).publish_records(
        list(generate_party_members(5, seed=3))
    )
    assert report.published == 5 and not report.rejected
    assert _signers_on_topic(hub) == {"coc/sign/site-1"}


def test_a_forged_request_registers_nothing(hub: Hub, tmp_path: Path) -> None:
    _, request = _site(tmp_path)
    head = hub.governance_state(refresh=True).head_sequence
    later = request.valid_from + dt.timedelta(days=1)
    for forged in (
        request.model_copy(update={"agency": "go", "key_id": "go/sign/site-1"}),
        request.model_copy(update={"valid_from": later}),
    ):
        with pytest.raises(ForgedKeyRequest):
            perform(hub.governance_desk(), Caller("cpo", local=True), "register-key", forged)
    assert hub.governance_state(refresh=True).head_sequence == head


def test_an_unregistered_or_revoked_site_key_publishes_nothing(hub: Hub, tmp_path: Path) -> None:
    site, request = _site(tmp_path)
    with pytest.raises(InputError, match="cannot publish with key 'coc/sign/site-1'.*no signing key"):
        hub.publisher("coc", DATASET, signer=site.signing_key(PASSPHRASE))
    perform(hub.governance_desk(), Caller("cpo", local=True), "register-key", request)
    with hub.governing() as gov:
        gov.revoke_key("cpo", "coc", request.key_id, "the site's disk was lost")
    with pytest.raises(InputError, match=r"cannot publish with key 'coc/sign/site-1'.*\(revoked\)"):
        hub.publisher("coc", DATASET, signer=site.signing_key(PASSPHRASE))
    assert _signers_on_topic(hub) == set()


def test_the_command_line_registers_a_site_and_publishes_with_its_key(hub: Hub, tmp_path: Path) -> None:
    home = tmp_path / "sites" / "coc"
    secret = tmp_path / "passphrase"
    secret.write_bytes(PASSPHRASE)
    secret.chmod(0o600)
    made = sharehub(hub, "agency", "init", "coc", "--home", str(home), "--label", "site-1",
                    "--passphrase-file", str(secret))  # fmt: skip
    assert made.returncode == 0, made.stderr
    request_file = Path(made.stdout.strip())
    assert json.loads(request_file.read_text())["key_id"] == "coc/sign/site-1"

    tampered = tmp_path / "tampered.json"
    body = json.loads(request_file.read_text())
    tampered.write_text(json.dumps({**body, "valid_from": "2030-01-01T00:00:00Z"}))
    refused = sharehub(hub, "gov", "register-key", str(tampered), "--as", "cpo")
    assert refused.returncode == 2 and "not signed by the key it registers" in refused.stderr

    registered = sharehub(hub, "gov", "register-key", str(request_file), "--as", "cpo")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["type"] == "SigningKeyAdded"

    data = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(4, seed=8), data)
    published = sharehub(hub, "publish", str(data), "--as", "coc", "--dataset", DATASET,
                         "--site", str(home), "--passphrase-file", str(secret))  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert "published 4 events" in published.stderr
    assert _signers_on_topic(hub) == {"coc/sign/site-1"}

    wrong_site = sharehub(hub, "publish", str(data), "--as", "go", "--dataset", DATASET,
                          "--site", str(home), "--passphrase-file", str(secret))  # fmt: skip
    assert wrong_site.returncode == 2 and "is the site of 'coc', not of 'go'" in wrong_site.stderr
