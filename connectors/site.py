"""An agency's own site: the home where its signing keys live, and nothing of anyone else's.

``sharehub agency init AGENCY --home DIR`` makes the agency's first Ed25519 key there and writes its
registration request (:mod:`sharehub.gov.key_request`); ``sharehub agency new-key`` makes the next one for a
rotation. Each private key is either a PKCS#8 file encrypted with the site's passphrase (PBES2, the
``cryptography`` library's best available encryption), readable by its owner only, or a key pair made inside
a PKCS#11 token (:mod:`sharehub.token_signer`: it never leaves the token, which signs), and then the site's
passphrase is the token's user PIN. The passphrase itself is never stored by sharehub: it comes from a file
the agency names (``SHAREHUB_SIGNING_PASSPHRASE_FILE``, ideally on other media than the key) or from a
prompt. It also encrypts the site's TLS key (:mod:`connectors.sdk`). The hub receives the request, never
the key.

Layout::

    DIR/site.json              the agency, its keys (id, label, the token holding it if any) and the one it
                               signs with
    DIR/keys/<label>.pem       an encrypted private key (not for a key in a token)
    DIR/requests/<label>.json  its registration request, for governance
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sharehub.errors import ConfigurationError, InputError, WrongSecret
from sharehub.gov.key_request import KeyRequest, make_key_request
from sharehub.keys import Signer, SigningKey, write_private
from sharehub.token_signer import Pkcs11Token, TokenSigner

SITE_FILE = "site.json"
#: Where a site may keep its passphrase beside its keys (the demo's sites do): then the key is protected
#: only as well as that file is.
PASSPHRASE_BESIDE = "signing.passphrase"
#: Shortest passphrase accepted for a site's keys.
MIN_PASSPHRASE = 12
#: A key's label, as governance takes it in a key id (``<agency>/sign/<label>``); also its file name here.
LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class SiteKey:
    key_id: str
    label: str
    #: The PKCS#11 token holding the key pair (labelled ``label``), or None: a file under ``keys/``.
    token: Pkcs11Token | None = None


class AgencySite:
    """The site at ``home``, as ``site.json`` describes it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        path = home / SITE_FILE
        try:
            described = json.loads(path.read_text(encoding="utf-8"))
            self.agency: str = described["agency"]
            self.keys = [_site_key(k) for k in described["keys"]]
            self.current: str = described["current"]
        except FileNotFoundError:
            raise ConfigurationError(
                f"{home} is not an agency site (no {SITE_FILE}); make one with "
                f"'sharehub agency init AGENCY --home {home}'"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{path} is unreadable or damaged: {exc}") from None

    @staticmethod
    def is_site(home: Path) -> bool:
        return (home / SITE_FILE).is_file()

    @classmethod
    def init(
        cls,
        home: Path,
        agency: str,
        passphrase: bytes,
        *,
        label: str = "1",
        valid_from: dt.datetime | None = None,
        token: Pkcs11Token | None = None,
    ) -> tuple[AgencySite, KeyRequest]:
        """A new site for ``agency`` with its first key (made in ``token`` if given, whose user PIN is then
        ``passphrase``); refused where a site already is."""
        if cls.is_site(home):
            raise InputError(f"{home} already holds the site of {AgencySite(home).agency!r}; nothing changed")
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        _write_description(home, agency, [], "")
        site = cls(home)
        try:
            request = site.new_key(
                passphrase, label=label, valid_from=valid_from, rotation=False, token=token
            )
        except BaseException:
            (home / SITE_FILE).unlink()  # no site without a key: init may be run again
            raise
        return site, request

    def new_key(
        self,
        passphrase: bytes,
        *,
        label: str,
        valid_from: dt.datetime | None = None,
        rotation: bool = True,
        token: Pkcs11Token | None = None,
    ) -> KeyRequest:
        """Make a key pair here (in ``token`` if given, whose user PIN is then ``passphrase``) and its
        registration request; the site signs with it from now on (register the request first: the publisher
        refuses a key governance does not know). ``rotation``: the request replaces the current key."""
        check_passphrase(passphrase)
        if not LABEL.fullmatch(label):
            raise InputError(
                f"key label {label!r}: 1-64 characters a-z 0-9 . _ - starting with a letter or digit"
            )
        key_id = f"{self.agency}/sign/{label}"
        if any(k.label == label for k in self.keys):
            raise InputError(f"this site already has a key labelled {label!r}; choose another label")
        replaces = self.current if rotation and self.current else None
        moment = valid_from or dt.datetime.now(dt.UTC)
        if token is None:
            private = SigningKey(key_id, Ed25519PrivateKey.generate())
            request = make_key_request(private, agency=self.agency, valid_from=moment, replaces=replaces)
            encryption = serialization.BestAvailableEncryption(passphrase)
            pem = private.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        else:
            with TokenSigner.generate(token.key(label), passphrase, key_id) as in_token:
                request = make_key_request(in_token, agency=self.agency, valid_from=moment, replaces=replaces)
        for folder in ("keys", "requests"):
            (self.home / folder).mkdir(mode=0o700, exist_ok=True)
        if token is None:
            write_private(self._key_path(label), pem)
        write_private(self.request_path(label), request.model_dump_json(indent=2).encode() + b"\n")
        self.keys.append(SiteKey(key_id, label, token))
        self.current = key_id
        _write_description(self.home, self.agency, self.keys, self.current)
        return request

    @property
    def current_key(self) -> SiteKey | None:
        return next((k for k in self.keys if k.key_id == self.current), None)

    def request_path(self, label: str) -> Path:
        return self.home / "requests" / f"{label}.json"

    def signing_key(self, passphrase: bytes) -> Signer:
        """The key the site signs with: decrypted with ``passphrase``, or in its token logged in to with it
        (then one session, until the signer is closed)."""
        current = self.current_key
        if current is None:
            raise ConfigurationError(
                f"the site of {self.agency!r} has no signing key; run 'sharehub agency new-key'"
            )
        if current.token is not None:
            return TokenSigner.open(current.token.key(current.label), passphrase, current.key_id)
        path = self._key_path(current.label)
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
        except OSError as exc:
            raise ConfigurationError(f"the signing key {path} is unreadable: {exc}") from None
        except (ValueError, TypeError):
            raise WrongSecret(
                f"the signing key {path} does not open with this passphrase (or is damaged)"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} does not hold an Ed25519 key")
        return SigningKey(current.key_id, private)

    def _key_path(self, label: str) -> Path:
        return self.home / "keys" / f"{label}.pem"


def read_passphrase(path: Path) -> bytes:
    """A passphrase from an owner-only file (its last line break dropped)."""
    try:
        mode = path.stat().st_mode & 0o077
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"the passphrase file is unreadable: {exc}") from None
    if mode:
        raise ConfigurationError(f"{path} is readable or writable by others; refusing it: chmod 600 {path}")
    return data.rstrip(b"\r\n")


def check_passphrase(passphrase: bytes) -> None:
    """Refuse a passphrase too short to protect a key file with."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InputError(f"the passphrase must be at least {MIN_PASSPHRASE} bytes long")


def _site_key(described: dict[str, Any]) -> SiteKey:
    token = described.get("pkcs11")
    held_by = None if token is None else Pkcs11Token(Path(token["module"]), str(token["token"]))
    return SiteKey(str(described["key_id"]), str(described["label"]), held_by)


def _key_description(key: SiteKey) -> dict[str, Any]:
    described: dict[str, Any] = {"key_id": key.key_id, "label": key.label}
    if key.token is not None:  # where the key is, never how to log in
        described["pkcs11"] = {"module": str(key.token.module), "token": key.token.label}
    return described


def _write_description(home: Path, agency: str, keys: list[SiteKey], current: str) -> None:
    described = {"agency": agency, "keys": [_key_description(k) for k in keys], "current": current}
    write_private(home / SITE_FILE, json.dumps(described, indent=2).encode() + b"\n")
