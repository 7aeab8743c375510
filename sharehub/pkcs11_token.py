"""Logging in to a PKCS#11 token: one loaded library per module in this process, one session per user.

Shared by the hub's key-encryption key (:mod:`sharehub.kek_pkcs11`) and an agency site's signing key
(:mod:`sharehub.token_signer`). A module is loaded once and finalised when the last session using it closes
(SoftHSM2 reads ``SOFTHSM2_CONF`` when initialised). A PIN is never part of a message.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Session
from pkcs11.exceptions import NoSuchToken, PinIncorrect, PinLocked, PKCS11Error, UserAlreadyLoggedIn

from sharehub.errors import ConfigurationError, SharehubError

#: The library module of Debian's softhsm2 package.
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")


def error_name(exc: PKCS11Error) -> str:
    """A PKCS#11 failure in words: the library's message, or its class name (e.g. ``DeviceRemoved``)."""
    return str(exc) or type(exc).__name__


def attribute(handle: Any, name: Any) -> Any:
    """An attribute of a token object, or None when the token will not say (sensitive, or absent)."""
    try:
        return handle[name]
    except PKCS11Error:
        return None


def log_in(
    lib: Any,
    module: Path,
    token_label: str,
    pin: str,
    *,
    pin_from: str,
    label_hint: str,
    wrong_pin: type[SharehubError] = ConfigurationError,
) -> Session:
    """A read-write session of the token's user. ``pin_from`` names where the PIN came from and
    ``label_hint`` where the token's label is set, for the messages; ``wrong_pin`` is raised for a PIN the
    token refuses (a setting of the hub's, or a caller's input)."""
    try:
        token = lib.get_token(token_label=token_label)
    except NoSuchToken:
        labels = sorted({t.label for t in lib.get_tokens()})
        raise ConfigurationError(
            f"no PKCS#11 token labelled {token_label!r} in {module}"
            f" (tokens there: {', '.join(map(repr, labels)) or 'none'}); check {label_hint}"
            " (and SOFTHSM2_CONF for SoftHSM2)"
        ) from None
    except PKCS11Error as exc:
        raise ConfigurationError(f"PKCS#11 module {module} lists no tokens: {error_name(exc)}") from None
    try:
        try:
            session: Session = token.open(user_pin=pin, rw=True)
        except UserAlreadyLoggedIn:  # another user of this process logged in to the token: sessions share it
            session = token.open(rw=True)
    except PinIncorrect:
        raise wrong_pin(f"{pin_from} is not the user PIN of PKCS#11 token {token_label!r}") from None
    except PinLocked:
        raise ConfigurationError(f"the user PIN of PKCS#11 token {token_label!r} is locked") from None
    except PKCS11Error as exc:
        raise ConfigurationError(
            f"cannot log in to PKCS#11 token {token_label!r}: {error_name(exc)}"
        ) from None
    return session


class Libraries:
    """PKCS#11 modules loaded in this process: one initialised library per module, shared by the sessions
    that use it, finalised when the last one is released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[Path, tuple[Any, int]] = {}

    def acquire(self, module: Path, *, module_hint: str) -> Any:
        with self._lock:
            lib, users = self._loaded.get(module, (None, 0))
            if lib is None:
                if not module.is_file():
                    raise ConfigurationError(
                        f"PKCS#11 module {module} does not exist: point {module_hint} at the HSM's"
                        " library, or install SoftHSM2 (scripts/softhsm.sh install)"
                    )
                try:
                    lib = pkcs11.lib(str(module))
                except PKCS11Error as exc:
                    raise ConfigurationError(
                        f"cannot load PKCS#11 module {module}: {error_name(exc)}"
                    ) from None
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


#: The one registry of this process (two registries would initialise one module twice).
libraries = Libraries()


def close_session(session: Session, module: Path) -> None:
    """Close a session (a token that went away leaves nothing to close) and release its library."""
    try:
        with contextlib.suppress(PKCS11Error):
            session.close()
    finally:
        libraries.release(module)
