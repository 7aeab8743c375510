"""The hub's own small certificate authority: every TLS wire of the hub (the broker's listeners, the HTTPS
APIs) presents a certificate it issued, and every client verifies against it.

Files, under ``<home>/tls/`` (each owner-only, mode 600):

==================  ======================================================================================
``ca.pem``          the CA certificate (ECDSA P-256, CA:TRUE pathlen 0, keyCertSign/cRLSign, ~10 years):
                    what every client trusts; handed to agencies
``ca.key``          the CA private key, PKCS#8 encrypted at rest under the passphrase in ``ca.passphrase``
``ca.passphrase``   that passphrase (random, made with the CA)
``api.pem/.key``    the HTTPS APIs' server certificate and key (``sharehub serve``)
==================  ======================================================================================

The CA issues server certificates (serverAuth; SAN IP 127.0.0.1 and DNS localhost plus any names asked),
and signs the certificate signing requests (CSR) of agencies that connect with a certificate (clientAuth,
CN = the principal name). An agency makes its key and CSR at its own site (:func:`make_csr`); the CA only
ever sees the CSR, whose own signature it verifies before signing anything.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sharehub.errors import CertificateRefused, ConfigurationError
from sharehub.keys import write_private

__all__ = [
    "CA_DAYS",
    "CLIENT_DAYS",
    "SERVER_DAYS",
    "HubCA",
    "ServerCertificate",
    "make_csr",
    "server_certificate",
    "tls_dir",
]

CA_DAYS = 3650
SERVER_DAYS = 397
CLIENT_DAYS = 365
#: A server certificate this close to its end (or issued by another CA, or for other names) is issued anew.
RENEW_BEFORE = dt.timedelta(days=30)
#: Certificates take effect a little before they are made: clocks of two machines are never quite equal.
CLOCK_SKEW = dt.timedelta(minutes=5)
LOCAL_NAMES = ("localhost", "127.0.0.1")


def tls_dir(home: Path) -> Path:
    return home / "tls"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pkcs8(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _usage(*, signing: bool = True, agreement: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=agreement,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class ServerCertificate:
    """Where a server's certificate chain and key (PKCS#8, unencrypted, owner-only) are."""

    cert_file: Path
    key_file: Path


class HubCA:
    """The CA certificate and its private key, opened from (or made in) ``<home>/tls``."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self._key = key

    def __repr__(self) -> str:
        return f"HubCA({self.cert.subject.rfc4514_string()!r})"

    # --- files ---------------------------------------------------------------------------------------

    @staticmethod
    def paths(directory: Path) -> tuple[Path, Path, Path]:
        """(certificate, encrypted key, passphrase) files of the CA in ``directory``."""
        return directory / "ca.pem", directory / "ca.key", directory / "ca.passphrase"

    @classmethod
    def create(cls, directory: Path, name: str = "sharehub hub CA", *, days: int = CA_DAYS) -> HubCA:
        """A new CA, written to ``directory`` (refused when one is already there)."""
        cert_file, key_file, pass_file = cls.paths(directory)
        if cert_file.exists() or key_file.exists():
            raise ConfigurationError(f"a CA already exists in {directory}; remove it first to make another")
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        key = _new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(signing=False, cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        passphrase = secrets.token_urlsafe(32).encode()
        write_private(pass_file, passphrase + b"\n")
        write_private(key_file, _pkcs8(key, passphrase))
        write_private(cert_file, _pem(cert))
        return cls(cert, key)

    @classmethod
    def load(cls, directory: Path) -> HubCA:
        cert_file, key_file, pass_file = cls.paths(directory)
        if not cert_file.exists():
            raise ConfigurationError(f"there is no hub CA in {directory}: `sharehub tls init` makes one")
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            passphrase = pass_file.read_bytes().strip()
            key = serialization.load_pem_private_key(key_file.read_bytes(), passphrase)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"the hub CA in {directory} is unusable: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise ConfigurationError(f"the hub CA key in {directory} does not match its certificate")
        return cls(cert, key)

    @classmethod
    def open(cls, directory: Path) -> HubCA:
        """The CA in ``directory``, made first if there is none."""
        if HubCA.paths(directory)[0].exists():
            return cls.load(directory)
        return cls.create(directory)

    @property
    def pem(self) -> bytes:
        return _pem(self.cert)

    # --- issuing -------------------------------------------------------------------------------------

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, start: dt.datetime, end: dt.datetime
    ) -> x509.CertificateBuilder:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(min(end, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
        )

    def issue_server(
        self, common_name: str, names: Iterable[str] = (), *, days: int = SERVER_DAYS
    ) -> tuple[bytes, bytes]:
        """(certificate PEM, unencrypted PKCS#8 key PEM) of a server known by 127.0.0.1, localhost and
        ``names``."""
        key = _new_key()
        now = _now()
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
                key.public_key(),
                now - CLOCK_SKEW,
                now + dt.timedelta(days=days),
            )
            .add_extension(_usage(agreement=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_san([*LOCAL_NAMES, *names]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _pem(cert), _pkcs8(key)

    def sign_csr(
        self,
        csr_pem: bytes,
        principal: str,
        *,
        days: float = CLIENT_DAYS,
        valid_from: dt.datetime | None = None,
    ) -> bytes:
        """A client certificate (clientAuth, subject CN=``principal``) for the key of a CSR, valid ``days``
        from ``valid_from`` (default now). Refused when the CSR's signature does not verify (it was not
        made with the key it carries, or was altered), or when it asks for another name."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CertificateRefused(f"not a PEM certificate signing request: {exc}") from None
        try:
            valid = csr.is_signature_valid
        except (InvalidSignature, ValueError):  # a key that is no key: altered too
            valid = False
        if not valid:
            raise CertificateRefused(
                "the certificate signing request's signature does not verify: it was altered, or not made "
                "with the key it carries; nothing was signed"
            )
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CertificateRefused("the CSR's key is not an ECDSA key (make it with make_csr)")
        asked = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if asked and asked != [principal]:
            raise CertificateRefused(f"the CSR asks for CN={asked[0]!s}, not for principal {principal}")
        start = valid_from or _now() - CLOCK_SKEW
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, principal)]),
                public_key,
                start,
                start + dt.timedelta(days=days),
            )
            .add_extension(_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _pem(cert)

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether this CA signed ``cert``."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def make_csr(common_name: str, passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    """At an agency's site: a new key and a CSR for it. Returns (PKCS#8 key PEM, encrypted under
    ``passphrase`` if given; CSR PEM). Only the CSR goes to the hub."""
    key = _new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return _pkcs8(key, passphrase), csr.public_bytes(serialization.Encoding.PEM)


def server_certificate(ca: HubCA, directory: Path, name: str, names: Iterable[str] = ()) -> ServerCertificate:
    """``<directory>/<name>.pem`` and ``.key``: a server certificate issued by ``ca`` for ``names`` (and the
    local names), issued anew when missing, near its end, from another CA or for other names."""
    wanted = [*LOCAL_NAMES, *names]
    paths = ServerCertificate(directory / f"{name}.pem", directory / f"{name}.key")
    if not _still_good(ca, paths, wanted):
        cert_pem, key_pem = ca.issue_server(f"sharehub {name}", names)
        directory.mkdir(parents=True, exist_ok=True)
        write_private(paths.key_file, key_pem)
        write_private(paths.cert_file, cert_pem)
    return paths


def _still_good(ca: HubCA, paths: ServerCertificate, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
        paths.key_file.stat()
    except (OSError, ValueError):
        return False
    if not ca.issued(cert) or cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san) == set(_san(names))
