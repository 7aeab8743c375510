"""The agency SDK publishes from the agency's own site: its key, the hub's key service over HTTP, its own
broker login, governance verified against the pinned operator key. Against the real broker and a real API
process; each refusal is one clear exception and publishes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from connectors.jsonl_source import Line
from connectors.key_service import KeyServiceClient
from connectors.publisher import ERASED
from connectors.sdk import BrokerLogin, HubAddress, connect, make_tls_request, open_publisher
from connectors.site import AgencySite
from services import processes
from services.access_log import read_access_log
from services.broker_access import set_password
from services.cli.demo_commands import load_with_sites
from services.gov_operations import Caller, perform
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub import pki
from sharehub.errors import BrokerError, Forbidden, InputError, KeyServiceUnavailable, UnknownReferenceError
from sharehub.gov import anchors
from sharehub.gov import events as ev
from sharehub.gov.key_request import read_key_request
from sharehub.kafka import client_config
from sharehub.keys import subject_key_id
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import answers, free_port, https_client, hub_env, sharehub, topic_messages
from tests.secret_scan import Needles, files_under
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka

DATASET = "party-members"
PASSPHRASE = b"kept at the site of coc"


def own_sites_hub(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Hub]:
    """A hub in whose custody coc and go are not: they make their keys and broker logins at their sites."""
    settings = Settings(
        home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None
    )
    with Hub(settings) as hub:
        load_with_sites(hub, demo_spec(own_sites=("coc", "go")), ["coc", "go"])  # they sign their own acts
        yield hub


hub = pytest.fixture(own_sites_hub, name="hub")


def _site(
    hub: Hub, tmp_path: Path, api: str, agency: str = "coc", *, password: bool = False, credential: str = ""
) -> Path:
    """A connected site of ``agency``: its broker login a certificate the hub CA signed for the key the site
    made (mutual TLS), or, with ``password``, a SCRAM password the site made and had the hub set; its API
    credential ``credential``, or a new one."""
    home = tmp_path / "sites" / agency
    _, request = AgencySite.init(home, agency, PASSPHRASE, label="site-1")
    perform(hub.governance_desk(), Caller("cpo", local=True), "register-key", request)
    if not password:
        csr = make_tls_request(home, hub.anchors.topic_prefix, PASSPHRASE).read_bytes()
        ca = pki.HubCA.load(hub.settings.kafka_ca_path.parent)
        login, bootstrap = (
            BrokerLogin(certificate=ca.sign_csr(csr, hub.principal(agency))),
            hub.settings.mtls_bootstrap,
        )
    else:
        login, bootstrap = BrokerLogin.new_password(), hub.settings.bootstrap
    connect(
        home,
        HubAddress(api, bootstrap),
        trust=anchors.path(hub.home).read_bytes(),
        ca=hub.ca_bundle(),
        credential=credential or issue_credential(hub, agency),
        login=login,
    )
    return home


def site_only_env(home: Path) -> dict[str, str]:
    """The environment of a command run at the site ``home``: nothing of the hub's settings, the site's home
    alone, its passphrase kept beside its keys (owner-only)."""
    secret = home / "signing.passphrase"
    secret.write_bytes(PASSPHRASE)
    secret.chmod(0o600)
    return {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }


def _tls(hub: Hub) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(hub.settings.ca_file))


def _signers(hub: Hub) -> list[str]:
    codec = hub.codec(DATASET)
    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    return [codec.verify(raw, p).header.signer_key_id for p, _, raw in topic_messages(hub, topic)]


def test_a_site_publishes_with_its_own_key_and_keys_from_the_key_service_each_release_logged(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    members = list(generate_party_members(30, seed=5))
    with open_publisher(home, DATASET, PASSPHRASE) as publisher:
        report = publisher.publish_records(members)
    assert report.published == 30 and not report.rejected
    assert _signers(hub) == ["coc/sign/site-1"] * 30
    # The events open with the hub's keys: the site sealed with the keys the key service gave.
    codec = hub.codec(DATASET)
    topic = hub.governance.dataset(DATASET).topic
    opened = codec.open_many([(p, raw) for p, _, raw in topic_messages(hub, topic)])
    assert sorted(getattr(o, "record_key", None) or "" for o in opened) == sorted(
        m["member_id"] for m in members
    )
    # Every subject key the site received was created durably at the hub, and the releases are on record.
    refs = {codec.pseudonym(m["member_id"]) for m in members}
    assert all(hub.keys.has(subject_key_id(DATASET, r), "subject") for r in refs)
    releases = [
        e for e in read_access_log(hub.kafka, hub.governance.access_log_topic) if e["consumer"] == "coc"
    ]
    assert {e["operation"] for e in releases} == {"release_dataset_keys", "release_subject_keys"}
    released = {k for e in releases if e["operation"] == "release_subject_keys" for k in e["record_refs"]}
    assert released == {subject_key_id(DATASET, r) for r in refs}
    assert not list(home.rglob("*.db")), "the site keeps no key store"


def test_the_key_service_answers_only_a_datasets_owner(hub: Hub, api: str) -> None:
    for agency in ("dongthap-ppc", "go"):
        client = KeyServiceClient(api, issue_credential(hub, agency), verify=_tls(hub))
        with pytest.raises(Forbidden, match=f"'{agency}' does not own 'party-members'"):
            client.current_data_key_id(DATASET)
        with pytest.raises(Forbidden):
            client.ensure_subject_keys(DATASET, [bytes(16)])
        client.close()
    assert not hub.keys.has(subject_key_id(DATASET, bytes(16)), "subject"), "a refused request made no key"
    owner = KeyServiceClient(api, issue_credential(hub, "coc"), verify=_tls(hub))
    with pytest.raises(UnknownReferenceError):
        owner.current_data_key_id("no-such-dataset")
    key_id = owner.current_data_key_id(DATASET)
    assert owner.data_key(key_id).reveal() == hub.keys.data_key(key_id).reveal()
    with https_client(hub) as client:
        bad = client.post(f"{api}/v1/keys/{DATASET}/subjects", json={"refs": ["zz"]},
                          headers={"Authorization": f"Bearer {issue_credential(hub, 'coc')}"})  # fmt: skip
    assert bad.status_code == 422
    owner.close()


def test_an_erased_subject_cannot_be_published_from_the_site(hub: Hub, api: str, tmp_path: Path) -> None:
    """Over several chunks (each validated, its subjects' keys asked for, while the one before is sealed), the
    refusals are those of each line, in the lines' order; the rest is published, each lane one chain."""
    home = _site(hub, tmp_path, api)
    members: list[Any] = list(generate_party_members(1100, seed=9))
    codec = hub.codec(DATASET)
    erased = codec.pseudonym(members[700]["member_id"])
    hub.keys.ensure_subject_keys(DATASET, [erased])
    hub.keys.destroy_subject_key(subject_key_id(DATASET, erased))
    members[2]["gender"] = "OTHER"
    members[599]["member_id"] = 42
    members[1029] = "not a record"
    handed: list[int] = []
    with open_publisher(home, DATASET, PASSPHRASE) as publisher:
        report = publisher.publish_lines(
            (Line(n, r) for n, r in enumerate(members, start=1)), progress=handed.append
        )
    assert [(bad.number, bad.reason.split(":")[0]) for bad in report.rejected] == [
        (3, "gender"), (600, "member_id"), (701, ERASED.split(":")[0]), (1030, "record"),
    ]  # fmt: skip
    assert report.published == 1096 and handed == [512, 512, 76]
    topic = hub.governance.dataset(DATASET).topic
    opened = codec.open_many([(p, raw) for p, _, raw in topic_messages(hub, topic)], heads={})
    assert [type(o).__name__ for o in opened] == ["Opened"] * 1096  # each lane's chain unbroken
    assert not hub.keys.has(subject_key_id(DATASET, codec.pseudonym("42")), "subject")


def test_a_source_that_fails_part_way_still_publishes_every_chunk_read_before_it(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    """A chunk is validated while the one before it waits to be sealed: a source that fails while the next
    chunk is read must not take the waiting chunk down with it."""
    home = _site(hub, tmp_path, api)
    members: list[Any] = list(generate_party_members(600, seed=13))

    def failing_source() -> Iterator[Line]:
        yield from (Line(n, r) for n, r in enumerate(members, start=1))
        raise OSError("the source file went away")

    handed: list[int] = []
    with open_publisher(home, DATASET, PASSPHRASE) as publisher:
        with pytest.raises(OSError, match="went away"):
            publisher.publish_lines(failing_source(), progress=handed.append)
        publisher.flush()
    assert handed == [512]
    topic = hub.governance.dataset(DATASET).topic
    assert len(list(topic_messages(hub, topic))) == 512


def test_refusals_at_the_site_are_clear_and_publish_nothing(hub: Hub, api: str, tmp_path: Path) -> None:
    home = _site(hub, tmp_path, api)
    with pytest.raises(InputError, match="'coc' may not publish 'citizen-feedback'"):
        open_publisher(home, "citizen-feedback", PASSPHRASE)
    with pytest.raises(UnknownReferenceError, match="no-such"):
        open_publisher(home, "no-such", PASSPHRASE)
    with hub.governing() as gov:
        gov.revoke_key("cpo", "coc", "coc/sign/site-1", "the laptop was stolen")
    with pytest.raises(InputError, match=r"\(revoked\)"):
        open_publisher(home, DATASET, PASSPHRASE)
    assert _signers(hub) == []

    wrong_login = _site(hub, tmp_path / "other", api, "go", password=True)
    (wrong_login / "broker.password").write_text(base64.b64encode(b"guess").decode())
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"refused the login of \S+\.go: .*invalid credentials"):
        open_publisher(wrong_login, "citizen-feedback", PASSPHRASE)
    assert time.monotonic() - started < 10, "a refused login is told at once, not after the reader's timeout"


def test_a_key_service_that_does_not_answer_is_one_clear_error(hub: Hub, tmp_path: Path) -> None:
    home = _site(hub, tmp_path, f"https://127.0.0.1:{free_port()}")
    members = list(generate_party_members(1, seed=2))
    started = time.monotonic()
    with (
        pytest.raises(KeyServiceUnavailable, match=r"did not answer.*\(asked again for 2 s\)"),
        open_publisher(home, DATASET, PASSPHRASE, key_service_patience_s=2) as p,
    ):
        p.publish_records(members)
    assert 2 <= time.monotonic() - started < 30, "it asked again for its patience, then gave up"
    assert _signers(hub) == []


def test_a_publisher_waits_for_a_key_service_that_is_away_and_seals_with_its_keys(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    """The hub's API (the key service) stopped between two batches and started again 8 s later on the same
    address: the second batch, of new subjects, waits for it, then is published whole under the hub's keys."""
    home = _site(hub, tmp_path, api)
    first = list(generate_party_members(40, seed=31))
    second = list(generate_party_members(40, seed=31, start_index=40))  # new ids: keys the site lacks
    restarted: list[float] = []

    def come_back() -> None:
        processes.start(hub.home, "api", ["serve", "--port", api.rsplit(":", 1)[1]], env=hub_env(hub))
        restarted.append(time.monotonic())

    with open_publisher(home, DATASET, PASSPHRASE, key_service_patience_s=120) as publisher:
        assert publisher.publish_records(first).published == 40
        stopping = time.monotonic()
        processes.stop(hub.home, "api")  # while the publisher holds its idle keep-alive connection
        assert time.monotonic() - stopping < 10, "a graceful stop waits for no idle client (else: SIGKILL)"
        assert not answers(hub, api + "/healthz"), "the key service is away"
        back = threading.Timer(8.0, come_back)
        back.start()
        try:
            report = publisher.publish_records(second)
            published = time.monotonic()
        finally:
            back.join()
    assert report.published == 40 and not report.rejected
    assert restarted and published > restarted[0], "the batch was sealed before the key service was back"
    # Every event opens with the hub's own keys, and every subject's key was made at the hub.
    codec = hub.codec(DATASET)
    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    opened = codec.open_many([(p, raw) for p, _, raw in topic_messages(hub, topic)])
    assert sorted(getattr(o, "record_key", "") for o in opened) == sorted(
        m["member_id"] for m in first + second
    )
    refs = {codec.pseudonym(m["member_id"]) for m in second}
    assert all(hub.keys.has(subject_key_id(DATASET, r), "subject") for r in refs)


def test_the_command_line_publishes_from_the_site_home_and_not_from_the_hubs(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    from_site = site_only_env(home)
    data = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(3, seed=4), data)
    run = subprocess.run([sys.executable, "-m", "services", "publish", "--as", "coc", "--dataset", DATASET,
                          str(data)], env=from_site, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "published 3 events" in run.stderr
    assert _signers(hub) == ["coc/sign/site-1"] * 3

    with hub.keys.transaction():
        hub.keys._db.execute("DELETE FROM current WHERE name = 'signing:coc'")
    refused = sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(data))
    assert refused.returncode == 2 and "this hub holds no signing key of 'coc'" in refused.stderr


def test_the_command_line_connects_a_site(hub: Hub, api: str, tmp_path: Path) -> None:
    home = tmp_path / "sites" / "coc"
    AgencySite.init(home, "coc", PASSPHRASE, label="site-1")
    secret = home / "signing.passphrase"  # where a site may keep it (the demo's do): csr and publish read it
    secret.write_bytes(PASSPHRASE)
    secret.chmod(0o600)
    files = {name: tmp_path / name for name in ("trust.json", "ca.pem", "credential")}
    files["trust.json"].write_bytes(anchors.path(hub.home).read_bytes())
    files["ca.pem"].write_bytes(hub.ca_bundle())
    files["credential"].write_text(issue_credential(hub, "coc"))
    site_env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services", *args], env=site_env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip

    csr = run("agency", "csr", "--topic-prefix", hub.anchors.topic_prefix)
    assert csr.returncode == 0, csr.stderr
    request = x509.load_pem_x509_csr(Path(csr.stdout.strip()).read_bytes())
    assert request.subject.rfc4514_string() == f"CN={hub.principal('coc')}" and request.is_signature_valid
    assert stat.S_IMODE((home / "client.key").stat().st_mode) == 0o600
    with pytest.raises(TypeError, match="encrypted"):  # the TLS key does not parse without the passphrase
        serialization.load_pem_private_key((home / "client.key").read_bytes(), password=None)

    common = ["--api", api, "--bootstrap", hub.settings.bootstrap, "--trust", str(files["trust.json"]),
              "--ca", str(files["ca.pem"]), "--credential-file", str(files["credential"])]  # fmt: skip
    neither = run("agency", "connect", *common)
    assert neither.returncode == 2 and "a certificate or with a password: one of them" in neither.stderr
    http = run("agency", "connect", *[("http://" + c[8:]) if c == api else c for c in common],
               "--password-login")  # fmt: skip
    assert http.returncode == 2 and "must be reached over HTTPS" in http.stderr
    plain = run("agency", "connect", *common, "--password-login")
    assert plain.returncode == 0, plain.stderr

    request = read_key_request(AgencySite(home).request_path("site-1").read_text())
    perform(hub.governance_desk(), Caller("cpo", local=True), "register-key", request)
    data = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(2, seed=12), data)
    published = run("publish", "--as", "coc", "--dataset", DATASET, str(data))
    assert published.returncode == 0, published.stderr
    assert _signers(hub) == ["coc/sign/site-1"] * 2


def _scram_users(hub: Hub, agencies: list[str]) -> set[str]:
    """The agencies' principals that have a SCRAM credential on the broker."""
    admin = AdminClient(client_config(hub.kafka_admin))
    found = admin.describe_user_scram_credentials([hub.principal(a) for a in agencies])
    users = set()
    for user, future in found.items():
        try:
            future.result()
        except KafkaException:
            continue
        users.add(user)
    return users


def test_a_site_sets_its_own_broker_password_and_the_hub_keeps_none(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    assert not hub.in_custody("coc") and hub.in_custody("op")
    assert _scram_users(hub, ["coc", "go", "op"]) == {hub.principal("op")}, "logins only for the custodial"
    with pytest.raises(InputError, match="holds no broker login of 'coc'"):
        hub.kafka_as("coc")

    home = _site(hub, tmp_path, api, password=True)
    password = (home / "broker.password").read_text().strip()
    assert stat.S_IMODE((home / "broker.password").stat().st_mode) == 0o600
    with open_publisher(home, DATASET, PASSPHRASE) as publisher:  # SCRAM over TLS, as coc's own principal
        assert publisher.publish_records(list(generate_party_members(3, seed=4))).published == 3
    assert _signers(hub) == ["coc/sign/site-1"] * 3
    # The hub passed it to the broker and kept nothing: not in the key store, not in any file of its home.
    assert not hub.keys.has(f"kafka/{hub.principal('coc')}", "broker")
    needles = Needles()
    needles.add_key("coc's broker password", password.encode())
    assert needles.scan(files_under(hub.home)) == []
    [record] = [e for e in read_access_log(hub.kafka, hub.governance.access_log_topic)
                if e["operation"] == "set_broker_password"]  # fmt: skip
    assert record["consumer"] == "coc" and password not in str(record)
    # Provisioning again (any governance change) leaves the site's own login alone.
    hub.governance_desk().provision()
    with open_publisher(home, DATASET, PASSPHRASE) as publisher:
        assert publisher.publish_records(list(generate_party_members(1, seed=6))).published == 1


def test_an_agency_in_the_hubs_custody_cannot_set_a_password_of_its_own(hub: Hub, api: str) -> None:
    before = hub.keys.broker_password(hub.principal("op")).reveal()
    with https_client(hub) as client:
        refused = client.post(f"{api}/v1/site/broker-password", json={"password": "x" * 40},
                              headers={"Authorization": f"Bearer {issue_credential(hub, 'op')}"})  # fmt: skip
        short = client.post(f"{api}/v1/site/broker-password", json={"password": "short"},
                            headers={"Authorization": f"Bearer {issue_credential(hub, 'coc')}"})  # fmt: skip
        anonymous = client.post(f"{api}/v1/site/broker-password", json={"password": "x" * 40})
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict")
    assert "custody" in refused.json()["detail"] and "x" * 40 not in refused.text
    assert short.status_code == 422 and "short" not in short.text
    assert anonymous.status_code == 401
    assert hub.keys.broker_password(hub.principal("op")).reveal() == before
    assert _scram_users(hub, ["coc"]) == set(), "a refused request set nothing"
    op = AdminClient(client_config(hub.kafka_as("op")))  # op's login, kept by the hub, still works
    assert op.list_topics(timeout=10).brokers, "a wrong password fails authentication (KafkaException)"


def test_provisioning_drops_a_password_an_older_hub_made_for_an_agency_with_its_own_site(hub: Hub) -> None:
    principal = hub.principal("coc")
    set_password(hub.kafka_admin, principal, hub.keys.broker_password(principal).reveal())
    assert _scram_users(hub, ["coc"]) == {principal}
    hub.governance_desk().provision()
    assert _scram_users(hub, ["coc"]) == set()
    assert not hub.keys.has(f"kafka/{principal}", "broker")


def test_a_site_signs_its_consent_on_the_command_line_and_the_hub_takes_only_that_act(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    """The remote site's path: ``sharehub agency sign-act`` at coc's site (its key never leaves it) prints
    the body; POSTed with coc's credential, the hub checks the seal and countersigns. The same seal on
    another act, or on the same act for another agreement, is refused and writes nothing."""
    credential = issue_credential(hub, "coc")
    home = _site(hub, tmp_path, api, credential=credential)
    secret = home / "signing.passphrase"
    secret.write_bytes(PASSPHRASE)
    secret.chmod(0o600)
    agreements = ("thainguyen-ppc.party-members.signed", "thainguyen-ppc.party-members.other")
    with hub.governing() as gov:
        for agreement in agreements:
            gov.propose(
                "thainguyen-ppc", agreement, "thainguyen-ppc", DATASET, ["member_id", "status"],
                "An inspection", "Regulation 384, Art. 5",
            )  # fmt: skip
    from_site = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }
    signed = subprocess.run(
        [sys.executable, "-m", "services", "agency", "sign-act", "consent", "--request",
         f'{{"agreement_id": "{agreements[0]}"}}', "--passphrase-file", str(secret)],
        env=from_site, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    body = json.loads(signed.stdout)
    assert body["act_seal"]["key_id"] == "coc/sign/site-1"

    auth = {"Authorization": f"Bearer {credential}"}
    written = len(hub.log.read_all())
    with https_client(hub) as client:
        elsewhere = client.post(
            f"{api}/v1/gov/consent", json={**body, "agreement_id": agreements[1]}, headers=auth
        )
        assert elsewhere.status_code == 403, elsewhere.text
        assert elsewhere.json()["act_seal"] == "act_signature_invalid"
        other_act = {"agreement_id": agreements[0], "reason": "no", "act_seal": body["act_seal"]}
        revoked = client.post(f"{api}/v1/gov/revoke", json=other_act, headers=auth)
        assert revoked.status_code == 403 and revoked.json()["act_seal"] == "act_signature_invalid"
        assert len(hub.log.read_all()) == written, "a refused act changes nothing"
        taken = client.post(f"{api}/v1/gov/consent", json=body, headers=auth)
    assert taken.status_code == 201, taken.text
    state = hub.governance_state(refresh=True)
    assert state.agreement(agreements[0]).stage == "consented"
    assert state.agreement(agreements[1]).stage == "proposed"
    [event] = [e for e in map(ev.parse, hub.log.read_all()[written:])]
    assert event.actor == "coc" and event.act_seal is not None and event.act_seal.key_id == "coc/sign/site-1"
