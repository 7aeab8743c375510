"""An agency site whose signing key is in a PKCS#11 token (SoftHSM2), on the real broker: the site is made
from the command line, its request (signed inside the token) registers through governance, and events the
SDK publishes from the site, signed by the token one batch at a time, pass the projection into a
consumer's read model. Skipped, with the reason, where SoftHSM2 is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.sdk import BrokerLogin, HubAddress, connect, make_tls_request, open_publisher
from connectors.site import AgencySite, read_passphrase
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub import pki
from sharehub.gov import anchors
from sharehub.gov.key_request import read_key_request
from sharehub.pkcs11_token import SOFTHSM_MODULE
from tests.kafka_helpers import Worker, sharehub, topic_messages, wait_until
from tests.softhsm import SoftHsmToken
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka

DATASET = "party-members"
CONSUMER = "dongthap-ppc"  # granted party-members by the demo's agreements


def _token_site(hub: Hub, tmp_path: Path, token: SoftHsmToken) -> tuple[Path, str]:
    """A site of coc made by the command line with its key in the token; its request registered."""
    home = tmp_path / "sites" / "coc"
    made = sharehub(hub, "agency", "init", "coc", "--home", str(home), "--label", "token-1",
                    "--pkcs11-module", str(SOFTHSM_MODULE), "--token", token.label,
                    "--passphrase-file", str(token.pin_file))  # fmt: skip
    assert made.returncode == 0, made.stderr
    request = read_key_request(Path(made.stdout.strip()).read_text())
    # Proof of possession, checked with cryptography's own Ed25519 against the raw key to be registered.
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(request.public_key))
    public.verify(bytes.fromhex(request.signature), request.signed_bytes())
    registered = sharehub(hub, "gov", "register-key", made.stdout.strip(), "--as", "cpo")
    assert registered.returncode == 0, registered.stderr
    assert not hub.keys.has(request.key_id, "signing"), "the hub holds only the public half"
    return home, request.public_key


def _connect(hub: Hub, home: Path, api_url: str, pin: bytes) -> None:
    csr = make_tls_request(home, hub.anchors.topic_prefix, pin).read_bytes()
    certificate = pki.HubCA.load(hub.settings.kafka_ca_path.parent).sign_csr(csr, hub.principal("coc"))
    connect(
        home,
        HubAddress(api_url, hub.settings.mtls_bootstrap),
        trust=anchors.path(hub.home).read_bytes(),
        ca=hub.ca_bundle(),
        credential=issue_credential(hub, "coc"),
        login=BrokerLogin(certificate=certificate),
    )


def test_a_token_site_registers_and_publishes_events_the_projection_accepts(
    hub: Hub, api: str, worker: Worker, tmp_path: Path, softhsm_token: SoftHsmToken
) -> None:
    home, public_hex = _token_site(hub, tmp_path, softhsm_token)
    pin = read_passphrase(softhsm_token.pin_file)
    _connect(hub, home, api, pin)
    members = list(generate_party_members(600, seed=21))  # 3 signature batches of up to 256
    with open_publisher(home, DATASET, pin) as publisher:
        report = publisher.publish_records(members)
    assert report.published == 600 and not report.rejected

    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    codec = hub.codec(DATASET)  # verifies each batch signature under the key governance registered
    headers = [codec.verify(raw, p).header for p, _, raw in topic_messages(hub, topic)]
    assert {h.signer_key_id for h in headers} == {"coc/sign/token-1"}
    registered = hub.governance.signing_public_key("coc", "coc/sign/token-1", headers[0].occurred_at)
    assert registered.public_bytes_raw().hex() == public_hex

    worker.start()
    store = hub.store(CONSUMER)
    wait_until(lambda: store.count(DATASET) == 600, timeout=120, what="600 rows in the read model",
               log=worker.log)  # fmt: skip


def test_a_wrong_pin_publishes_nothing_and_exits_with_status_two(
    hub: Hub, api: str, tmp_path: Path, softhsm_token: SoftHsmToken
) -> None:
    home, _ = _token_site(hub, tmp_path, softhsm_token)
    _connect(hub, home, api, read_passphrase(softhsm_token.pin_file))
    data, wrong = tmp_path / "members.jsonl", tmp_path / "wrong.pin"
    write_jsonl(generate_party_members(3, seed=2), data)
    wrong.write_text("a PIN that is not the token's")
    wrong.chmod(0o600)
    from_site = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }
    run = subprocess.run([sys.executable, "-m", "services", "publish", "--as", "coc", "--dataset", DATASET,
                          "--passphrase-file", str(wrong), str(data)],
                         env=from_site, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "is not the user PIN of PKCS#11 token" in run.stderr and "Traceback" not in run.stderr
    assert "a PIN that is not" not in run.stderr
    assert not list(topic_messages(hub, hub.governance_state(refresh=True).dataset(DATASET).topic))
    assert AgencySite(home).current == "coc/sign/token-1"
