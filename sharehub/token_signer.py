"""An agency's Ed25519 signing key inside a PKCS#11 token: made there, used there, never read out.

``TokenSigner.generate`` makes the key pair in the token (token objects; the private key ``sensitive``, not
``extractable``, labelled with the site's key label and identified by the key id), ``TokenSigner.open``
finds it again. Either logs in once and keeps that one session until ``close``: every signature is one
CKM_EDDSA call in it (the codec signs once per batch of events). The public half is read from the token's
public key object (``CKA_EC_POINT``) as the raw 32 bytes governance registers, so a signature made here
verifies with any Ed25519 implementation. The PIN shows in no message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, Session
from pkcs11.exceptions import MultipleObjectsReturned, NoSuchKey, PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from sharehub.errors import ConfigurationError, InputError, WrongSecret
from sharehub.pkcs11_token import attribute, close_session, error_name, libraries, log_in

#: RFC 8410's object identifier of Ed25519, as CKA_EC_PARAMS names the curve.
ED25519_OID = "1.3.101.112"
_RAW = 32
#: DER of an OCTET STRING of 32 bytes, as PKCS#11 v3 encodes an Edwards public key's CKA_EC_POINT.
_OCTET_STRING_32 = b"\x04\x20"


@dataclass(frozen=True)
class Pkcs11Token:
    """A token, by its PKCS#11 module and its label (what a site records; never the PIN)."""

    module: Path
    label: str

    def key(self, label: str) -> TokenKeyRef:
        return TokenKeyRef(self.module, self.label, label)


@dataclass(frozen=True)
class TokenKeyRef:
    """Where a site's key lives: the PKCS#11 module, the token's label, the key objects' label."""

    module: Path
    token: str
    label: str


class TokenSigner:
    """Signs as an agency with its key in a PKCS#11 token (a :class:`sharehub.keys.Signer`), through one
    logged-in session; one signature at a time."""

    def __init__(self, key_id: str, ref: TokenKeyRef, session: Session, private: Any, public: bytes) -> None:
        self._key_id = key_id
        self._ref = ref
        self._session: Session | None = session
        self._private = private
        self._public = Ed25519PublicKey.from_public_bytes(public)
        self._lock = threading.Lock()

    @classmethod
    def generate(cls, ref: TokenKeyRef, pin: bytes, key_id: str) -> TokenSigner:
        """Make the key pair in the token; refused if the token already holds a key with this label."""
        return cls._in_session(ref, pin, key_id, _generate)

    @classmethod
    def open(cls, ref: TokenKeyRef, pin: bytes, key_id: str) -> TokenSigner:
        """Log in and find the key pair ``key_id`` made under ``ref.label``."""
        return cls._in_session(ref, pin, key_id, _find)

    @classmethod
    def _in_session(
        cls,
        ref: TokenKeyRef,
        pin: bytes,
        key_id: str,
        keys_of: Callable[[Session, TokenKeyRef, str], tuple[Any, bytes]],
    ) -> TokenSigner:
        try:
            text_pin = pin.decode()
        except UnicodeDecodeError:
            raise InputError("a PKCS#11 PIN must be text (UTF-8)") from None
        lib = libraries.acquire(ref.module, module_hint="--pkcs11-module")
        try:
            session = log_in(lib, ref.module, ref.token, text_pin, pin_from="the site's passphrase",
                             label_hint="the token label the site names", wrong_pin=WrongSecret)  # fmt: skip
            try:
                private, public = keys_of(session, ref, key_id)
                return cls(key_id, ref, session, private, public)
            except BaseException:
                session.close()
                raise
        except BaseException:
            libraries.release(ref.module)
            raise

    @property
    def key_id(self) -> str:
        return self._key_id

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            if self._session is None:
                raise ConfigurationError(f"the token key {self._key_id} is closed")
            try:
                return bytes(self._private.sign(data, mechanism=Mechanism.EDDSA))
            except PKCS11Error as exc:
                raise ConfigurationError(
                    f"PKCS#11 token {self._ref.token!r} could not sign with {self._key_id}: {error_name(exc)}"
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._session is None:
                return
            session, self._session = self._session, None
            close_session(session, self._ref.module)

    def __enter__(self) -> TokenSigner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenSigner(key_id={self._key_id!r}, token={self._ref.token!r})"


def _generate(session: Session, ref: TokenKeyRef, key_id: str) -> tuple[Any, bytes]:
    taken = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: ref.label}))
    if taken:
        raise InputError(
            f"PKCS#11 token {ref.token!r} already holds a private key labelled {ref.label!r}; choose another"
            " label"
        )
    private_template = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
    }
    public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True}
    try:
        curve = {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)}
        parameters = session.create_domain_parameters(KeyType.EC_EDWARDS, curve, local=True)
        public, private = parameters.generate_keypair(store=True, label=ref.label, id=key_id.encode(),
                                                      private_template=private_template,
                                                      public_template=public_template)  # fmt: skip
    except PKCS11Error as exc:
        raise ConfigurationError(
            f"PKCS#11 token {ref.token!r} refused to generate an Ed25519 key pair: {error_name(exc)}"
        ) from None
    return private, _raw_public(public, ref)


def _find(session: Session, ref: TokenKeyRef, key_id: str) -> tuple[Any, bytes]:
    found = []
    for kind in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        try:
            found.append(session.get_key(object_class=kind, label=ref.label, id=key_id.encode()))
        except NoSuchKey:
            raise ConfigurationError(
                f"PKCS#11 token {ref.token!r} holds no {kind.name.lower().replace('_', ' ')} labelled"
                f" {ref.label!r} for {key_id} (was the token re-initialised, or is SOFTHSM2_CONF another?)"
            ) from None
        except MultipleObjectsReturned:
            raise ConfigurationError(
                f"PKCS#11 token {ref.token!r} holds more than one key labelled {ref.label!r} for {key_id}"
            ) from None
    private, public = found
    if attribute(private, Attribute.KEY_TYPE) != KeyType.EC_EDWARDS:
        raise ConfigurationError(f"key {ref.label!r} in token {ref.token!r} is not an Ed25519 key")
    if not attribute(private, Attribute.SENSITIVE) or attribute(private, Attribute.EXTRACTABLE) is not False:
        raise ConfigurationError(
            f"key {ref.label!r} in token {ref.token!r} can be read out of the token (sensitive must be true,"
            " extractable false); refusing to sign with it"
        )
    return private, _raw_public(public, ref)


def _raw_public(public: Any, ref: TokenKeyRef) -> bytes:
    """The raw 32 bytes of an Edwards public key's CKA_EC_POINT (DER OCTET STRING, or raw by older tokens)."""
    point = bytes(attribute(public, Attribute.EC_POINT) or b"")
    if len(point) == len(_OCTET_STRING_32) + _RAW and point.startswith(_OCTET_STRING_32):
        return point[len(_OCTET_STRING_32) :]
    if len(point) == _RAW:
        return point
    raise ConfigurationError(f"the public key {ref.label!r} in token {ref.token!r} is not an Ed25519 key")
