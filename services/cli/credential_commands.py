"""``sharehub gov credentials``: the query API's bearer credentials, with their lifetimes.

``issue`` and ``rotate`` make a new credential on this machine, record its SHA-256 on the governance log
and print the credential once (stdout, alone, for a script to keep); the operator does both. ``revoke``
ends a credential by its id, for the operator or for the agency it was issued to (``--as`` with that
agency's credential). ``list`` shows ids, agencies, times and states: never a credential or its hash.
Every change goes through :func:`services.gov_operations.perform`, as ``POST /v1/gov/...`` does.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.errors import governance_now, reports_errors
from services.gov_operations import event_summary
from services.hub import Hub
from sharehub.gov.commands import Command, IssueCredential, RevokeCredential, RotateCredential
from sharehub.gov.credentials import MAX_LIFETIME, MAX_OVERLAP, CredentialRecord, credential_id
from sharehub.gov.events import CredentialIssued, GovernanceEvent
from sharehub.gov.service import new_credential

app = typer.Typer(
    help="API credentials: issued with a lifetime, rotated with an overlap, revoked by id.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

As = Annotated[
    str | None, typer.Option("--as", help="The agency this change is made for (default: the operator)")
]
CredentialFile = Annotated[
    Path | None, typer.Option(help="File holding --as's credential (else SHAREHUB_CREDENTIAL)")
]
LifetimeDays = Annotated[
    int | None,
    typer.Option(min=1, max=MAX_LIFETIME.days, help="Days until it expires (default 90)"),
]
ExpiresAt = Annotated[
    str | None, typer.Option(help="When it expires, ISO 8601 with a zone (instead of --lifetime-days)")
]


@app.command("issue")
@reports_errors
def credentials_issue(
    agency: Annotated[str, typer.Argument(help="The agency it is issued to")],
    lifetime_days: LifetimeDays = None,
    expires_at: ExpiresAt = None,
    actor: As = None,
    credential_file: CredentialFile = None,
) -> None:
    """Issue a credential to AGENCY (operator only): printed once; the log keeps its SHA-256 and expiry."""
    token, digest = new_credential()
    body = {"agency": agency, "sha256": digest, **_expiry(lifetime_days, expires_at)}
    event = _perform("issue-credential", IssueCredential.model_validate(body), actor, credential_file)
    print(token)
    _tell_new(event)


@app.command("rotate")
@reports_errors
def credentials_rotate(
    credential: Annotated[str, typer.Argument(help="Id of the credential to replace (see 'list')")],
    overlap_hours: Annotated[
        float,
        typer.Option(min=0, max=MAX_OVERLAP.days * 24, help="Hours the old one keeps working beside the new"),
    ] = 24,
    lifetime_days: LifetimeDays = None,
    expires_at: ExpiresAt = None,
    actor: As = None,
    credential_file: CredentialFile = None,
) -> None:
    """Issue a credential that replaces CREDENTIAL (operator only): printed once; the old one is refused
    once the overlap has passed."""
    token, digest = new_credential()
    overlap_until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=overlap_hours)
    body = {
        "credential_id": credential,
        "sha256": digest,
        "overlap_until": overlap_until,
        **_expiry(lifetime_days, expires_at),
    }
    event = _perform("rotate-credential", RotateCredential.model_validate(body), actor, credential_file)
    print(token)
    _tell_new(event)


@app.command("revoke")
@reports_errors
def credentials_revoke(
    credential: Annotated[str, typer.Argument(help="Id of the credential to revoke (see 'list')")],
    reason: Annotated[str, typer.Option(help="Why (it stays on the log)")],
    effective_at: Annotated[
        str | None, typer.Option(help="From when it is refused, ISO 8601 with a zone (default: now)")
    ] = None,
    actor: As = None,
    credential_file: CredentialFile = None,
) -> None:
    """Revoke CREDENTIAL: every API instance refuses it within a second. The operator revokes any
    credential, an agency its own."""
    body: dict[str, Any] = {"credential_id": credential, "reason": reason}
    if effective_at is not None:
        body["effective_at"] = effective_at
    event = _perform("revoke-credential", RevokeCredential.model_validate(body), actor, credential_file)
    print(json.dumps(event_summary(event)))


@app.command("list")
@reports_errors
def credentials_list(
    agency: Annotated[str | None, typer.Option(help="Only this agency's credentials")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per credential")] = False,
) -> None:
    """Every credential: id, agency, issued, expires, state (valid, expired, replaced, revoked) and what
    ended or replaced it. Never a credential or its hash."""
    gov = governance_now()
    if agency is not None:
        gov.agency(agency)  # an unknown agency is a clear refusal
    now = dt.datetime.now(dt.UTC)
    records = sorted(
        (r for r in gov.credential_records.values() if agency in (None, r.consumer)),
        key=lambda r: (r.consumer, r.issued_at, r.id),
    )
    if as_json:
        for record in records:
            print(json.dumps(record.summary(now), ensure_ascii=False))
        return
    table = Table("id", "agency", "issued", "expires", "state", "note")
    for r in records:
        table.add_row(
            r.id, r.consumer, _minute(r.issued_at), _minute(r.expires_at) if r.expires_at else "never",
            r.state_at(now), _note(r),
        )  # fmt: skip
    out.print(table if records else "no credentials")


def _note(r: CredentialRecord) -> str:
    notes = []
    if r.replaces:
        notes.append(f"replaces {r.replaces}")
    if r.replaced_by and r.replaced_until:
        notes.append(f"replaced by {r.replaced_by} from {_minute(r.replaced_until)}")
    if r.revoked_at:
        notes.append(f"revoked from {_minute(r.revoked_at)}: {r.revoke_reason}")
    return "; ".join(notes)


def _minute(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%MZ") if t is not None else "-"


def _expiry(lifetime_days: int | None, expires_at: str | None) -> dict[str, Any]:
    if lifetime_days is not None and expires_at is not None:
        raise typer.BadParameter("give --lifetime-days or --expires-at, not both", param_hint="--expires-at")
    if lifetime_days is not None:
        return {"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=lifetime_days)}
    return {"expires_at": expires_at} if expires_at is not None else {}


def _perform(
    operation: str, request: Command, actor: str | None, credential_file: Path | None
) -> GovernanceEvent:
    from services.cli.gov_commands import credential_from
    from services.gov_operations import Caller, authenticate, perform

    credential = credential_from(credential_file)  # read before the hub is opened, as every gov command
    with Hub() as hub:
        who = actor or hub.governance.operator
        proven = authenticate(hub.governance, hub.keys, who, credential, local_operator=True)
        return perform(hub.governance_desk(), Caller(proven, local=True), operation, request)


def _tell_new(event: GovernanceEvent) -> None:
    issued = event.payload
    assert isinstance(issued, CredentialIssued)
    expires = issued.expires_at.isoformat() if issued.expires_at else "never"
    err.print(
        f"credential {credential_id(issued.sha256)} of {issued.consumer}, expires {expires}: shown once, "
        "above; the log keeps its SHA-256 only",
        highlight=False,
    )
