"""``sharehub gov``: the governance log from the command line.

``apply`` (declarative bootstrap with a plan), ``show``/``list``/``history``/``log``/``verify`` (reading),
and one command per operation of :mod:`services.gov_operations`, generated from its request type so the
CLI and the HTTP API take the same fields. Each change names the agency it acts for (``--as``) and proves
it with that agency's credential (``--credential-file`` or ``SHAREHUB_CREDENTIAL``); the hub operator may
instead rely on its key in this machine's key store. An act of any agency but the operator is signed by
that agency (:mod:`sharehub.gov.acts`): with the key of its site (``--site``, default the demo's
``<home>/sites/<agency>``), or with the custody key the hub holds for it; else it is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
import os
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.errors import EXIT_FAILURE, governance_now, reports_errors
from services.hub import Hub
from sharehub.errors import InputError

app = typer.Typer(
    help="Central governance: agencies, keys, datasets, schemas, agreements.", no_args_is_help=True
)
SITE_HELP = (
    "The home of --as's own site, whose key signs the act (its passphrase beside the key, or in "
    "SHAREHUB_SIGNING_PASSPHRASE_FILE); default: <home>/sites/<agency> if there. Every act of an agency "
    "but the operator is signed by that agency (or by the custody key the hub holds for it)"
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

HELP = {
    "register-agency": "Register an agency (operator only).",
    "add-key": "Add a signing key to an agency; without --public-key a key pair is made in the key store.",
    "rotate-key": "Replace an agency's signing key; the old one stops counting when the new one starts.",
    "register-key": "Register the public key in an agency's registration request FILE (signed by that key).",
    "revoke-key": "Revoke a signing key from --effective-at (default now): later signatures stop counting.",
    "declare-dataset": "Declare a dataset with its owner and classification; creates its keys and topic.",
    "set-dataset-purposes": (
        "Change the purposes a dataset may be shared for (by its owner or the operator); --purposes '' "
        "allows any. Refused while an agreement on it names a purpose left out (revoke it first)."
    ),
    "register-schema": "Register the next schema version of a dataset; refused if it cannot read old events.",
    "propose": "Propose an agreement (by its consumer, who signs it: see --site).",
    "consent": "Consent to an agreement (by the dataset's owner, who signs it: see --site).",
    "approve": (
        "Approve an agreement (by a central office, which signs it: see --site; two distinct ones at secret "
        "and above)."
    ),
    "suspend": "Suspend an active agreement (signed by the owner or central office that does it).",
    "resume": "Resume a suspended agreement (signed by the owner or central office that does it).",
    "revoke": "Revoke an agreement for good (signed by the owner or central office that does it).",
    "issue-credential": "Record a credential by its SHA-256 (see 'sharehub gov credentials issue').",
}


@app.command("apply")
@reports_errors
def gov_apply(
    spec: Annotated[Path, typer.Argument(help="YAML file describing agencies, datasets and agreements")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan, change nothing")] = False,
    create_topics: Annotated[bool, typer.Option(help="Create topics, principals and ACLs on Kafka")] = True,
) -> None:
    """Bring governance to the state SPEC describes: shows the plan, then applies it (idempotent)."""
    from services.governance_bootstrap import apply_spec, plan_spec, read_spec

    with Hub() as hub:
        desk = hub.governance_desk()
        changes = plan_spec(desk, read_spec(spec))
        for change in changes:
            out.print(change.line, markup=False, highlight=False)
        if not changes:
            err.print("governance already matches the spec: nothing to do")
        elif dry_run:
            err.print(f"{len(changes)} changes planned (dry run: nothing applied)")
            return
        elif not yes and not typer.confirm(f"apply {len(changes)} changes?", err=True):
            raise typer.Exit(1)
        else:
            events = apply_spec(desk, changes, topics=False)
            err.print(f"applied {len(events)} changes; log head {hub.governance.head_sequence}")
        if create_topics:  # topics, principals and ACLs for the whole current state
            created = desk.provision()
            err.print(f"topics created: {', '.join(created) if created else 'none (all exist)'}")


@app.command("show")
@reports_errors
def gov_show(
    as_json: Annotated[bool, typer.Option("--json", help="The whole state, canonical JSON")] = False,
) -> None:
    """Print agencies, datasets and agreements as the log has them now."""
    gov = governance_now()
    if as_json:
        print(json.dumps(gov.dump(), indent=1, ensure_ascii=False))
        return
    table = Table("agency", "name", "kind", "clearance", "signing keys")
    for a in sorted(gov.agencies_):
        agency = gov.agency(a)
        table.add_row(a, agency.name, agency.kind, agency.clearance, ", ".join(k.key_id for k in agency.keys))
    out.print(table)
    list_datasets(gov)
    list_agreements(gov)


@app.command("list")
@reports_errors
def gov_list(what: Annotated[str, typer.Argument(help="agencies, datasets or agreements")]) -> None:
    """List one kind of governed thing."""
    gov = governance_now()
    if what == "agencies":
        for a in sorted(gov.agencies_):
            print(a)
    elif what == "datasets":
        list_datasets(gov)
    elif what == "agreements":
        list_agreements(gov)
    else:
        raise typer.BadParameter("one of agencies, datasets, agreements", param_hint="WHAT")


def list_datasets(gov: Any) -> None:
    table = Table("dataset", "owner", "classification", "schema versions", "topic")
    for d in gov.datasets():
        table.add_row(d.id, d.owner, d.classification, str(len(gov.datasets_[d.id].schemas)), d.topic)
    out.print(table)


def list_agreements(gov: Any) -> None:
    table = Table("agreement", "consumer", "dataset", "fields", "row filter", "stage", "now", "valid until")
    now = dt.datetime.now(dt.UTC)
    for ag_id, ag in sorted(gov.agreements_.items()):
        t = ag.terms
        table.add_row(
            ag_id, t.consumer, t.dataset, ", ".join(t.fields), t.row_filter or "-", ag.stage,
            ag.status_at(now), str(t.valid_until or "-"),
        )  # fmt: skip
    out.print(table)


@app.command("history")
@reports_errors
def gov_history(agreement: Annotated[str, typer.Argument(help="Agreement id")]) -> None:
    """Every version of an agreement: one per event about it."""
    for version in governance_now().history(agreement):
        approvals = f" approvals={','.join(version.approvals)}" if version.approvals else ""
        reason = f" reason={version.reason!r}" if version.reason else ""
        print(
            f"{version.sequence}\t{version.at.isoformat()}\t{version.event_type}\tby {version.actor}\t"
            f"stage={version.stage}{approvals}{reason}"
        )


@app.command("log")
@reports_errors
def gov_log() -> None:
    """Every governance event, oldest first: sequence, time, type, actor, hash (a record that is not a
    governance event: its offset and why, on stderr)."""
    from sharehub.errors import EnvelopeError
    from sharehub.gov.events import parse

    with Hub() as hub:
        entries = hub.log.entries_all()
    for entry in entries:
        try:
            event = parse(entry.raw)
        except EnvelopeError as exc:
            print(f"offset {entry.offset}: {exc.reason}: {exc}", file=sys.stderr)
            continue
        print(
            f"{event.sequence}\t{event.occurred_at.isoformat()}\t{event.type}\t{event.actor}\t{event.hash.hex()}"
        )


@app.command("verify")
@reports_errors
def gov_verify() -> None:
    """Rebuild governance from the topic alone (signatures, chain, every rule); prints the state's hash, the
    trust anchor evidence packs are checked against, and each record not applied, with its offset (exit 1
    if there is one)."""
    from sharehub.evidence_pack import trust_fingerprint
    from sharehub.gov import fold_log

    with Hub() as hub:
        pinned = hub.anchors
        state = fold_log(hub.log.entries_all(), pinned.trust, pinned.topic_prefix)
    for skipped in state.skipped:
        print(f"offset {skipped.offset}: {skipped.reason}: {skipped.detail}", file=sys.stderr)
    print(f"{state.head_sequence} events verify; state sha256 {state.state_hash()}")
    print(f"trust anchor {trust_fingerprint(pinned)}")
    if state.skipped:
        raise typer.Exit(EXIT_FAILURE)


@app.command("impact")
@reports_errors
def gov_impact(
    dataset: Annotated[str, typer.Option(help="The dataset the new version is for")],
    schema: Annotated[Path, typer.Option(help="The new version (an .avsc file)")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per impact")] = False,
) -> None:
    """Before registering: what SCHEMA as DATASET's next version would do to every agreement over it that
    can still take effect. breaks (register-schema refuses it), narrows (a granted field rises above the
    consumer's clearance: withheld from its read model), widens (an enum a row filter reads gains symbols).
    Exit 1 if register-schema would refuse the version."""
    from sharehub.errors import SchemaIncompatible
    from sharehub.gov.impact import schema_impact
    from sharehub.gov.rules import parse_schema
    from sharehub.schema_compat import require_compatible

    gov = governance_now()
    gov.dataset(dataset)  # an unknown dataset is a clear refusal
    new = parse_schema(dataset, _read_text(schema))
    impacts = schema_impact(gov, dataset, new, at=dt.datetime.now(dt.UTC))
    try:
        require_compatible(new, gov.datasets_[dataset].schemas)
        incompatible = None
    except SchemaIncompatible as exc:
        incompatible = str(exc)
    if as_json:
        for impact in impacts:
            print(json.dumps(dataclasses.asdict(impact), ensure_ascii=False))
    else:
        table = Table("agreement", "consumer", "effect", "field", "detail")
        for i in impacts:
            table.add_row(i.agreement, i.consumer, i.effect, i.subject, i.detail)
        out.print(table if impacts else f"no agreement over {dataset!r} is affected")
    if incompatible is not None:
        err.print(f"error: {incompatible}")
    if incompatible is not None or any(i.effect == "breaks" for i in impacts):
        raise typer.Exit(EXIT_FAILURE)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None


@app.command("export")
@reports_errors
def gov_export(
    fmt: Annotated[
        str, typer.Option("--format", help="odrl (each agreement a policy) or dcat (the catalog)")
    ],
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout")] = None,
    base_iri: Annotated[
        str | None, typer.Option(help="IRI every identifier starts with (default urn:sharehub:<prefix>:)")
    ] = None,
) -> None:
    """Governance as JSON-LD for data-space tooling: agreements as ODRL policies, datasets as DCAT entries."""
    from services.policy_export import export

    document = json.dumps(export(governance_now(), fmt, base_iri=base_iri), indent=2, ensure_ascii=False)
    if output is None:
        print(document)
    else:
        output.write_text(document + "\n", encoding="utf-8")


# --- one command per operation, generated from its request type ------------------------------------


def credential_from(file: Path | None) -> str | None:
    """The credential in ``file``, else in ``SHAREHUB_CREDENTIAL``, else None."""
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise typer.BadParameter(str(exc), param_hint="--credential-file") from None
    return os.environ.get("SHAREHUB_CREDENTIAL") or None


def _option_type(annotation: Any) -> Any:
    """The Typer-friendly type of a request field (tuples become repeatable options, dicts a JSON file)."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    if typing.get_origin(base) is Annotated:  # e.g. pydantic's AwareDatetime
        base = typing.get_args(base)[0]
    origin = typing.get_origin(base)
    if origin is tuple:
        return list[str]
    if base is dict or origin is dict:
        return Path
    if isinstance(base, type) and issubclass(base, dt.datetime):
        base = str  # ISO 8601 with a zone (e.g. 2026-12-31T00:00:00Z), validated by the request type
    return base | None if optional else base


def _field_parameters(kind: Any) -> tuple[list[inspect.Parameter], set[str]]:
    """One ``--option`` per field of a request type, and the fields given as JSON files."""
    params: list[inspect.Parameter] = []
    file_fields: set[str] = set()
    for name, field in kind.model_fields.items():
        option_type = _option_type(field.annotation)
        flag = "--" + (field.alias or name).replace("_", "-")
        if option_type is Path:
            file_fields.add(name)
            helptext = f"{name}: a JSON file"
        elif option_type == list[str]:
            helptext = f"{name.replace('_', ' ')} (repeat the option, or separate with commas)"
        else:
            helptext = name.replace("_", " ")
        required = field.is_required()
        default: Any = inspect.Parameter.empty if required else (None if option_type is not list[str] else [])
        annotation: Any = Annotated[option_type, typer.Option(flag, help=helptext)]
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params, file_fields


_WHO = [
    inspect.Parameter(
        "actor",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[str, typer.Option("--as", help="The agency this change is made for")],
    ),
    inspect.Parameter(
        "credential_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option(help="File holding --as's credential (else SHAREHUB_CREDENTIAL)")
        ],
    ),
    inspect.Parameter(
        "site",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Path | None, typer.Option(help=SITE_HELP)],
    ),
]


def _operation_command(operation: str) -> None:
    from services.gov_operations import OPERATIONS

    kind, _ = OPERATIONS[operation]
    fields, file_fields = _field_parameters(kind)

    def command(**kwargs: Any) -> None:
        who, credential = kwargs.pop("actor"), credential_from(kwargs.pop("credential_file"))
        site = kwargs.pop("site")
        request = _request(kind, file_fields, kwargs)  # bad input is refused before the hub is opened
        perform_as(who, credential, operation, request, site)

    command.__signature__ = inspect.Signature([*_WHO, *fields])  # type: ignore[attr-defined]
    command.__doc__ = HELP[operation]
    command.__name__ = operation.replace("-", "_")
    app.command(operation)(reports_errors(command))


def _request(kind: Any, file_fields: set[str], options: dict[str, Any]) -> Any:
    """The request of type ``kind`` the command's options give (JSON files read, lists split at commas)."""
    from services.gov_operations import schema_from_file

    body = {}
    for name, value in options.items():
        if name in file_fields:
            value = schema_from_file(_read_text(Path(value)))
        if isinstance(value, list | tuple):
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
        if value is None or (value == [] and not kind.model_fields[name].is_required()):
            continue
        body[kind.model_fields[name].alias or name] = value
    return kind.model_validate(body)


#: Operations whose command is written by hand: one that takes a file rather than one option per field,
#: one whose dataset is an argument and whose "for ever" is a flag of its own, and those of ``gov
#: credentials`` (services/cli/credential_commands.py), which make the credential too.
HAND_WRITTEN = {"register-key", "set-dataset-retention", "rotate-credential", "revoke-credential"}


@app.command("register-key")
@reports_errors
def gov_register_key(
    request_file: Annotated[Path, typer.Argument(help="The registration request the agency's site wrote")],
    actor: Annotated[str, typer.Option("--as", help="The agency this change is made for")],
    credential_file: Annotated[
        Path | None, typer.Option(help="File holding --as's credential (else SHAREHUB_CREDENTIAL)")
    ] = None,
    site: Annotated[Path | None, typer.Option(help=SITE_HELP)] = None,
) -> None:
    """Register the public key of an agency's registration request (made by 'sharehub agency init' or
    'sharehub agency new-key' at the agency's site); refused unless it is signed by the key it registers."""
    from sharehub.gov.key_request import read_key_request

    try:
        text = request_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="REQUEST_FILE") from None
    perform_as(actor, credential_from(credential_file), "register-key", read_key_request(text), site)


@app.command("set-dataset-retention")
@reports_errors
def gov_set_dataset_retention(
    dataset: Annotated[str, typer.Argument(help="The dataset whose topic keeps its events another time")],
    reason: Annotated[str, typer.Option(help="Why (it stays on the log)")],
    actor: Annotated[str, typer.Option("--as", help="The agency this change is made for")],
    retention_ms: Annotated[
        int | None, typer.Option(help="Keep each event this many milliseconds (at least 1)")
    ] = None,
    keep_for_ever: Annotated[bool, typer.Option("--keep-for-ever", help="Keep every event for ever")] = False,
    credential_file: Annotated[
        Path | None, typer.Option(help="File holding --as's credential (else SHAREHUB_CREDENTIAL)")
    ] = None,
    site: Annotated[Path | None, typer.Option(help=SITE_HELP)] = None,
) -> None:
    """Change how long a dataset's topic keeps each event (by its owner or the operator); the topic follows
    at once. Refused when it is the current retention already."""
    from sharehub.gov.commands import SetDatasetRetention
    from sharehub.gov.views import KEPT_FOR_EVER

    if (retention_ms is None) == (not keep_for_ever):
        raise typer.BadParameter(
            "give either --retention-ms N or --keep-for-ever", param_hint="--retention-ms"
        )
    kept = KEPT_FOR_EVER if retention_ms is None else retention_ms
    request = SetDatasetRetention(dataset=dataset, retention_ms=kept, reason=reason)
    perform_as(actor, credential_from(credential_file), "set-dataset-retention", request, site)


def perform_as(
    actor: str, credential: str | None, operation: str, request: Any, site: Path | None = None
) -> None:
    """Perform ``operation`` for ``actor`` once it proved to act for it (with ``credential``, or as the
    operator on the hub's machine), its act sealed with the key of its site at ``site`` (default: the
    demo's ``<home>/sites/<actor>`` if there); print the event's summary."""
    from connectors.site import AgencySite
    from services.cli.agency_commands import site_signer
    from services.gov_operations import Caller, authenticate, event_summary, perform
    from services.governance_bootstrap import SITES
    from sharehub.gov.acts import KeyRing

    with Hub() as hub:
        who = authenticate(hub.governance, hub.keys, actor, credential, local_operator=True)
        home = site or hub.home / SITES / actor
        ring = KeyRing()
        if who != hub.governance.operator and (site is not None or AgencySite.is_site(home)):
            ring.add(who, site_signer(home, who, None))
        event = perform(hub.governance_desk(), Caller(who, local=True), operation, request, signer=ring)
    print(json.dumps(event_summary(event)))


def _register_operations() -> None:
    from services.cli.vocabulary_commands import VOCABULARY_OPERATIONS, legal_bases_app, purposes_app
    from services.gov_operations import OPERATIONS

    for operation in OPERATIONS:
        if operation not in HAND_WRITTEN | VOCABULARY_OPERATIONS:
            _operation_command(operation)
    app.add_typer(purposes_app, name="purposes")
    app.add_typer(legal_bases_app, name="legal-bases")


_register_operations()


@app.command("erase")
@reports_errors
def gov_erase(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id")],
    subject: Annotated[str, typer.Option("--subject", help="Key of the record whose subject is erased")],
    requested_by: Annotated[str, typer.Option(help="The dataset's owner, requesting the erasure")],
    approved_by: Annotated[str, typer.Option(help="The central operator, approving it")],
) -> None:
    """Erase a data subject by crypto-shredding; prints the signed receipt (also kept in the hub's home)."""
    from services.erasure import ErasureParts, erase_subject

    with Hub() as hub:
        parts = ErasureParts(hub.governance, hub.keys, hub.publisher, receipts=hub.home / "erasures")
        receipt = erase_subject(
            parts, dataset=dataset, record_key=subject, requested_by=requested_by, approved_by=approved_by
        )
    print(json.dumps(receipt, indent=1))
