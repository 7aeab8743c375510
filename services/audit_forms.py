"""The form of the hub's unsigned topics, for the audit: every record of the quarantine must be a record of
its kind. Its content cannot be verified: nothing signs it (the access log is signed and chained, and
verified as such: :mod:`sharehub.access_records`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections.quarantine import decode_quarantined

#: Each unsigned topic kind: how a record of it decodes, and the field that names it (if any).
FORMS: dict[str, tuple[Callable[[bytes], dict[str, Any]], str | None]] = {
    "quarantine": (decode_quarantined, None),
}


class NotOfItsKind(ValueError):
    """A record that is not a record of its topic's kind."""


def record_id(kind: str, value: bytes) -> str | None:
    """The id of a record of ``kind`` (None if its kind names none); NotOfItsKind if it is not one."""
    decode, id_field = FORMS[kind]
    try:
        fields = decode(value)
    except Exception as exc:  # garbage of any kind is one finding
        raise NotOfItsKind(f"not a record of the {kind}: {exc}") from None
    return str(fields[id_field]) if id_field else None
