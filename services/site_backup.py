"""``sharehub agency backup`` and ``agency restore``: an agency site's home, out and back.

A site holds what nobody else can give back: its signing keys (PKCS#8 files encrypted with its passphrase;
a key inside a PKCS#11 token is backed up by the token's own means, ``site.json`` names it), its TLS key
(encrypted the same way) and certificate, and its connectors' journals (a lost journal makes a file offered
again publish again). Its API credential and broker password are in clear at the site: in the archive they
are sealed under a key derived from the site's passphrase (scrypt, :class:`PassphraseKek`), which also seals
the manifest. The passphrase is never in the backup; ``signing.passphrase``, where a demo keeps it beside the
keys, is left out. The archive format is the hub's (:mod:`services.backup_archive`).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from connectors.journal import FOLDER as JOURNALS
from connectors.sdk import (
    BROKER_PASSWORD_FILE,
    CA_FILE,
    CLIENT_CERT_FILE,
    CLIENT_KEY_FILE,
    CREDENTIAL_FILE,
    HUB_FILE,
)
from connectors.site import SITE_FILE, AgencySite
from services.backup import Part, write_backup
from services.backup_archive import Manifest
from services.restore import restore_into
from sharehub.errors import BackupInvalid
from sharehub.gov import anchors
from sharehub.kek import FileKek
from sharehub.keys import SecretBytes

SITE_PARTS = (
    Part(SITE_FILE),
    Part("keys/*.pem"),
    Part("requests/*.json"),
    Part(CLIENT_KEY_FILE),
    Part(CLIENT_CERT_FILE),
    Part(HUB_FILE),
    Part(anchors.FILE_NAME),
    Part(CA_FILE),
    Part(CREDENTIAL_FILE, sealed=True),
    Part(BROKER_PASSWORD_FILE, sealed=True),
    Part(f"{JOURNALS}/*.journal.db", database=True),
)
_SCRYPT_PREFIX = "scrypt:"


class PassphraseKek(FileKek):
    """A key derived from the site's passphrase and a random salt (scrypt, 2^15 rounds); its id names the
    salt, so the passphrase alone opens the backup again."""

    def __init__(self, passphrase: bytes, salt: bytes) -> None:
        super().__init__(SecretBytes(Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase)))
        self._kek_id = f"{_SCRYPT_PREFIX}{salt.hex()}"

    @classmethod
    def new(cls, passphrase: bytes) -> PassphraseKek:
        return cls(passphrase, os.urandom(16))

    @classmethod
    def of(cls, manifest: Manifest, passphrase: bytes) -> PassphraseKek:
        """The key the manifest's backup was sealed with, if ``passphrase`` is the site's."""
        try:
            salt = bytes.fromhex(manifest.kek_id.removeprefix(_SCRYPT_PREFIX))
        except ValueError:
            salt = b""
        if manifest.kind != "site" or not manifest.kek_id.startswith(_SCRYPT_PREFIX) or len(salt) != 16:
            raise BackupInvalid(f"this is the backup of {manifest.home_name}, not of an agency's site")
        return cls(passphrase, salt)


def create_site_backup(home: Path, passphrase: bytes, out: Path) -> Manifest:
    """Write the backup of the site at ``home`` to ``out``, once ``passphrase`` is found to open its key."""
    site = AgencySite(home)
    _opens(site, passphrase)
    prefix = anchors.load(home).topic_prefix if anchors.exists(home) else ""
    kek = PassphraseKek.new(passphrase)
    return write_backup(home, SITE_PARTS, kek, Manifest.about("site", prefix, site.agency, {}), out)


def restore_site(archive: Path, home: Path, passphrase: bytes) -> Manifest:
    """Restore a site's backup into ``home`` (new or empty); the site's key must open with ``passphrase``."""
    return restore_into(
        archive,
        home,
        lambda manifest: PassphraseKek.of(manifest, passphrase),
        lambda staging, _manifest: _opens(AgencySite(staging), passphrase),
    )


def _opens(site: AgencySite, passphrase: bytes) -> None:
    """The site's current key opens with ``passphrase`` (a key file; a token is checked when it signs)."""
    current = site.current_key
    if current is not None and current.token is None:
        site.signing_key(passphrase).close()
