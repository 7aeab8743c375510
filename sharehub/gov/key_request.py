"""A key registration request: an agency's new public signing key, signed by that key (proof of possession).

Like a certificate signing request, it is made where the private key lives (the agency's site, see
:mod:`connectors.site`) and carries only the public half. Governance registers it
(``sharehub gov register-key FILE`` or ``POST /v1/gov/register-key``) after checking that the signature
verifies under the very key it asks to register: whoever sends a request holds the private key, and the hub
never sees it. ``replaces`` makes the request a rotation (the old key stops counting when the new one
starts). The signature covers every other field, so a request cannot be redirected to another agency, key id
or validity window.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, Field

from sharehub.errors import ForgedKeyRequest
from sharehub.gov.commands import Command, json_object
from sharehub.keys import Signer

#: Domain separation: a signature over a request can be nothing else (not an event, not a checkpoint).
SIGNED_AS = b"sharehub key registration request v1\n"


class KeyRequest(Command):
    """An agency's request to register its public signing key; ``signature`` (hex) is by that key."""

    agency: str
    key_id: str
    #: Raw Ed25519 public key, hex.
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    #: The key this one replaces (a rotation), or None (a first or additional key).
    replaces: str | None = None
    signature: str = Field(pattern=r"^[0-9a-f]{128}$")

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.model_dump(mode="json", exclude={"signature"}))

    def proven(self) -> KeyRequest:
        """This request, once its signature verifies under the key it registers; ForgedKeyRequest if not."""
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))
            public.verify(bytes.fromhex(self.signature), self.signed_bytes())
        except (InvalidSignature, ValueError):
            raise ForgedKeyRequest(
                f"the registration request for {self.key_id!r} is not signed by the key it registers: "
                "only the holder of the private key can make it"
            ) from None
        return self


def signed_bytes(fields: dict[str, Any]) -> bytes:
    return SIGNED_AS + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def make_key_request(
    signer: Signer,
    *,
    agency: str,
    valid_from: Any,
    valid_until: Any = None,
    replaces: str | None = None,
) -> KeyRequest:
    """The signed registration request of ``signer``'s public half, under its key id (made at the agency's
    site, by a key in memory or in a token)."""
    unsigned = {
        "agency": agency,
        "key_id": signer.key_id,
        "public_key": signer.public_key().public_bytes_raw().hex(),
        "valid_from": valid_from,
        "valid_until": valid_until,
        "replaces": replaces,
        "signature": "0" * 128,
    }
    draft = KeyRequest.model_validate(unsigned)
    signature = signer.sign(draft.signed_bytes()).hex()
    return draft.model_copy(update={"signature": signature})


def read_key_request(text: str) -> KeyRequest:
    """A request from its JSON file; InputError naming what is wrong."""
    return KeyRequest.model_validate(json_object(text, "the registration request"))
