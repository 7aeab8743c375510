"""TLS on every wire, against the real broker and the real API server: no plaintext client gets in, the broker
is verified against the hub CA, an agency's certificate from the hub CA is its principal (and only that),
and the query API speaks HTTPS only."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from cryptography import x509

from services import processes
from services.hub import Hub
from sharehub import pki
from sharehub.kafka import KafkaAccess, KafkaTls, client_config
from sharehub.keys import write_private
from tests.kafka_helpers import free_port, https_client, hub_env, sharehub, wait_until

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def _metadata(access: str) -> list[int]:
    """The brokers the cluster's metadata lists to this client; KafkaException when it is not let in."""
    admin = AdminClient(client_config(access, **{"log.connection.close": False}))
    return list(admin.list_topics(timeout=6).brokers)


def _write(access: KafkaAccess, topic: str) -> KafkaError | None:
    """Produce one message; how delivery ended (None: written)."""
    outcomes: list[KafkaError | None] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        outcomes.append(err)

    producer = Producer(client_config(access, **{"message.timeout.ms": 10_000}))
    producer.produce(topic, value=b"over mutual TLS", partition=0, on_delivery=delivered)
    producer.flush(15)
    assert len(outcomes) == 1
    return outcomes[0]


def _agency_certificate(
    hub: Hub, directory: Path, name: str, *, ca: pki.HubCA, days: float = 1, since: dt.datetime | None = None
) -> KafkaAccess:
    """As an agency does it: a key and CSR made at its site, the CSR signed by ``ca`` for its principal."""
    principal = hub.principal(name)
    key_pem, csr_pem = pki.make_csr(principal)
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    write_private(key_file, key_pem)
    write_private(cert_file, ca.sign_csr(csr_pem, principal, days=days, valid_from=since))
    tls = KafkaTls(hub.settings.kafka_ca_path, cert_file, key_file)
    return KafkaAccess(hub.settings.mtls_bootstrap, tls=tls)


@pytest.fixture
def broker_ca(kafka_admin: KafkaAccess) -> pki.HubCA:
    """The CA that issued the test broker's certificate (the hub CA of the broker's home)."""
    assert kafka_admin.tls is not None
    return pki.HubCA.load(kafka_admin.tls.ca_file.parent)


def test_a_plaintext_client_gets_nothing_even_with_the_right_password(kafka_admin: KafkaAccess) -> None:
    assert kafka_admin.protocol == "SASL_SSL"
    assert _metadata(kafka_admin)  # the same login over TLS is let in
    with pytest.raises(KafkaException):
        _metadata(str(kafka_admin))  # PLAINTEXT
    without_tls = KafkaAccess(str(kafka_admin), kafka_admin.username, kafka_admin.password)
    assert without_tls.protocol == "SASL_PLAINTEXT"
    with pytest.raises(KafkaException):
        _metadata(without_tls)


def test_a_client_that_does_not_trust_the_hub_ca_is_refused(kafka_admin: KafkaAccess, tmp_path: Path) -> None:
    stranger = pki.HubCA.create(tmp_path / "elsewhere")
    elsewhere = KafkaTls(pki.HubCA.paths(tmp_path / "elsewhere")[0])
    assert stranger.cert.subject == pki.HubCA.load(tmp_path / "elsewhere").cert.subject
    with pytest.raises(KafkaException):
        _metadata(KafkaAccess(str(kafka_admin), kafka_admin.username, kafka_admin.password, elsewhere))


def test_the_brokers_name_is_checked_against_its_certificate(kafka_admin: KafkaAccess) -> None:
    # Its certificate names 127.0.0.1 and localhost only: the same broker reached as another name is not it.
    port = str(kafka_admin).rsplit(":", 1)[1]
    assert _metadata(
        KafkaAccess(f"localhost:{port}", kafka_admin.username, kafka_admin.password, kafka_admin.tls)
    )
    with pytest.raises(KafkaException):
        _metadata(
            KafkaAccess(f"127.0.0.2:{port}", kafka_admin.username, kafka_admin.password, kafka_admin.tls)
        )


def test_an_agency_certificate_is_exactly_its_principal(
    hub: Hub, broker_ca: pki.HubCA, tmp_path: Path
) -> None:
    state = hub.governance
    topic = state.dataset(DATASET).topic
    coc = _agency_certificate(hub, tmp_path, "coc", ca=broker_ca)
    assert coc.protocol == "SSL" and coc.username is None  # no password: the certificate is the login
    assert _write(coc, topic) is None, "the owner's certificate may write its dataset"
    refused = _write(coc, state.quarantine_topic)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    go = _agency_certificate(hub, tmp_path, "go", ca=broker_ca)
    refused = _write(go, topic)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_an_expired_certificate_is_refused(hub: Hub, broker_ca: pki.HubCA, tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = _agency_certificate(hub, tmp_path, "coc", ca=broker_ca, days=1, since=past)
    with pytest.raises(KafkaException):
        _metadata(expired)


def test_the_mutual_tls_listener_wants_a_certificate_of_the_hub_ca(
    hub: Hub, broker_ca: pki.HubCA, tmp_path: Path
) -> None:
    anonymous = KafkaAccess(hub.settings.mtls_bootstrap, tls=KafkaTls(hub.settings.kafka_ca_path))
    with pytest.raises(KafkaException):
        _metadata(anonymous)
    forged = _agency_certificate(hub, tmp_path, "coc", ca=pki.HubCA.create(tmp_path / "forger"))
    with pytest.raises(KafkaException):
        _metadata(forged)
    assert _metadata(_agency_certificate(hub, tmp_path / "real", "coc", ca=broker_ca)) == [1]


def test_the_query_api_speaks_https_only(hub: Hub) -> None:
    port = free_port()
    processes.start(hub.home, "api", ["serve", "--port", str(port)], env=hub_env(hub))
    try:

        def answers() -> bool:
            if not hub.settings.ca_file.exists():
                return False
            try:
                with https_client(hub) as client:
                    return client.get(f"https://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=60, what="the query API over HTTPS")
        with https_client(hub) as client:
            assert client.get(f"https://localhost:{port}/healthz", timeout=5).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # A client that does not trust the hub CA does not get past the handshake.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5, verify=ssl.create_default_context())
        key_file = hub.settings.tls_dir / "api.key"
        assert key_file.stat().st_mode & 0o077 == 0
    finally:
        processes.stop(hub.home, "api")


def test_the_cli_signs_an_agencys_csr_made_at_its_site_and_refuses_a_tampered_one(
    hub: Hub, tmp_path: Path
) -> None:
    site = tmp_path / "coc-site"
    site.mkdir()
    principal = hub.principal("coc")
    without_ca = sharehub(hub, "tls", "sign", "--agency", "coc", "--csr", str(site / "coc.csr"))
    assert without_ca.returncode == 1 and "sharehub tls init" in without_ca.stderr
    init = sharehub(hub, "tls", "init")
    assert init.returncode == 0 and init.stdout.strip() == str(hub.settings.ca_file.resolve()), init.stderr
    made = sharehub(
        hub,
        "tls",
        "csr",
        "--principal",
        principal,
        "--key-out",
        str(site / "coc.key"),
        "--csr-out",
        str(site / "coc.csr"),
    )
    assert made.returncode == 0, made.stderr
    assert (site / "coc.key").stat().st_mode & 0o077 == 0
    signed = sharehub(hub, "tls", "sign", "--agency", "coc", "--csr", str(site / "coc.csr"), "--days", "2")
    assert signed.returncode == 0, signed.stderr
    cert = x509.load_pem_x509_certificate(signed.stdout.encode())
    assert cert.subject.rfc4514_string() == f"CN={principal}"
    assert pki.HubCA.load(hub.settings.tls_dir).issued(cert)
    assert b"PRIVATE KEY" not in (site / "coc.csr").read_bytes()

    text = (site / "coc.csr").read_text().splitlines()
    middle = len(text) // 2
    text[middle] = text[middle][:10] + ("A" if text[middle][10] != "A" else "B") + text[middle][11:]
    (site / "tampered.csr").write_text("\n".join(text) + "\n")
    refused = sharehub(hub, "tls", "sign", "--agency", "coc", "--csr", str(site / "tampered.csr"))
    assert refused.returncode != 0 and refused.stdout == ""
    assert (
        "signature does not verify" in refused.stderr
        or "not a PEM certificate signing request" in refused.stderr
    )
    unknown = sharehub(hub, "tls", "sign", "--agency", "nobody", "--csr", str(site / "coc.csr"))
    assert unknown.returncode == 2 and "no agency 'nobody'" in unknown.stderr
