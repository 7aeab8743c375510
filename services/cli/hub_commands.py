"""Commands that run the hub: governance, credentials, publishing, projection, query API, audit."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from services.cli.errors import EXIT_FAILURE, reports_errors
from services.cli.progress import line_progress
from services.hub import Hub
from sharehub.errors import InputError

if TYPE_CHECKING:
    from connectors.dataset_publishing import DatasetPublishing
    from services.audit import AuditReport
    from services.audit import TimeWindow as AuditWindow
    from services.cli.progress import Tracker
    from services.rebuild import ReplayParts
    from sharehub.gov.state import GovState
    from sharehub.history import HistoryHorizon
    from sharehub.settings import Settings

credentials_app = typer.Typer(help="Consumer credentials for the query API.", no_args_is_help=True)
audit_app = typer.Typer(help="Replay the log and verify it.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@credentials_app.command("issue")
@reports_errors
def credentials_issue(consumer: Annotated[str, typer.Argument(help="Consumer agency id")]) -> None:
    """Issue a bearer credential to an agency (the operator signs), valid 90 days. Printed once; the log keeps
    its hash. 'sharehub gov credentials' also rotates, revokes and lists them."""
    from services.governance_bootstrap import issue_credential

    with Hub() as hub:
        print(issue_credential(hub, consumer))


@reports_errors
def publish(
    file: Annotated[
        Path, typer.Argument(help="JSON Lines file, one record per line", exists=True, dir_okay=False)
    ],
    agency: Annotated[str, typer.Option("--as", help="Publishing agency (must own the dataset)")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id")],
    event_type: Annotated[str, typer.Option(help="UPSERTED or CORRECTED")] = "UPSERTED",
    site: Annotated[
        Path | None,
        typer.Option(help="The agency's site (see 'sharehub agency init'): sign with its key, not the hub's"),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="Owner-only file holding the site keys' passphrase (else a prompt)"),
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Lines between two checkpoints", min=1)] = 10_000,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar")] = False,
    processes: Annotated[
        int,
        typer.Option(
            help="Seal from this many processes, each its share of the dataset's lanes (connected sites)",
            min=1,
            max=64,
        ),
    ] = 1,
) -> None:
    """Validate, seal and publish each line of FILE exactly once: run again on the same file, it resumes
    where the last run stood (nothing is sent twice); bad lines are reported by number, good lines go."""
    from connectors.exactly_once import ExactlyOnce
    from connectors.file_drop import FileFacts
    from connectors.journal import Journal
    from connectors.jsonl_source import read_jsonl
    from sharehub.settings import Settings

    home = Settings().home
    facts = FileFacts.of(file)
    opened = _publisher(home, site, agency, dataset, passphrase_file, processes)
    with Journal(home, dataset) as journal, opened as pub:
        core = ExactlyOnce(pub, journal, checkpoint_every=checkpoint_every)
        with line_progress(err, quiet=quiet) as tracker:
            report = core.publish(
                facts.source, read_jsonl(file), name=file.name, total=facts.lines, event_type=event_type,
                progress=None if tracker is None else tracker(file.name, facts.lines),
            )  # fmt: skip
    if report.already_done:
        err.print(f"{file} was published before: nothing sent again")
        return
    for bad in report.rejected:
        err.print(f"{file}:{bad.number}: {bad.reason}", markup=False, highlight=False)
    err.print(
        f"published {report.published} events to {pub.topic}, skipped {report.skipped} already published, "
        f"rejected {len(report.rejected)} lines"
    )
    if report.rejected:
        raise typer.Exit(EXIT_FAILURE)


@contextmanager
def _publisher(
    home: Path, site: Path | None, agency: str, dataset: str, passphrase_file: Path | None, processes: int
) -> Iterator[DatasetPublishing]:
    """From the agency's connected site (the SDK; from ``processes`` processes), else the hub's publisher
    signing with a site's key or the hub's own (the hub closed with it)."""
    from connectors.sdk import is_connected
    from connectors.site import AgencySite
    from services.cli.agency_commands import site_publisher, site_signer

    if site is None and AgencySite.is_site(home):
        site = home
    if site is not None and is_connected(site):  # the agency SDK, entirely from the agency's site
        with site_publisher(site, agency, dataset, passphrase_file, processes) as publisher:
            yield publisher
        return
    if processes > 1:
        raise InputError(
            "--processes needs a connected agency site (each process opens the site's key and asks the "
            "hub's key service): connect one with 'sharehub agency connect', or publish with one process"
        )
    signer = None if site is None else site_signer(site, agency, passphrase_file)
    with Hub() as hub, hub.publisher(agency, dataset, signer=signer) as publisher:
        if signer is not None:
            publisher.on_close(signer.close)  # a token's session
        yield publisher


#: The worker's /healthz and /readyz port (projections.health); default SHAREHUB_WORKER_HEALTH_PORT (none).
HealthPort = Annotated[
    int | None,
    typer.Option(help="Serve /healthz and /readyz on this local port (default SHAREHUB_WORKER_HEALTH_PORT)"),
]

project_app = typer.Typer(
    help="The projection worker, supervised (without a command); the worker alone (run); rebuilding read "
    "models.",
    invoke_without_command=True,
)


@project_app.callback()
@reports_errors
def project(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Log level of the worker")] = "INFO",
    max_pause: Annotated[
        float, typer.Option(help="Longest pause, in seconds, before restarting a worker that failed", min=0.1)
    ] = 60.0,
    health_port: HealthPort = None,
) -> None:
    """Run the projection worker until stopped, restarting it whenever it exits: at once when it starts over
    (a new dataset or consumer, a backfill), after a pause that doubles up to --max-pause when it failed."""
    if ctx.invoked_subcommand is not None:
        return
    from services.supervisor import Supervisor

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    worker = [sys.executable, "-m", "services", "project", "run", "--loglevel", loglevel]
    if health_port is not None:
        worker += ["--health-port", str(health_port)]
    first_pause = min(1.0, max_pause)
    raise typer.Exit(Supervisor(worker, first_pause_s=first_pause, max_pause_s=max_pause).run())


@project_app.command("run")
@reports_errors
def project_run(
    loglevel: Annotated[str, typer.Option(help="Log level of the worker")] = "INFO",
    health_port: HealthPort = None,
) -> None:
    """The projection worker alone, unsupervised: Kafka → verify → decrypt → agreements → read models. It
    exits with status 75 when it must start over (its supervisor starts a fresh one)."""
    from projections.engine_process import EngineProcess
    from projections.health import HealthListener, Readiness
    from projections.worker import ProjectionWorker
    from services.principals import PROJECTOR_PRINCIPAL
    from services.projection_engine import hub_engine
    from services.supervisor import START_OVER
    from sharehub.kafka import broker_answers

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The worker's composition root: its broker login and governance here; the engine's parts are assembled
    # in the engine process (:func:`services.projection_engine.hub_engine`).
    with Hub(service=PROJECTOR_PRINCIPAL) as hub:
        engine = EngineProcess(hub_engine)  # verifies, decrypts and writes on a core of its own
        try:
            gov = hub.governance
            worker = ProjectionWorker(
                engine,
                hub.kafka,
                group=gov.projector_group,
                quarantine_topic=gov.quarantine_topic,
                datadir=hub.home / "projector",
                history_horizons=lambda: {d: h.at for d, h in _history_horizons(hub, hub.settings).items()},
                session_timeout_s=hub.settings.worker_session_timeout_s,
            )
            port = health_port or hub.settings.worker_health_port
            with ExitStack() as probes:
                if port is not None:
                    readiness = Readiness(worker, lambda: broker_answers(hub.kafka))
                    probes.enter_context(HealthListener(readiness, hub.settings.worker_health_host, port))
                restart = worker.run(loglevel=loglevel.upper())
        finally:
            engine.close()
    if restart:
        # A fresh process reads governance, topics and read-model positions anew.
        raise typer.Exit(START_OVER)


@project_app.command("prune-history")
@reports_errors
def project_prune_history(
    days: Annotated[
        float | None,
        typer.Option(help="Days of history to keep in every dataset (default SHAREHUB_HISTORY_DAYS)"),
    ] = None,
) -> None:
    """Have every read model forget now the past versions older than the history it keeps, as the running
    worker does every hour: in each dataset, that of the hub's days (DAYS) or of the dataset's declared
    retention, whichever is shorter. Reads "as of" a time within it answer as before; current rows stay."""
    if days is not None and days <= 0:
        raise InputError(f"--days must be more than 0, not {days:g}")
    with Hub() as hub:
        settings = hub.settings if days is None else hub.settings.model_copy(update={"history_days": days})
        horizons = _history_horizons(hub, settings)
        if not horizons:
            raise InputError(
                "give --days, or set SHAREHUB_HISTORY_DAYS: no dataset declares a retention, so every "
                "version is kept otherwise"
            )
        before = {dataset: horizon.at for dataset, horizon in horizons.items()}
        for consumer in hub.consumers():
            forgotten = hub.store(consumer).prune_history(before)
            print(f"{consumer}\t{forgotten}")
    for dataset, horizon in sorted(horizons.items()):
        since = horizon.at.isoformat(timespec="seconds")
        err.print(f"{dataset}: versions from before {since} that no read needs are gone ({horizon.kept})")


def _history_horizons(hub: Hub, settings: Settings) -> dict[str, HistoryHorizon]:
    """Each dataset's history horizon now, by ``settings`` and the hub's current governance."""
    from sharehub.history import history_horizons

    return history_horizons(settings, hub.governance.datasets(), dt.datetime.now(dt.UTC))


@project_app.command("rebuild")
@reports_errors
def project_rebuild(
    consumer: Annotated[str | None, typer.Option("--consumer", help="Consumer agency id")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every consumer's read model, one after another")
    ] = False,
) -> None:
    """Replay the log into a fresh read model for CONSUMER (or for every consumer, --all) and swap it in
    atomically; prints each state hash. The worker must be stopped."""
    from services.rebuild import rebuild

    if (consumer is None) == (not every):
        raise InputError("give --consumer C or --all")
    with Hub() as hub:
        for name in hub.consumers() if every else [str(consumer)]:
            done = rebuild(replay_parts(hub), hub, name)
            err.print(
                f"{name}: {done.events:,} events replayed, {done.rows:,} rows, {done.quarantined} refused"
            )
            print(f"{done.consumer}\t{done.state_hash}", flush=True)


DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]
#: The two ends of an audit command's time range, ``[--from, --to)``.
Since = Annotated[
    dt.datetime | None,
    typer.Option("--from", formats=DATE_FORMATS, help="From then (UTC unless a zone is given)"),
]
Until = Annotated[
    dt.datetime | None,
    typer.Option("--to", formats=DATE_FORMATS, help="Before then (UTC unless a zone is given)"),
]


@audit_app.command("verify")
@reports_errors
def audit_verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output, every event")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every event, not only findings")] = False,
    since: Since = None,
    until: Until = None,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes auditing the dataset topics' lanes (default: the CPUs this may use; one for a "
            "small log); the report is the same with any number",
        ),
    ] = None,
    part_size: Annotated[
        int | None,
        typer.Option(
            "--part-size",
            min=1,
            help="Records of a lane a worker takes at a time (default: enough parts to keep every worker "
            "busy); the report is the same with any size",
        ),
    ] = None,
) -> None:
    """Replay the governance log, every dataset topic, the checkpoints and the access log from offset 0
    with public keys only; exit 1 on any finding. From an agency's site (SHAREHUB_HOME=the site, e.g. the
    auditor's), with that agency's own identity and no hub secret."""
    from services.audit import TimeWindow
    from services.cli.audit_output import html_report, print_findings, print_summary

    window = TimeWindow(_utc(since), _utc(until))
    if window.start and window.end and window.start >= window.end:
        raise InputError(f"--from {window.start.isoformat()} is not before --to {window.end.isoformat()}")
    with line_progress(err, quiet=quiet, unit="records") as tracker:
        report = _audit(window, tracker, (workers, part_size), as_json or show_all)
    if html_file is not None:
        html_file.write_text(html_report(report), encoding="utf-8")
    if as_json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print_findings(out, report.events if show_all else report.findings)
        print_summary(out, report)
    if report.findings:
        raise typer.Exit(EXIT_FAILURE)


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=dt.UTC) if moment is not None and moment.tzinfo is None else moment


def _audit(
    window: AuditWindow, tracker: Tracker | None, spread: tuple[int | None, int | None], every_event: bool
) -> AuditReport:
    """The audit from the site of SHAREHUB_HOME: an agency's (the auditor's: its own identity and pinned
    trust only), or the hub's (which may also read its quarantine). ``every_event``: keep every record's
    status (``--json``, ``--all``), not only the findings. ``spread``: the worker processes, and the records
    of a lane each takes at a time."""
    from services.audit import audit_verify

    with _log_source() as (kafka, governance, hub):
        return audit_verify(
            kafka, governance, window=window, progress=tracker, quarantine=hub is not None,
            workers=spread[0], part_size=spread[1], every_event=every_event,
        )  # fmt: skip


@contextmanager
def _log_source() -> Iterator[tuple[str, GovState, Hub | None]]:
    """Where SHAREHUB_HOME reads the log from, with which governance: an agency's site (the auditor's: its
    own identity and pinned trust only; no hub), or the hub's home (and the hub)."""
    from connectors.sdk import CLIENT_CERT_FILE, SiteSession, is_connected
    from services.cli.agency_commands import site_passphrase
    from sharehub.settings import Settings

    home = Settings().home
    if is_connected(home):
        certified = (home / CLIENT_CERT_FILE).is_file()  # its TLS key opens with the site's passphrase
        session = SiteSession(home, site_passphrase(home) if certified else None)
        yield session.kafka, session.governance(), None
        return
    with Hub() as hub:
        yield hub.kafka, hub.governance, hub


keys_app = typer.Typer(
    help="Key management: data-encryption key epochs, the key-encryption key.", no_args_is_help=True
)


@keys_app.command("rotate")
@reports_errors
def keys_rotate(dataset: Annotated[str, typer.Option("--dataset", help="Dataset id")]) -> None:
    """Start a new data-encryption key epoch for DATASET; earlier events keep theirs (no re-encryption)."""
    with Hub() as hub:
        hub.governance.dataset(dataset)
        print(hub.keys.rotate_data_key(dataset))


class KekChoice(StrEnum):
    file = "file"
    pkcs11 = "pkcs11"


@keys_app.command("rewrap")
@reports_errors
def keys_rewrap(
    to: Annotated[
        KekChoice, typer.Option("--to", help="file: a master key file; pkcs11: a key inside a PKCS#11 token")
    ],
    new_master_key_file: Annotated[
        Path | None, typer.Option(help="--to file: the new master key (made owner-only when missing)")
    ] = None,
    pkcs11_module: Annotated[
        Path | None, typer.Option(help="--to pkcs11: the token's library [SHAREHUB_PKCS11_MODULE]")
    ] = None,
    pkcs11_token: Annotated[
        str | None, typer.Option(help="--to pkcs11: the token's label [SHAREHUB_PKCS11_TOKEN]")
    ] = None,
    pkcs11_pin_file: Annotated[
        Path | None,
        typer.Option(help="--to pkcs11: owner-only file holding the user PIN [SHAREHUB_PKCS11_PIN_FILE]"),
    ] = None,
    pkcs11_key_label: Annotated[
        str | None,
        typer.Option(help="--to pkcs11: the key's label, generated when missing [SHAREHUB_PKCS11_KEY_LABEL]"),
    ] = None,
) -> None:
    """Rewrap every key of the key store under another key-encryption key, in one transaction (a failure
    changes nothing); the old blobs are then gone from disk. Stop the hub's services first, and configure
    the hub with the new key-encryption key before starting them again."""
    from services.key_rewrap import RewrapTarget, configure_hint, rewrap_keys
    from sharehub.kek_pkcs11 import Pkcs11Config
    from sharehub.settings import Settings

    if to is KekChoice.pkcs11:
        settings = Settings().model_copy(
            update={
                name: value
                for name, value in {
                    "pkcs11_module": pkcs11_module,
                    "pkcs11_token": pkcs11_token,
                    "pkcs11_pin_file": pkcs11_pin_file,
                    "pkcs11_key_label": pkcs11_key_label,
                }.items()
                if value is not None
            }
        )
        target = RewrapTarget("pkcs11", pkcs11=Pkcs11Config.from_settings(settings))
    else:
        target = RewrapTarget("file", master_key_file=new_master_key_file)
    with Hub() as hub:
        done = rewrap_keys(hub.home, lambda: hub.keys, target)
    print(f"rewrapped {done.keys} keys from {done.from_kek} to {done.to_kek}")
    if not done.log_truncated:
        err.print("warning: a reader held the write-ahead log; it keeps the old blobs until it is truncated")
    err.print(
        "the old key-encryption key opens nothing in this store now. Configure the hub with the new one"
        f" before it starts again: {configure_hint(target)}",
        markup=False,
        highlight=False,
    )


@audit_app.command("access")
@reports_errors
def audit_access(
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's queries")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only queries of this dataset")] = None,
    subject_ref: Annotated[
        str | None,
        typer.Option(help="Only queries that returned the record with this pseudonym (hex; needs --dataset)"),
    ] = None,
    record_key: Annotated[
        str | None,
        typer.Option(help="Only queries that returned this record (needs --dataset; the hub's home only)"),
    ] = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Every answered query of the read models (R7) that matches, oldest first, one JSON object per line:
    who, when, which purpose, under which agreement version, filter, as_of, fields and records returned.
    From the access log alone, so from the auditor's site too (SHAREHUB_HOME=the site). Records are named
    by their pseudonyms: an auditor gets a record's from its owner (``sharehub agency pseudonym``)."""
    from services.access_audit import AccessQuestion, answered, as_json

    if record_key is not None and subject_ref is not None:
        raise InputError("give --record-key or --subject-ref, not both")
    if record_key is not None and dataset is None:
        raise InputError("--record-key needs --dataset: a record's pseudonym depends on its dataset")
    with _log_source() as (kafka, governance, hub):
        if record_key is not None:
            if hub is None:
                raise InputError(
                    "--record-key needs the hub's routing keys: from a site, ask the record's owner for its "
                    "pseudonym and give --subject-ref"
                )
            subject_ref = hub.codec(str(dataset)).pseudonym(record_key).hex()
        question = AccessQuestion(consumer, dataset, subject_ref, _utc(since), _utc(until))
        for record in answered(kafka, governance.access_log_topic, question):
            print(json.dumps(as_json(record), ensure_ascii=False))


@audit_app.command("pack")
@reports_errors
def audit_pack(
    out_file: Annotated[Path, typer.Argument(help="The evidence pack to write (a zip)")],
    consumer: Annotated[
        str | None, typer.Option(help="A consumer's data: every dataset it was granted")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="One subject's records of this dataset")] = None,
    subject_ref: Annotated[
        str | None, typer.Option(help="The subject's pseudonym (32 hex digits; with --dataset)")
    ] = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Export an evidence pack that verifies offline (``audit verify-pack``): the events in range with
    their inclusion proofs and signed checkpoints, the governance log and the keys valid then, the
    agreement versions, the access records, and a report. Prints the trust anchor to check it against."""
    from services.cli.audit_output import print_pack_made
    from services.evidence_gather import make_pack
    from sharehub.evidence_pack import Scope

    scope = Scope.asked(consumer, dataset, subject_ref, _utc(since), _utc(until))
    with _log_source() as (kafka, governance, _):
        data = make_pack(kafka, governance, scope)
    out_file.write_bytes(data)
    print_pack_made(out, out_file, data)


@audit_app.command("verify-pack")
@reports_errors
def audit_verify_pack(
    pack: Annotated[Path, typer.Argument(help="An evidence pack (a zip made by 'audit pack')")],
    anchor: Annotated[
        str | None,
        typer.Option(
            help="The hub's trust anchor (64 hex digits, as 'audit pack' prints it); default: that of the "
            "trust.json of SHAREHUB_HOME (the auditor's own site)"
        ),
    ] = None,
) -> None:
    """Check an evidence pack offline (no broker, no hub, no network) against a trust anchor the auditor
    holds: exit 0 when everything verifies, 1 with the findings otherwise, 2 when it is no pack."""
    from services.cli.audit_output import print_pack_verdict
    from sharehub.evidence_check import verify_pack
    from sharehub.evidence_pack import read_pack_file

    evidence, verdict = verify_pack(read_pack_file(pack), _pack_anchor(anchor))
    print_pack_verdict(out, evidence, verdict)
    if not verdict.ok:
        raise typer.Exit(EXIT_FAILURE)


def _pack_anchor(given: str | None) -> str:
    """The anchor given, or the fingerprint of the trust SHAREHUB_HOME pins (a site's or the hub's)."""
    from sharehub.evidence_pack import ANCHOR, trust_fingerprint
    from sharehub.gov import anchors
    from sharehub.settings import Settings

    if given is not None:
        if not ANCHOR.fullmatch(given):
            raise InputError("--anchor: the trust anchor 'audit pack' prints, 64 lower-case hex digits")
        return given
    home = Settings().home
    if not anchors.exists(home):
        raise InputError(f"no --anchor given and no trust.json at {home}: give the hub's trust anchor")
    return trust_fingerprint(anchors.load(home))


@audit_app.command("state-hash")
@reports_errors
def audit_state_hash(
    consumer: Annotated[str, typer.Option("--consumer", help="Consumer agency id")],
    live: Annotated[
        bool, typer.Option(help="Also print the live read model's hash, and exit 1 if different")
    ] = False,
) -> None:
    """Recompute a consumer's read-model state hash from the log (a scratch replay; nothing live changes)."""
    from services.rebuild import audit_hash

    with Hub() as hub:
        replayed = audit_hash(replay_parts(hub), consumer)
        print(f"log\t{replayed.state_hash}")
        current = hub.store(consumer).state_hash() if live else None
    if current is not None:
        print(f"live\t{current}")
        if current != replayed.state_hash:
            raise typer.Exit(EXIT_FAILURE)


@audit_app.command("reconstruct")
@reports_errors
def audit_reconstruct(
    consumer: Annotated[str, typer.Option("--consumer", help="Consumer agency id")],
    at: Annotated[str, typer.Option("--at", help="ISO 8601 time (UTC unless a zone is given), or 'now'")],
    live: Annotated[
        bool, typer.Option(help="Also print the live read model's hash, and exit 1 if different")
    ] = False,
) -> None:
    """What a consumer's read model held at a past time: dataset events stamped up to it, under governance
    as it stood then, in a scratch store (nothing live changes); prints its state hash."""
    from services.rebuild import scratch
    from services.reconstruct import ReconstructParts, reconstruct

    moment = _moment(at)
    with Hub() as hub:
        pinned = hub.anchors
        parts = ReconstructParts(hub.log, pinned.trust, pinned.topic_prefix, hub.keys, hub.kafka)
        with scratch(hub.settings, consumer) as store:
            done = reconstruct(parts, consumer, moment, store)
        err.print(
            f"{done.events:,} events up to {done.at.isoformat()} ({done.left_out:,} later left out), "
            f"{done.rows:,} rows, {done.quarantined} refused; "
            f"governance as of event {done.governance_sequence}"
        )
        if done.unopenable:
            err.print(
                f"{done.unopenable} record(s) held then can no longer be opened: their subjects were erased "
                "later (the hash cannot equal one taken then)"
            )
        print(f"at\t{done.at.isoformat()}")
        print(f"log\t{done.state_hash}")
        if live:
            current = hub.store(consumer).state_hash()
            print(f"live\t{current}")
            if current != done.state_hash:
                raise typer.Exit(EXIT_FAILURE)


def _moment(text: str) -> dt.datetime:
    """``now``, or an ISO 8601 time (UTC when it gives no zone)."""
    if text.strip().lower() == "now":
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2026-03-01T09:30:00+07:00) nor 'now'"
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@audit_app.command("receipt")
@reports_errors
def audit_receipt(file: Annotated[Path, typer.Argument(help="An erasure receipt (JSON)")]) -> None:
    """Verify an erasure receipt's signature; exit 1 if it does not verify."""
    from services.erasure import load_receipt, verify_receipt

    receipt = load_receipt(file)
    with Hub() as hub:
        verify_receipt(receipt, hub.governance)
    out.print("receipt verifies")


quarantine_app = typer.Typer(
    help="What the projection refused: list it, re-check it after a fix.", no_args_is_help=True
)


@quarantine_app.command("list")
@reports_errors
def quarantine_list(reason: Annotated[str | None, typer.Option(help="Only this reason code")] = None) -> None:
    """Every refused event: source topic, partition, offset, reason, detail (tab-separated)."""
    from services.quarantine_review import quarantined

    with Hub() as hub:
        for e in quarantined(hub.kafka, hub.governance.quarantine_topic):
            if reason is None or e["reason"] == reason:
                print(
                    f"{e['source_topic']}\t{e['source_partition']}\t{e['source_offset']}\t{e['reason']}"
                    f"\t{e['detail']}"
                )


@quarantine_app.command("recheck")
@reports_errors
def quarantine_recheck() -> None:
    """Judge every refused event again under governance and keys as they are now ('sharehub project
    rebuild --consumer C' then takes in what passes)."""
    from services.quarantine_review import recheck

    verdicts: dict[str, int] = {}
    with Hub() as hub:
        for r in recheck(hub, hub.keys, hub.kafka):
            e = r.entry
            verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
            print(
                f"{e['source_topic']}\t{e['source_partition']}\t{e['source_offset']}\t{e['reason']}"
                f"\t{r.verdict}\t{r.now}"
            )
    err.print(
        ", ".join(f"{n} {verdict}" for verdict, n in sorted(verdicts.items())) or "the quarantine is empty"
    )


@quarantine_app.command("redrive")
@reports_errors
def quarantine_redrive() -> None:
    """Re-check every refused event, and have the projection replay each dataset where one passes now, in
    every read model granted it (the running worker does so within seconds; nothing is stopped)."""
    from services.quarantine_review import recheck, redrive

    with Hub() as hub:
        reviews = list(recheck(hub, hub.keys, hub.kafka))
        asked = redrive(hub, hub, reviews)
    passing = sum(1 for r in reviews if r.verdict == "passes")
    for dataset, consumers in asked.items():
        print(f"{dataset}\t{','.join(consumers) or '-'}")
    err.print(
        f"{passing} of {len(reviews)} refused events pass now; "
        + (f"{len(asked)} dataset(s) to be replayed" if asked else "nothing to replay")
    )


def replay_parts(hub: Hub) -> ReplayParts:
    """A replay's parts, from this command's hub, logged in as the operator's tools."""
    from services.rebuild import ReplayParts

    return ReplayParts(governance=hub, keys=hub.keys, kafka=hub.kafka, settings=hub.settings)
