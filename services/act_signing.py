"""Sealing a governance act where its party's key lives (:mod:`sharehub.gov.acts`).

At an agency's site, :func:`seal_request` signs the act a request asks for with the site's key: it runs the
operation against the site's own view of governance (the log, verified against the pinned operator key)
up to the moment the seal is made, so the rules are checked there too and the seal covers exactly the
payload the hub will build (the request's times are fixed first: a default "now" at the hub would be
another payload). The site sends the request with its ``act_seal``; the hub only checks it.

On the hub's machine, ``sharehub gov ... --site DIR`` seals with the key of the site at ``DIR`` (the demo
keeps one per agency, ``<home>/sites/<agency>``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.gov_operations import OPERATIONS, Caller
from sharehub.errors import InputError
from sharehub.gov import events as ev
from sharehub.gov.acts import KeyRing
from sharehub.gov.commands import Command
from sharehub.gov.log import MemoryLog
from sharehub.gov.service import GovernanceService
from sharehub.gov.state import GovState
from sharehub.keys import LocalKeyStore, Signer, SigningKey

#: Request fields whose default is "now" at the hub: fixed at the site before it signs.
_NOW_FIELDS = ("valid_from", "effective_at")


class _Sealed(Exception):
    """Stops the rehearsal of an act once its seal is made: nothing is written."""

    def __init__(self, seal: ev.ActSeal) -> None:
        super().__init__("sealed")
        self.seal = seal


class _Capture:
    """Seals with the site's key, then stops the operation before any event is made."""

    def __init__(self, agency: str, signer: Signer) -> None:
        self._ring = KeyRing().add(agency, signer)

    def seal_act(
        self, state: GovState, actor: str, payload: ev.Payload, at: dt.datetime
    ) -> ev.ActSeal | None:
        seal = self._ring.seal_act(state, actor, payload, at)
        if seal is None:
            raise InputError(f"the site's key cannot sign for {actor!r} now (not a key of it valid now)")
        raise _Sealed(seal)


def with_fixed_times(request: Command, now: dt.datetime) -> Command:
    """``request`` with each time the hub would default to its "now" set to ``now``."""
    fixed = {
        name: now for name in _NOW_FIELDS if name in type(request).model_fields and not getattr(request, name)
    }
    return request.model_copy(update=fixed) if fixed else request


def seal_request(
    state: GovState, signer: Signer, actor: str, operation: str, request: Command, now: dt.datetime
) -> ev.ActSeal:
    """The seal, by ``signer`` (a key of ``actor``), of the act ``request`` asks for, as of ``now``; the
    rules refuse it here as the hub would."""
    found = OPERATIONS.get(operation)
    if found is None:
        raise InputError(f"no governance operation {operation!r}; one of: {', '.join(OPERATIONS)}")
    _, run = found
    if actor == state.operator:
        raise InputError(f"{actor!r} is the operator: its acts need no seal")
    # A scratch service over the site's state: its operator key never signs (the act stops at its seal).
    scratch = GovernanceService(
        state,
        SigningKey("scratch/sign/1", Ed25519PrivateKey.generate()),
        MemoryLog(),
        clock=lambda: now,
        signers=_Capture(actor, signer),
    )
    try:
        # No key store at a site: an operation that would keep a key there is the operator's, refused above.
        run(cast(LocalKeyStore, None), scratch, Caller(actor), request)
    except _Sealed as sealed:
        return sealed.seal
    raise InputError(f"{operation} for {actor!r} needs no seal")


def site_body(request: Command, seal: ev.ActSeal) -> dict[str, Any]:
    """The body to send to ``POST /v1/gov/{operation}``: the request as signed, and its ``act_seal``."""
    return {**request.model_dump(mode="json", by_alias=True, exclude_none=True), "act_seal": seal.json()}
