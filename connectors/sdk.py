"""The agency SDK: publish a dataset from the agency's own site, with nothing of the hub's but its addresses.

A site (:mod:`connectors.site`) that was connected to a hub (``sharehub agency connect``) holds, besides its
signing keys: ``hub.json`` (the hub's API and broker addresses), ``trust.json`` (the hub's pinned operator
key and topic prefix, public), ``ca.pem`` (the hub CA's certificate, which the broker's and the API's
certificates chain to: every wire is TLS, verified), its API credential and its broker login: a client
certificate the hub CA signed for a key the site made (``client.key``, PKCS#8 encrypted with the site's
passphrase, and ``client.pem``; mutual TLS) or a SCRAM password; all owner-only. :func:`open_publisher`
then reads governance from the hub's log with the agency's own login and verifies every event against the
pinned operator key (so a site trusts no governance the operator did not sign), takes the dataset's keys
from the hub's key service (:mod:`connectors.key_service`, memory only), signs with the site's key, and
produces with the agency's own broker principal::

    from connectors.sdk import open_publisher

    with open_publisher(Path("/srv/sharehub-site"), "party-members", passphrase) as publisher:
        report = publisher.publish_records(records)

For a source larger than one process can seal, :func:`open_lane_split_publisher` seals from several
processes, each an :func:`open_publisher` of its share of the dataset's lanes (:mod:`connectors.lane_split`).

A key service that does not answer is asked again for up to ``key_service_patience_s`` (5 minutes by
default, :mod:`connectors.key_service`): a publish waits through a restart of the hub's API instead of
failing. Each refusal is one exception: ``UnknownReferenceError`` (no such dataset), ``InputError`` (not
the owner, a key governance does not know, an invalid record in the report), ``KeyServiceUnavailable``
(past that patience),
``BrokerError`` (broker unreachable or authorisation refused), ``NotAuthenticated`` (a credential the hub
does not know).
"""

from __future__ import annotations

import functools
import json
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from connectors.dataset_publishing import DatasetPublishing
from connectors.key_service import PATIENCE_S, KeyServiceClient
from connectors.lane_split import LaneSplitPublisher
from connectors.publisher import Publisher
from connectors.site import AgencySite, check_passphrase
from sharehub.errors import ConfigurationError, InputError, WrongSecret
from sharehub.gov import anchors, fold_log
from sharehub.gov.log import KafkaLog
from sharehub.gov.state import GovState
from sharehub.kafka import KafkaAccess, KafkaTls
from sharehub.keys import SecretBytes, write_private

HUB_FILE = "hub.json"
CA_FILE = "ca.pem"
CREDENTIAL_FILE = "credential"
BROKER_PASSWORD_FILE = "broker.password"
CLIENT_KEY_FILE = "client.key"
CLIENT_CSR_FILE = "client.csr"
CLIENT_CERT_FILE = "client.pem"

PublisherT = TypeVar("PublisherT", bound=DatasetPublishing)


@dataclass(frozen=True)
class HubAddress:
    """Where the site reaches the hub: its HTTP API (key service) and its Kafka bootstrap."""

    api_url: str
    bootstrap: str


@dataclass(frozen=True)
class BrokerLogin:
    """How the site's agency logs in to the broker: a certificate the hub CA signed for the key the site made
    (``sharehub agency csr``; mutual TLS, preferred: no secret ever leaves the site), or a SCRAM password."""

    certificate: bytes | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate is None) == (self.password is None):
            raise InputError("log in to the broker with a certificate or with a password: one of them")

    @classmethod
    def new_password(cls) -> BrokerLogin:
        """A SCRAM login with a password made here, at the site (32 random bytes): :func:`connect` has the
        hub set it on the broker, and only the site keeps it."""
        return cls(password=secrets.token_urlsafe(32))


def connect(
    home: Path, address: HubAddress, *, trust: bytes, ca: bytes, credential: str, login: BrokerLogin
) -> None:
    """Record at the site how it reaches the hub, whom to trust and as whom it logs in (owner-only files)."""
    AgencySite(home)  # a site, or a clear error
    if not address.api_url.startswith("https://"):
        raise InputError(f"the hub's API must be reached over HTTPS, not {address.api_url!r}")
    if login.certificate is not None and not (home / CLIENT_KEY_FILE).is_file():
        raise InputError(
            f"the site has no TLS key ({home / CLIENT_KEY_FILE}): make it with 'sharehub agency csr'"
        )
    if login.password is not None:  # set at the hub first: a refusal leaves the site as it was
        _set_broker_password(address, ca, credential, SecretBytes(login.password.encode()))
    write_private(home / HUB_FILE, json.dumps(address.__dict__, indent=2).encode() + b"\n")
    write_private(anchors.path(home), trust)
    write_private(home / CA_FILE, ca)
    write_private(home / CREDENTIAL_FILE, credential.encode() + b"\n")
    if login.certificate is not None:
        write_private(home / CLIENT_CERT_FILE, login.certificate)
        (home / BROKER_PASSWORD_FILE).unlink(missing_ok=True)
    else:
        assert login.password is not None
        write_private(home / BROKER_PASSWORD_FILE, login.password.encode() + b"\n")
        (home / CLIENT_CERT_FILE).unlink(missing_ok=True)


def _set_broker_password(address: HubAddress, ca: bytes, credential: str, password: SecretBytes) -> None:
    try:
        tls = ssl.create_default_context(cadata=ca.decode("ascii"))
    except (ValueError, ssl.SSLError) as exc:
        raise InputError(f"the hub CA's certificate is unusable: {exc}") from None
    hub = KeyServiceClient(address.api_url, credential, verify=tls, patience_s=0)  # connecting: say it now
    try:
        hub.set_broker_password(password)
    finally:
        hub.close()


def make_tls_request(home: Path, topic_prefix: str, passphrase: bytes) -> Path:
    """At the site: a TLS key for the broker (kept here, owner-only, PKCS#8 encrypted with the site's
    passphrase) and its certificate signing request for the hub CA, naming the agency's principal; returns
    the request's path. The passphrase must be the one that opens the site's signing key."""
    from sharehub import pki

    site = AgencySite(home)
    site.signing_key(passphrase).close()  # the site's passphrase, not a mistyped one: a clear error now
    _text_password(passphrase)
    key_pem, csr_pem = pki.make_csr(f"{topic_prefix}.{site.agency}", passphrase)
    write_private(home / CLIENT_KEY_FILE, key_pem)
    write_private(home / CLIENT_CSR_FILE, csr_pem)
    return home / CLIENT_CSR_FILE


def site_tls(home: Path, passphrase: bytes | None) -> KafkaTls:
    """The site's client certificate and its encrypted key, for mutual TLS; a clear error when the key is
    stored unencrypted (re-issue it) or does not open with ``passphrase``."""
    from cryptography.hazmat.primitives import serialization

    key_file = home / CLIENT_KEY_FILE
    reissue = f"make a new one with 'sharehub agency csr --home {home}' and have the hub sign its request"
    try:
        pem = key_file.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"the site's TLS key is unreadable ({exc}): {reissue}") from None
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in pem:
        raise ConfigurationError(
            f"the site's TLS key {key_file} is stored unencrypted; refusing it: {reissue}"
        )
    if passphrase is None:
        raise ConfigurationError(f"the site's TLS key {key_file} needs the site's passphrase")
    try:
        serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError):
        raise WrongSecret(
            f"the site's TLS key {key_file} does not open with this passphrase (or is damaged)"
        ) from None
    return KafkaTls(home / CA_FILE, home / CLIENT_CERT_FILE, key_file, _text_password(passphrase))


def _text_password(passphrase: bytes) -> SecretBytes:
    """librdkafka takes a key's password as text."""
    try:
        passphrase.decode()
    except UnicodeDecodeError:
        raise InputError("the site's passphrase must be text (UTF-8) to encrypt its TLS key") from None
    check_passphrase(passphrase)
    return SecretBytes(passphrase)


def is_connected(home: Path) -> bool:
    return (home / HUB_FILE).is_file()


class SiteSession:
    """An agency site's view of the hub: its address, the pinned trust, the agency's logins. ``passphrase``
    opens the site's TLS key (a site that logs in with a certificate needs it)."""

    def __init__(self, home: Path, passphrase: bytes | None = None) -> None:
        self.site = AgencySite(home)
        self.home = home
        try:
            raw = json.loads((home / HUB_FILE).read_text(encoding="utf-8"))
            self.address = HubAddress(str(raw["api_url"]), str(raw["bootstrap"]))
            self._credential = (home / CREDENTIAL_FILE).read_text(encoding="utf-8").strip()
            certified = (home / CLIENT_CERT_FILE).is_file()
            password = (
                None if certified else (home / BROKER_PASSWORD_FILE).read_text(encoding="utf-8").strip()
            )
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"the site at {home} is not connected to a hub ({exc.filename} is missing): run "
                "'sharehub agency connect'"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"the site's hub settings at {home} are unreadable: {exc}") from None
        self.anchors = anchors.load(home)
        self.ca_file = home / CA_FILE
        principal = f"{self.anchors.topic_prefix}.{self.site.agency}"
        if password is None:  # mutual TLS: the certificate names the principal
            tls = site_tls(home, passphrase)
            self.kafka = KafkaAccess(self.address.bootstrap, principal, None, tls)
        else:
            login = SecretBytes(password.encode())
            self.kafka = KafkaAccess(self.address.bootstrap, principal, login, KafkaTls(self.ca_file))

    def governance(self) -> GovState:
        """Governance as the hub's log has it now, every event verified against the pinned trust."""
        log = KafkaLog(self.kafka, self.anchors.topic_prefix)
        try:
            return fold_log(log.entries_all(), self.anchors.trust, self.anchors.topic_prefix)
        finally:
            log.close()

    def key_service(self, patience_s: float = PATIENCE_S) -> KeyServiceClient:
        """The hub's key service, asked again for up to ``patience_s`` while it does not answer."""
        try:
            tls = ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"the hub CA's certificate {self.ca_file} is unusable: {exc}") from None
        return KeyServiceClient(self.address.api_url, self._credential, verify=tls, patience_s=patience_s)


def open_publisher(
    home: Path,
    dataset: str,
    passphrase: bytes,
    *,
    key_service_patience_s: float = PATIENCE_S,
    lanes: frozenset[int] | None = None,
) -> Publisher:
    """A publisher of ``dataset`` as the site's agency, entirely from the site (close it, or use it as a
    context manager: it flushes, checkpoints, and forgets the keys it was given). While the hub's key
    service does not answer, each of its calls waits for up to ``key_service_patience_s``. With ``lanes``,
    it publishes into those lanes only (one of several processes: :func:`open_lane_split_publisher`)."""
    signer = AgencySite(home).signing_key(passphrase)  # a token's: one session for the publisher's life
    try:
        session = SiteSession(home, passphrase)
        publisher = _with_key_service(
            session,
            key_service_patience_s,
            lambda keys: Publisher(
                bootstrap=session.kafka,
                governance=session.governance(),
                keys=keys,
                signer=signer,
                agency=session.site.agency,
                dataset=dataset,
                lanes=lanes,
            ),
        )
    except BaseException:
        signer.close()
        raise
    publisher.on_close(signer.close)
    return publisher


def open_lane_split_publisher(
    home: Path,
    dataset: str,
    passphrase: bytes,
    processes: int,
    *,
    key_service_patience_s: float = PATIENCE_S,
) -> LaneSplitPublisher:
    """A publisher of ``dataset`` as the site's agency that seals from ``processes`` processes, each an
    :func:`open_publisher` of its share of the dataset's lanes (:mod:`connectors.lane_split`): for a source
    larger than one process can seal. This process validates and routes; it holds the key service's routing
    key, never a signing key. Close it, or use it as a context manager."""
    session = SiteSession(home, passphrase)
    opener = functools.partial(
        open_publisher, home, dataset, passphrase, key_service_patience_s=key_service_patience_s
    )
    return _with_key_service(
        session,
        key_service_patience_s,
        lambda keys: LaneSplitPublisher(
            bootstrap=session.kafka,
            governance=session.governance(),
            keys=keys,
            agency=session.site.agency,
            dataset=dataset,
            processes=processes,
            opener=opener,
        ),
    )


def _with_key_service(
    session: SiteSession, patience_s: float, make: Callable[[KeyServiceClient], PublisherT]
) -> PublisherT:
    """``make(keys)`` with a client of the hub's key service that closes with the publisher made, or at
    once if making it fails."""
    keys = session.key_service(patience_s)
    try:
        publisher = make(keys)
    except BaseException:
        keys.close()
        raise
    publisher.on_close(keys.close)
    return publisher
