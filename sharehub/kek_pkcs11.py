"""The key-encryption key inside a PKCS#11 token (an HSM, or SoftHSM2 for tests and trials).

The key is an AES-256 secret key object stored in the token under a label, ``sensitive`` and not
``extractable``: its value can never be read out, and every wrap and unwrap is CKM_AES_GCM performed by
the token, with the key store's associated data and a random 12-byte nonce kept in front of the blob.
The user PIN comes from an owner-only file (``SHAREHUB_PKCS11_PIN_FILE``), never from the environment or
the command line, and shows in no message.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, Session
from pkcs11.exceptions import (
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    GeneralError,
    MultipleObjectsReturned,
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)
from pkcs11.mechanisms import GCMParams

from sharehub.errors import ConfigurationError
from sharehub.kek import UnwrapRefused, read_private_file
from sharehub.keys import NONCE_SIZE
from sharehub.settings import Settings

#: The library module of Debian's softhsm2 package.
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
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
        lib = _libraries.acquire(config.module)
        try:
            session = _log_in(lib, config, pin)
            try:
                key = _find_key(session, config, create=create)
                kek_id = f"pkcs11:{config.token}/{config.key_label}"
                key_id = _attribute(key, Attribute.ID)
                if key_id:
                    kek_id += f"/{bytes(key_id).hex()}"
                return cls(config, session, key, kek_id)
            except BaseException:
                session.close()
                raise
        except BaseException:
            _libraries.release(config.module)
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
            try:
                with contextlib.suppress(PKCS11Error):  # the token went away: nothing left to close
                    session.close()
            finally:
                _libraries.release(self._config.module)

    def _check_open(self) -> None:
        if self._session is None:
            raise ConfigurationError(f"the key-encryption key {self._kek_id} is closed")

    def _unavailable(self, action: str, exc: PKCS11Error) -> ConfigurationError:
        return ConfigurationError(
            f"PKCS#11 token {self._config.token!r} could not {action} with {self._kek_id}: {_name(exc)}"
        )

    def __repr__(self) -> str:
        return f"Pkcs11Kek({self._kek_id})"


def _log_in(lib: Any, config: Pkcs11Config, pin: str) -> Session:
    try:
        token = lib.get_token(token_label=config.token)
    except NoSuchToken:
        labels = sorted({t.label for t in lib.get_tokens()})
        raise ConfigurationError(
            f"no PKCS#11 token labelled {config.token!r} in {config.module}"
            f" (tokens there: {', '.join(map(repr, labels)) or 'none'}); check SHAREHUB_PKCS11_TOKEN"
            " (and SOFTHSM2_CONF for SoftHSM2)"
        ) from None
    except PKCS11Error as exc:
        raise ConfigurationError(f"PKCS#11 module {config.module} lists no tokens: {_name(exc)}") from None
    try:
        try:
            session: Session = token.open(user_pin=pin, rw=True)
        except UserAlreadyLoggedIn:  # another KEK of this process logged in to the token: sessions share it
            session = token.open(rw=True)
    except PinIncorrect:
        raise ConfigurationError(
            f"the PIN in {config.pin_file} is not the user PIN of PKCS#11 token {config.token!r}"
        ) from None
    except PinLocked:
        raise ConfigurationError(f"the user PIN of PKCS#11 token {config.token!r} is locked") from None
    except PKCS11Error as exc:
        raise ConfigurationError(f"cannot log in to PKCS#11 token {config.token!r}: {_name(exc)}") from None
    return session


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
    if _attribute(key, Attribute.KEY_TYPE) != KeyType.AES:
        raise ConfigurationError(f"key {config.key_label!r} in token {config.token!r} is not an AES key")
    if not _attribute(key, Attribute.SENSITIVE) or _attribute(key, Attribute.EXTRACTABLE) is not False:
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
            f"PKCS#11 token {config.token!r} refused to generate the key-encryption key: {_name(exc)}"
        ) from None
    return cast(_TokenAesKey, key)


def _attribute(key: _TokenAesKey, attribute: Attribute) -> Any:
    try:
        return key[attribute]
    except PKCS11Error:
        return None


def _name(exc: PKCS11Error) -> str:
    """A PKCS#11 failure in words: the library's message, or its class name (e.g. ``DeviceRemoved``)."""
    return str(exc) or type(exc).__name__


class _Libraries:
    """PKCS#11 modules loaded in this process: one initialised library per module, shared by the KEKs
    that use it, finalised when the last one closes (SoftHSM2 reads ``SOFTHSM2_CONF`` when initialised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[Path, tuple[Any, int]] = {}

    def acquire(self, module: Path) -> Any:
        with self._lock:
            lib, users = self._loaded.get(module, (None, 0))
            if lib is None:
                if not module.is_file():
                    raise ConfigurationError(
                        f"PKCS#11 module {module} does not exist: point SHAREHUB_PKCS11_MODULE at the HSM's"
                        " library, or install SoftHSM2 (scripts/softhsm.sh install)"
                    )
                try:
                    lib = pkcs11.lib(str(module))
                except PKCS11Error as exc:
                    raise ConfigurationError(f"cannot load PKCS#11 module {module}: {_name(exc)}") from None
            self._loaded[module] = (lib, users + 1)
            return lib

    def release(self, module: Path) -> None:
        with self._lock:
            lib, users = self._loaded[module]
            if users > 1:
                self._loaded[module] = (lib, users - 1)
                return
            del self._loaded[module]
            with contextlib.suppress(PKCS11Error):
                lib.finalize()


_libraries = _Libraries()
