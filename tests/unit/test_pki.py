"""The hub CA (sharehub.pki): what it makes, what it signs, what it refuses."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sharehub import pki
from sharehub.errors import CertificateRefused, ConfigurationError


@pytest.fixture
def ca(tmp_path: Path) -> pki.HubCA:
    return pki.HubCA.create(tmp_path / "tls")


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_the_ca_is_a_p256_ca_of_about_ten_years_with_its_key_encrypted_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    ca = pki.HubCA.create(directory)
    cert = ca.cert
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3640) < lifetime < dt.timedelta(days=3660)

    cert_file, key_file, pass_file = pki.HubCA.paths(directory)
    for path in (cert_file, key_file, pass_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    key_pem = key_file.read_bytes()
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):  # no passphrase, no key
        serialization.load_pem_private_key(key_pem, None)
    assert pass_file.read_bytes().strip() not in key_pem

    again = pki.HubCA.load(directory)
    assert again.cert == cert
    assert pki.HubCA.open(directory).cert == cert  # opens, does not make another
    with pytest.raises(ConfigurationError, match="already exists"):
        pki.HubCA.create(directory)


def test_a_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    pki.HubCA.create(directory)
    pki.HubCA.paths(directory)[2].write_text("not the passphrase\n")
    with pytest.raises(ConfigurationError, match="unusable"):
        pki.HubCA.load(directory)


def test_a_server_certificate_names_the_local_host_and_the_names_asked(ca: pki.HubCA) -> None:
    cert_pem, key_pem = ca.issue_server("sharehub broker", ["kafka", "10.1.2.3"])
    cert = _cert(cert_pem)
    assert ca.issued(cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "kafka"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.1.2.3"),
    }
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM keystore wants it
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key() == cert.public_key()


def test_server_certificate_files_are_kept_until_they_near_their_end_or_change(
    ca: pki.HubCA, tmp_path: Path
) -> None:
    directory = tmp_path / "tls"
    first = pki.server_certificate(ca, directory, "api")
    issued = first.cert_file.read_bytes()
    assert first.key_file.stat().st_mode & 0o777 == 0o600
    assert pki.server_certificate(ca, directory, "api").cert_file.read_bytes() == issued
    # Other names, or another CA: issued anew.
    renamed = pki.server_certificate(ca, directory, "api", ["hub.example"]).cert_file.read_bytes()
    assert renamed != issued
    other = pki.HubCA.create(tmp_path / "other")
    reissued = pki.server_certificate(other, directory, "api", ["hub.example"])
    assert other.issued(_cert(reissued.cert_file.read_bytes()))
    assert not ca.issued(_cert(reissued.cert_file.read_bytes()))


def test_the_ca_signs_a_csr_for_its_principal_without_ever_seeing_the_key(ca: pki.HubCA) -> None:
    key_pem, csr_pem = pki.make_csr("hub1.coc", passphrase=b"agency secret")
    assert b"PRIVATE KEY" not in csr_pem
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    cert = _cert(ca.sign_csr(csr_pem, "hub1.coc", days=30))
    assert ca.issued(cert)
    assert cert.subject.rfc4514_string() == "CN=hub1.coc"
    assert cert.issuer == ca.cert.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, minutes=1)
    key = serialization.load_pem_private_key(key_pem, b"agency secret")
    assert key.public_key() == cert.public_key()
    plain_key, _ = pki.make_csr("hub1.coc")
    assert plain_key.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_certificate_can_be_issued_for_a_past_window(ca: pki.HubCA) -> None:
    _, csr = pki.make_csr("hub1.coc")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    cert = _cert(ca.sign_csr(csr, "hub1.coc", days=1, valid_from=past))
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)


def test_a_csr_whose_signature_does_not_verify_is_refused(ca: pki.HubCA) -> None:
    _, csr_pem = pki.make_csr("hub1.coc")
    csr = x509.load_pem_x509_csr(csr_pem)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # a bit of the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateRefused, match="signature does not verify"):
        ca.sign_csr(tampered, "hub1.coc")

    # A CSR carrying one key but signed by another: the request was not made by the key's holder.
    _, other_pem = pki.make_csr("hub1.coc")
    other = x509.load_pem_x509_csr(other_pem)
    swapped = _swap_public_key(csr, other)
    with pytest.raises(CertificateRefused, match="signature does not verify"):
        ca.sign_csr(swapped, "hub1.coc")


def _swap_public_key(a: x509.CertificateSigningRequest, b: x509.CertificateSigningRequest) -> bytes:
    """``a``'s signature over a request that carries ``b``'s public key (same-length P-256 key DER)."""
    der_a = a.public_bytes(serialization.Encoding.DER)
    key_a = a.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_b = b.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert len(key_a) == len(key_b) and key_a in der_a
    return x509.load_der_x509_csr(der_a.replace(key_a, key_b)).public_bytes(serialization.Encoding.PEM)


def test_a_csr_for_another_name_or_not_a_csr_is_refused(ca: pki.HubCA) -> None:
    _, csr = pki.make_csr("hub1.go")
    with pytest.raises(CertificateRefused, match="CN=hub1.go, not for principal hub1.coc"):
        ca.sign_csr(csr, "hub1.coc")
    with pytest.raises(CertificateRefused, match="not a PEM certificate signing request"):
        ca.sign_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "x")


def test_a_certificate_of_another_ca_is_not_ours(ca: pki.HubCA, tmp_path: Path) -> None:
    other = pki.HubCA.create(tmp_path / "other")
    cert = _cert(other.issue_server("x")[0])
    assert not ca.issued(cert) and other.issued(cert)
    subject = ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert subject == "sharehub hub CA"
