"""The governance commands: one typed request per operation, what an agency asks governance to do.

The same models serve every way a change is asked for: the CLI's options (``sharehub gov OPERATION``), the
HTTP body (``POST /v1/gov/OPERATION``) and the hub YAML file (:mod:`sharehub.gov.apply`: agencies,
datasets and agreements are these commands, an agreement with its approvers). Each is checked as it is
read (extra fields, types, text that is not valid Unicode), then against governance by the rules
(:mod:`sharehub.gov.rules`) when performed; what governance records is the event (:mod:`sharehub.gov.events`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from sharehub.errors import InputError


class Command(BaseModel):
    """Base of every governance command: frozen, no field it does not name, Unicode text only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _text_is_unicode(cls, data: Any) -> Any:
        """JSON may carry lone surrogates (``"\\ud800"``), which are no text: refused here, by name."""
        where = _first_lone_surrogate(data, ())
        if where is not None:
            raise ValueError(f"{'.'.join(where) or 'body'}: not valid Unicode text (a lone surrogate)")
        return data


def _first_lone_surrogate(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _first_lone_surrogate(key, (*path, "<key>")) or _first_lone_surrogate(item, (*path, str(key)))
        if found is not None:
            return found
    return None


class RegisterAgency(Command):
    id: str
    name: str
    kind: str
    clearance: str
    parent: str | None = None


class AddKey(Command):
    agency: str
    key_id: str
    #: Raw Ed25519 public key, hex. Left out (on the hub's own machine only: the CLI), a key pair is made
    #: and kept in the hub's key store once governance has accepted its public half.
    public_key: str | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None


class RotateKey(Command):
    agency: str
    old_key_id: str
    new_key_id: str
    public_key: str | None = None
    valid_from: AwareDatetime | None = None


class RevokeKey(Command):
    agency: str
    key_id: str
    reason: str = Field(min_length=1)
    effective_at: AwareDatetime | None = None


class DeclareDataset(Command):
    id: str
    owner: str
    classification: str
    key_field: str
    description: str = ""
    retention_ms: int = -1
    partitions: int = Field(default=3, ge=1, le=256)
    #: Expressions every record must satisfy, e.g. ``admission_date >= "1930-02-03"``.
    quality_rules: tuple[str, ...] = ()
    #: Ids of the vocabulary's purposes it may be shared for; empty: any.
    purposes: tuple[str, ...] = ()


class SetDatasetPurposes(Command):
    """The purposes a declared dataset may be shared for from now on (its owner's or the operator's
    decision)."""

    dataset: str
    #: Ids of the vocabulary's purposes; empty: any purpose, as a dataset declared without them.
    purposes: tuple[str, ...]
    reason: str = Field(min_length=1)


class SetDatasetRetention(Command):
    """How long a declared dataset's topic keeps each event from now on (its owner's or the operator's
    decision)."""

    dataset: str
    #: Milliseconds; -1: for ever.
    retention_ms: int
    reason: str = Field(min_length=1)


class RegisterSchema(Command):
    dataset: str
    #: The Avro record schema (JSON), with ``classification`` (and ``personal``) on each field.
    avro_schema: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Propose(Command):
    id: str
    consumer: str
    dataset: str
    fields: tuple[str, ...]
    #: Free text: the statement of purpose. With ``purposes`` it may be left out (it becomes their ids).
    purpose: str = ""
    #: The id of a legal basis of the vocabulary (free text for a hub that has none).
    legal_basis: str
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    row_filter: str | None = None
    #: Ids of the vocabulary's purposes: the ones a query under the agreement may state.
    purposes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _states_a_purpose(self) -> Propose:
        if not self.purpose and not self.purposes:
            raise ValueError("purposes: name the agreement's purposes (ids of governance's vocabulary)")
        if not self.purpose:  # what the event will hold, so a spec compares equal to the log
            object.__setattr__(self, "purpose", ", ".join(self.purposes))
        return self


class AgreementStep(Command):
    agreement_id: str


class AgreementChange(Command):
    agreement_id: str
    reason: str = Field(min_length=1)


class DefinePurpose(Command):
    id: str
    label_vi: str
    label_en: str


class DefineLegalBasis(Command):
    id: str
    label_vi: str
    label_en: str
    #: The text it cites, e.g. ``Quy định 384-QĐ/TW, Điều 5``.
    reference: str


class RetireTerm(Command):
    """Retire a purpose or a legal basis: no new agreement names it; those that do keep it."""

    id: str
    reason: str = Field(min_length=1)


class IssueCredential(Command):
    agency: str
    #: SHA-256 (hex) of a credential the caller made; the hub never sees the credential itself.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: When it stops working (default: 90 days from now; at most 365).
    expires_at: AwareDatetime | None = None


class RotateCredential(Command):
    #: The credential replaced (its id, as ``sharehub gov credentials list`` shows it).
    credential_id: str
    #: SHA-256 (hex) of the new credential, made by the caller.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: Until when the replaced credential still works (default: one day from now; at most 30).
    overlap_until: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None


class RevokeCredential(Command):
    credential_id: str
    reason: str = Field(min_length=1)
    #: From when it is refused (default: now).
    effective_at: AwareDatetime | None = None


def json_object(text: str, what: str, shape: str = "a JSON object") -> dict[str, Any]:
    """``text`` parsed as one JSON object; InputError naming ``what`` otherwise (a body read from a file)."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{what} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InputError(f"{what} must be {shape}")
    return parsed
