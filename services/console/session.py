"""A console session: a signed cookie naming the agency, the hash of the credential it logged in with (never
the credential), when it logged in, and a random secret its forms' CSRF tokens derive from.

The cookie is signed (itsdangerous) with a key the hub's key store keeps wrapped like every key
(:meth:`sharehub.keys.LocalKeyStore.console_session_key`), made at first use and read by every API process
of that hub, so a session opened at one process is good at every other. It expires ``console_session_s``
after the login (the login time is in the signed cookie). At each request the credential must still be
the agency's and neither expired, replaced nor revoked
(:meth:`sharehub.gov.credentials.CredentialRecord.refusal_at`): revoking a credential ends its sessions.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer

from sharehub.gov.state import GovState

COOKIE = "sharehub_console"
#: Where the session cookie is sent: the console's pages only, never the API's routes.
COOKIE_PATH = "/console"
_SALT = "sharehub.console.session"
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Session:
    agency: str
    #: SHA-256 (hex) of the credential the agency logged in with.
    credential_hash: str
    issued_at: dt.datetime
    #: Hex; each form's CSRF token is an HMAC under it (:mod:`.csrf`).
    csrf_secret: str


class Sessions:
    """Opens and seals session cookies; judges whether a session still holds."""

    def __init__(self, secret: bytes, lifetime_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.lifetime_s = lifetime_s

    def seal(self, agency: str, credential_hash: str, now: dt.datetime) -> str:
        payload = {
            "agency": agency,
            "credential": credential_hash,
            "issued": now.isoformat(),
            "csrf": secrets.token_hex(_SECRET_BYTES),
        }
        return str(self._serializer.dumps(payload))

    def open(self, cookie: str | None, now: dt.datetime) -> Session | None:
        """The session the cookie holds, or None: no cookie, a forged or malformed one, or one issued longer
        than the session's lifetime before ``now``."""
        if not cookie:
            return None
        try:
            payload = self._serializer.loads(cookie, max_age=self.lifetime_s)
            found = Session(
                agency=str(payload["agency"]),
                credential_hash=str(payload["credential"]),
                issued_at=dt.datetime.fromisoformat(payload["issued"]),
                csrf_secret=str(payload["csrf"]),
            )
            bytes.fromhex(found.csrf_secret)
        except (BadData, KeyError, TypeError, ValueError):
            return None
        age = (now - found.issued_at).total_seconds()
        return found if 0 <= age < self.lifetime_s else None


def still_valid(session: Session, state: GovState, now: dt.datetime) -> bool:
    """Whether the session's credential is still its agency's and neither expired, replaced nor revoked."""
    record = state.credential(session.credential_hash)
    return (
        record is not None
        and hmac.compare_digest(record.consumer, session.agency)
        and record.refusal_at(now) is None
    )
