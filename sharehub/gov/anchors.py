"""The hub's pinned trust: which agency operates it, its topic prefix, and the operator's first public key.

Every reader of the governance log (projection, query API, audit, the service itself) needs to know, before
reading a single event, whose signatures to accept: the first events register the operator and its key and
cannot vouch for themselves. ``sharehub gov apply`` writes ``<home>/trust.json`` once, when it creates the
operator's key; afterwards the log decides (rotations and revocations of operator keys are events). The file
holds public keys only. Changing the operator or the prefix of an existing hub is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharehub.errors import InputError, UnknownReferenceError
from sharehub.gov.verify import Trust
from sharehub.keys import write_private

FILE_NAME = "trust.json"


@dataclass(frozen=True)
class Anchors:
    operator: str
    topic_prefix: str
    #: key id -> raw Ed25519 public key (hex)
    keys: dict[str, str]

    @property
    def trust(self) -> Trust:
        return Trust(
            self.operator,
            {k: Ed25519PublicKey.from_public_bytes(bytes.fromhex(v)) for k, v in self.keys.items()},
        )


def path(home: Path) -> Path:
    return home / FILE_NAME


def load(home: Path) -> Anchors:
    try:
        raw = json.loads(path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnknownReferenceError(
            f"no governance at {home}: run 'sharehub gov apply FILE.yaml' (or 'make demo') first"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path(home)}: unreadable: {exc}") from None
    try:
        return Anchors(str(raw["operator"]), str(raw["topic_prefix"]), dict(raw["keys"]))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path(home)}: missing {exc}") from None


def exists(home: Path) -> bool:
    return path(home).exists()


def pin(home: Path, anchors: Anchors) -> None:
    """Write the anchors for a new hub; refuse to re-point an existing one."""
    if exists(home):
        current = load(home)
        if (current.operator, current.topic_prefix) != (anchors.operator, anchors.topic_prefix):
            raise InputError(
                f"{path(home)} pins operator {current.operator!r} and prefix {current.topic_prefix!r}; "
                f"this spec names {anchors.operator!r} and {anchors.topic_prefix!r} (use another home)"
            )
        return
    home.mkdir(parents=True, exist_ok=True)
    body = {"operator": anchors.operator, "topic_prefix": anchors.topic_prefix, "keys": anchors.keys}
    write_private(path(home), json.dumps(body, indent=1, sort_keys=True).encode())
