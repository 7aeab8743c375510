"""``sharehub gov purposes`` and ``sharehub gov legal-bases``: the governed vocabulary from the command line.

``define`` and ``retire`` are the operator's (``--as`` the operator, on the hub's machine or with its
credential), ``list`` shows every term with its Vietnamese and English labels, retired ones marked. The
HTTP API takes the same requests at ``POST /v1/gov/define-purpose`` and the like.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.errors import governance_now, reports_errors
from sharehub.gov.commands import DefineLegalBasis, DefinePurpose, RetireTerm
from sharehub.gov.vocabulary import Term

#: Operations these commands perform (so the generic per-operation commands leave them out).
VOCABULARY_OPERATIONS = {"define-purpose", "retire-purpose", "define-legal-basis", "retire-legal-basis"}

purposes_app = typer.Typer(help="The purposes agreements and datasets name, and queries state.")
legal_bases_app = typer.Typer(help="The legal bases agreements rest on.")
out = Console(soft_wrap=True)

Actor = Annotated[str, typer.Option("--as", help="The agency this change is made for (the operator)")]
CredentialFile = Annotated[
    Path | None, typer.Option(help="File holding --as's credential (else SHAREHUB_CREDENTIAL)")
]
TermId = Annotated[str, typer.Argument(help="Its id: a-z 0-9 -, e.g. party-member-management")]
LabelVi = Annotated[str, typer.Option("--vi", help="The label in Vietnamese")]
LabelEn = Annotated[str, typer.Option("--en", help="The label in English")]
Reason = Annotated[str, typer.Option(help="Why (it stays on the log)")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object per term")]


def _perform(actor: str, credential_file: Path | None, operation: str, request: Any) -> None:
    from services.cli.gov_commands import credential_from, perform_as

    perform_as(actor, credential_from(credential_file), operation, request)


@purposes_app.command("define")
@reports_errors
def define_purpose(
    id: TermId, vi: LabelVi, en: LabelEn, actor: Actor, credential_file: CredentialFile = None
) -> None:
    """Define a purpose (operator only)."""
    request = DefinePurpose(id=id, label_vi=vi, label_en=en)
    _perform(actor, credential_file, "define-purpose", request)


@purposes_app.command("retire")
@reports_errors
def retire_purpose(id: TermId, reason: Reason, actor: Actor, credential_file: CredentialFile = None) -> None:
    """Retire a purpose: new agreements and datasets may no longer name it; those that do keep it."""
    _perform(actor, credential_file, "retire-purpose", RetireTerm(id=id, reason=reason))


@purposes_app.command("list")
@reports_errors
def list_purposes(as_json: AsJson = False) -> None:
    """Every purpose, with its labels; retired ones marked."""
    _list(governance_now().purposes_, as_json)


@legal_bases_app.command("define")
@reports_errors
def define_legal_basis(
    id: TermId,
    vi: LabelVi,
    en: LabelEn,
    reference: Annotated[str, typer.Option(help="The text it cites, e.g. 'Quy định 384-QĐ/TW, Điều 5'")],
    actor: Actor,
    credential_file: CredentialFile = None,
) -> None:
    """Define a legal basis (operator only)."""
    request = DefineLegalBasis(id=id, label_vi=vi, label_en=en, reference=reference)
    _perform(actor, credential_file, "define-legal-basis", request)


@legal_bases_app.command("retire")
@reports_errors
def retire_legal_basis(
    id: TermId, reason: Reason, actor: Actor, credential_file: CredentialFile = None
) -> None:
    """Retire a legal basis: new agreements may no longer rest on it; those that do keep it."""
    _perform(actor, credential_file, "retire-legal-basis", RetireTerm(id=id, reason=reason))


@legal_bases_app.command("list")
@reports_errors
def list_legal_bases(as_json: AsJson = False) -> None:
    """Every legal basis, with its labels and reference; retired ones marked."""
    _list(governance_now().legal_bases_, as_json)


def _list(terms: Mapping[str, Term], as_json: bool) -> None:
    rows = [terms[k] for k in sorted(terms)]
    if as_json:
        for t in rows:
            retired = t.retired_at.isoformat() if t.retired_at else None
            print(json.dumps({**t.json(), "retired_at": retired}, ensure_ascii=False))
        return
    extra = ["reference"] if any(hasattr(t, "reference") for t in rows) else []
    table = Table("id", "tiếng Việt", "English", *extra, "status")
    for t in rows:
        status = f"retired {t.retired_at:%Y-%m-%d}: {t.retire_reason}" if t.retired_at else "in use"
        table.add_row(t.id, t.label_vi, t.label_en, *[str(t.json()[k]) for k in extra], status)
    out.print(table if rows else "none defined")
