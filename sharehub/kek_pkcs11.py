"""The key-encryption key inside a PKCS#11 token (an HSM, or SoftHSM2 for tests and trials).

The key is an AES-256 secret key object stored in the token under a label, ``sensitive`` and not
``extractable``: its value can never be read out, and every wrap and unwrap is CKM_AES_GCM performed by
the token, with the key store's associated data and a random 12-byte nonce kept in front of the blob.
The user PIN comes from an owner-only file (``SHAREHUB_PKCS11_PIN_FILE``), never from the environment or
the command line, and shows in no message.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, Session
from pkcs11.exceptions import (
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    GeneralError,
    MultipleObjectsReturned,
    NoSuchKey,
    PKCS11Error,
)
from pkcs11.mechanisms import GCMParams

from sharehub.errors import ConfigurationError
from sharehub.kek import UnwrapRefused, read_private_file
from sharehub.keys import NONCE_SIZE
from sharehub.pkcs11_token import SOFTHSM_MODULE, attribute, close_session, error_name, libraries, log_in
from sharehub.settings import Settings

__all__ = ["SOFTHSM_MODULE", "Pkcs11Config", "Pkcs11Kek"]
DEFAULT_KEY_LABEL = "sharehub-kek"
_KEY_ID_SIZE = 8
#: What a token answers when the blob or its associated data is not what was wrapped (SoftHSM2 answers a
#: failed GCM tag check with CKR_GENERAL_ERROR).
_REFUSALS = (EncryptedDataInvalid, EncryptedDataLenRange, GeneralError)


class _TokenAesKey(Protocol):
    """A handle to an AES key in the token (python-pkcs11 builds its class from the key's capabilities)."""

    def encrypt(self, data: bytes, *, mechanism: Mechanism, mechanism_param: GCMParams) -> bytes: ...

    def decrypt(self, data: bytes, *, mechanism: Mechanism, mechanism_param: GCMParams) -> bytes: ...

    def __getitem__(self, attribute: Attribute) -> Any: ...


@dataclass(frozen=True)
class Pkcs11Config:
    module: Path
    token: str
    pin_file: Path
    key_label: str = DEFAULT_KEY_LABEL

    @classmethod
    def from_settings(cls, settings: Settings) -> Pkcs11Config:
        if not settings.pkcs11_token:
            raise ConfigurationError(
                "SHAREHUB_KEK=pkcs11 needs SHAREHUB_PKCS11_TOKEN, the label of the token holding the key"
            )
        if settings.pkcs11_pin_file is None:
            raise ConfigurationError(
                "SHAREHUB_KEK=pkcs11 needs SHAREHUB_PKCS11_PIN_FILE, an owner-only file holding the user PIN"
            )
        return cls(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin_file,
                   settings.pkcs11_key_label)  # fmt: skip


class Pkcs11Kek:
    """An AES-256 key in a PKCS#11 token, used through one logged-in session (one call at a time)."""

    def __init__(self, config: Pkcs11Config, session: Session, key: _TokenAesKey, kek_id: str) -> None:
        self._config = config
        self._session: Session | None = session
        self._key = key
        self._kek_id = kek_id
        self._lock = threading.Lock()

    @classmethod
    def open(cls, config: Pkcs11Config, *, create: bool = False) -> Pkcs11Kek:
        """Log in to the token and find the key by label (generate it in the token if ``create``)."""
        pin = read_private_file(config.pin_file, "the PKCS#11 PIN file").decode().strip()
        if not pin:
            raise ConfigurationError(f"the PKCS#11 PIN file {config.pin_file} is empty")
        lib = libraries.acquire(config.module, module_hint="SHAREHUB_PKCS11_MODULE")
        try:
            session = log_in(lib, config.module, config.token, pin, pin_from=f"the PIN in {config.pin_file}",
                             label_hint="SHAREHUB_PKCS11_TOKEN")  # fmt: skip
            try:
                key = _find_key(session, config, create=create)
                kek_id = f"pkcs11:{config.token}/{config.key_label}"
                key_id = attribute(key, Attribute.ID)
                if key_id:
                    kek_id += f"/{bytes(key_id).hex()}"
                return cls(config, session, key, kek_id)
            except BaseException:
                session.close()
                raise
        except BaseException:
            libraries.release(config.module)
            raise

    @property
    def kek_id(self) -> str:
        return self._kek_id

    def wrap(self, material: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        with self._lock:
            self._check_open()
            try:
                sealed = self._key.encrypt(material, mechanism=Mechanism.AES_GCM,
                                           mechanism_param=GCMParams(nonce, aad))  # fmt: skip
            except PKCS11Error as exc:
                raise self._unavailable("wrap", exc) from None
        return nonce + bytes(sealed)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        with self._lock:
            self._check_open()
            try:
                material = self._key.decrypt(blob[NONCE_SIZE:], mechanism=Mechanism.AES_GCM,
                                             mechanism_param=GCMParams(blob[:NONCE_SIZE], aad))  # fmt: skip
            except _REFUSALS:
                raise UnwrapRefused from None
            except PKCS11Error as exc:
                raise self._unavailable("unwrap", exc) from None
        return bytes(material)

    def close(self) -> None:
        with self._lock:
            if self._session is None:
                return
            session, self._session = self._session, None
            close_session(session, self._config.module)

    def _check_open(self) -> None:
        if self._session is None:
            raise ConfigurationError(f"the key-encryption key {self._kek_id} is closed")

    def _unavailable(self, action: str, exc: PKCS11Error) -> ConfigurationError:
        return ConfigurationError(
            f"PKCS#11 token {self._config.token!r} could not {action} with {self._kek_id}: {error_name(exc)}"
        )

    def __repr__(self) -> str:
        return f"Pkcs11Kek({self._kek_id})"


def _find_key(session: Session, config: Pkcs11Config, *, create: bool) -> _TokenAesKey:
    try:
        key = cast(_TokenAesKey, session.get_key(object_class=ObjectClass.SECRET_KEY, label=config.key_label))
    except NoSuchKey:
        if not create:
            raise ConfigurationError(
                f"PKCS#11 token {config.token!r} holds no key labelled {config.key_label!r}: run"
                " 'sharehub gov apply' for a new hub, 'sharehub keys rewrap --to pkcs11' for an existing one"
            ) from None
        return _generate_key(session, config)
    except MultipleObjectsReturned:
        raise ConfigurationError(
            f"PKCS#11 token {config.token!r} holds more than one key labelled {config.key_label!r}"
        ) from None
    if attribute(key, Attribute.KEY_TYPE) != KeyType.AES:
        raise ConfigurationError(f"key {config.key_label!r} in token {config.token!r} is not an AES key")
    if not attribute(key, Attribute.SENSITIVE) or attribute(key, Attribute.EXTRACTABLE) is not False:
        raise ConfigurationError(
            f"key {config.key_label!r} in token {config.token!r} can be read out of the token (sensitive"
            " must be true, extractable false); refusing it as the key-encryption key"
        )
    return key


def _generate_key(session: Session, config: Pkcs11Config) -> _TokenAesKey:
    template = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
    }
    try:
        key = session.generate_key(KeyType.AES, 256, id=os.urandom(_KEY_ID_SIZE), label=config.key_label,
                                   store=True, template=template)  # fmt: skip
    except PKCS11Error as exc:
        raise ConfigurationError(
            f"PKCS#11 token {config.token!r} refused to generate the key-encryption key: {error_name(exc)}"
        ) from None
    return cast(_TokenAesKey, key)
