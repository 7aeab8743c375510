"""``sharehub agency``: run at an agency's own site, where its signing keys are made and stay."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from connectors.site import AgencySite
from services.cli.errors import reports_errors
from sharehub.errors import InputError
from sharehub.keys import Signer
from sharehub.pkcs11_token import SOFTHSM_MODULE
from sharehub.token_signer import Pkcs11Token

if TYPE_CHECKING:
    from connectors.dataset_publishing import DatasetPublishing

app = typer.Typer(help="An agency's own site: its signing keys and their registration requests.")
err = Console(stderr=True, soft_wrap=True)

PASSPHRASE_ENV = "SHAREHUB_SIGNING_PASSPHRASE_FILE"

Home = Annotated[Path | None, typer.Option("--home", help="The site's directory (default: SHAREHUB_HOME)")]
PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        help=f"Owner-only file holding the site's passphrase, on a token site the token's user PIN (else "
        f"{PASSPHRASE_ENV}, else a prompt)"
    ),
]
Pkcs11Module = Annotated[
    Path | None,
    typer.Option(
        help=f"Make the key in a PKCS#11 token: its module (default with --token: {SOFTHSM_MODULE})"
    ),
]
TokenLabel = Annotated[
    str | None,
    typer.Option(
        "--token", help="Make the key in the PKCS#11 token with this label (the PIN is the passphrase)"
    ),
]
Label = Annotated[str, typer.Option(help="The key's label: its id is AGENCY/sign/LABEL")]
ValidFrom = Annotated[
    str | None, typer.Option(help="When the key starts to count, ISO 8601 with a zone (default: now)")
]


def _home(given: Path | None) -> Path:
    if given is not None:
        return given
    from sharehub.settings import Settings

    return Settings().home


def _passphrase(given: Path | None, *, new: bool, site: Path | None = None) -> bytes:
    """From ``--passphrase-file``, else SHAREHUB_SIGNING_PASSPHRASE_FILE, else (an existing key) the file a
    site keeps beside its keys (the demo's sites do), else a prompt."""
    from connectors.site import PASSPHRASE_BESIDE, read_passphrase

    path = given or (Path(os.environ[PASSPHRASE_ENV]) if os.environ.get(PASSPHRASE_ENV) else None)
    if path is None and site is not None and (site / PASSPHRASE_BESIDE).is_file():
        path = site / PASSPHRASE_BESIDE
    if path is not None:
        return read_passphrase(path)
    text: str = typer.prompt(
        "passphrase of the site's keys", hide_input=True, confirmation_prompt=new, err=True
    )
    return text.encode()


def _token(module: Path | None, label: str | None, site: AgencySite | None = None) -> Pkcs11Token | None:
    """The token named on the command line; without one, the token of the site's current key (a rotation
    stays in the token), else None (a key file)."""
    if label is None:
        if module is not None:
            raise typer.BadParameter("name the token too (--token LABEL)", param_hint="--pkcs11-module")
        current = None if site is None else site.current_key
        return None if current is None else current.token
    return Pkcs11Token(module or SOFTHSM_MODULE, label)


def _moment(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("not ISO 8601", param_hint="--valid-from") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("give a zone (e.g. 2026-12-31T00:00:00+07:00)", param_hint="--valid-from")
    return moment


def _site_of(home: Path, agency: str) -> AgencySite:
    site = AgencySite(home)
    if site.agency != agency:
        raise InputError(f"{home} is the site of {site.agency!r}, not of {agency!r}")
    return site


def site_signer(home: Path, agency: str, passphrase_file: Path | None) -> Signer:
    """The signing key of ``agency``'s site at ``home``."""
    return _site_of(home, agency).signing_key(_passphrase(passphrase_file, new=False, site=home))


def site_passphrase(home: Path, passphrase_file: Path | None = None) -> bytes:
    """The passphrase of the site's keys at ``home`` (file, environment, the file beside them, a prompt)."""
    return _passphrase(passphrase_file, new=False, site=home)


def site_publisher(
    home: Path, agency: str, dataset: str, passphrase_file: Path | None, processes: int = 1
) -> DatasetPublishing:
    """A publisher of ``dataset`` running entirely from ``agency``'s connected site at ``home``; with
    ``processes`` above 1, sealing from that many processes (:mod:`connectors.lane_split`)."""
    from connectors.sdk import open_lane_split_publisher, open_publisher

    _site_of(home, agency)
    passphrase = _passphrase(passphrase_file, new=False, site=home)
    if processes > 1:
        return open_lane_split_publisher(home, dataset, passphrase, processes)
    return open_publisher(home, dataset, passphrase)


@app.command("init")
@reports_errors
def init(
    agency: Annotated[str, typer.Argument(help="The agency's id, as governance registered it")],
    home: Home = None,
    passphrase_file: PassphraseFile = None,
    label: Label = "1",
    valid_from: ValidFrom = None,
    pkcs11_module: Pkcs11Module = None,
    token: TokenLabel = None,
) -> None:
    """Make the agency's site: its first signing key (encrypted with the passphrase, or made inside a
    PKCS#11 token whose user PIN the passphrase is) and the registration request to send to governance,
    signed by that key. The private key never leaves the site (nor the token)."""
    where = _home(home)
    held_by = _token(pkcs11_module, token)
    secret = _passphrase(passphrase_file, new=held_by is None)
    site, _ = AgencySite.init(
        where, agency, secret, label=label, valid_from=_moment(valid_from), token=held_by
    )
    err.print(f"site of {agency} made in {where}; key {site.current}")
    print(site.request_path(label))


@app.command("new-key")
@reports_errors
def new_key(
    label: Label,
    home: Home = None,
    passphrase_file: PassphraseFile = None,
    valid_from: ValidFrom = None,
    pkcs11_module: Pkcs11Module = None,
    token: TokenLabel = None,
) -> None:
    """Make the site's next signing key and its registration request, which replaces the current key when
    governance registers it (a rotation). A key in a token is followed by one in the same token, unless
    --token names another."""
    where = _home(home)
    site = AgencySite(where)
    held_by = _token(pkcs11_module, token, site)
    secret = _passphrase(passphrase_file, new=held_by is None, site=where)
    site.new_key(secret, label=label, valid_from=_moment(valid_from), token=held_by)
    err.print(f"key {site.current} made; register {site.request_path(label)} before publishing with it")
    print(site.request_path(label))


@app.command("sign-act")
@reports_errors
def sign_act(
    operation: Annotated[
        str, typer.Argument(help="The governance operation: propose, consent, approve, ...")
    ],
    request: Annotated[str, typer.Option("--request", help="The operation's request: JSON, or @FILE")],
    home: Home = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Sign, with this site's key, the governance act REQUEST asks for, against governance as the hub's log
    has it now (its rules are checked here too); print the body to POST to /v1/gov/OPERATION with the
    site's credential: the request, its times fixed, and its act_seal. The hub checks the seal and
    countersigns; the site's key never leaves it."""
    from connectors.sdk import SiteSession
    from services.act_signing import seal_request, site_body, with_fixed_times
    from services.gov_operations import parse_request
    from sharehub.gov.commands import json_object

    where = _home(home)
    site = AgencySite(where)
    secret = _passphrase(passphrase_file, new=False, site=where)
    text = request
    if request.startswith("@"):
        try:
            text = Path(request[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--request {request}: {exc}") from None
    now = dt.datetime.now(dt.UTC)
    parsed = with_fixed_times(parse_request(operation, json_object(text, "the request")), now)
    state = SiteSession(where, secret).governance()
    seal = seal_request(state, site.signing_key(secret), site.agency, operation, parsed, now)
    print(json.dumps(site_body(parsed, seal), ensure_ascii=False))


@app.command("show")
@reports_errors
def show(home: Home = None) -> None:
    """The site's agency, its keys and the one it signs with."""
    site = AgencySite(_home(home))
    print(f"agency\t{site.agency}")
    for key in site.keys:
        where = "file" if key.token is None else f"token {key.token.label} ({key.token.module})"
        print(f"key\t{key.key_id}\t{where}\t{'signing' if key.key_id == site.current else ''}")


@app.command("csr")
@reports_errors
def csr(
    home: Home = None,
    topic_prefix: Annotated[
        str, typer.Option(help="The hub's topic prefix (its trust.json names it)")
    ] = "sharehub",
    passphrase_file: PassphraseFile = None,
) -> None:
    """Make the site's TLS key for the broker (it stays here, encrypted with the site's passphrase) and a
    certificate signing request naming the agency's principal; send the request to the hub ('sharehub tls
    sign --agency AGENCY FILE')."""
    from connectors.sdk import make_tls_request

    where = _home(home)
    print(make_tls_request(where, topic_prefix, site_passphrase(where, passphrase_file)))


@app.command("connect")
@reports_errors
def connect(
    api: Annotated[str, typer.Option(help="The hub's API address, e.g. https://hub.example:8384")],
    bootstrap: Annotated[
        str, typer.Option(help="The hub's Kafka bootstrap address (mutual TLS with --certificate)")
    ],
    trust: Annotated[
        Path, typer.Option(help="The hub's trust.json (its operator's public key), from the hub")
    ],
    ca: Annotated[Path, typer.Option(help="The hub CA's certificate (ca.pem), from the hub")],
    credential_file: Annotated[Path, typer.Option(help="File holding the agency's API credential")],
    certificate: Annotated[
        Path | None, typer.Option(help="The client certificate the hub CA signed for the site's 'agency csr'")
    ] = None,
    password_login: Annotated[
        bool,
        typer.Option(
            "--password-login",
            help="Instead of a certificate: make a SCRAM password here and have the hub set it on the broker "
            "(sent once over HTTPS; only the site keeps it)",
        ),
    ] = False,
    home: Home = None,
) -> None:
    """Record at the site how it reaches the hub, whom it trusts and as whom it logs in; then 'sharehub
    publish' and 'sharehub audit verify' run from the site (SHAREHUB_HOME=the site) with its own identity."""
    from connectors.sdk import BrokerLogin, HubAddress
    from connectors.sdk import connect as connect_site

    where = _home(home)
    try:
        if password_login and certificate is not None:
            raise InputError("log in with --certificate or with --password-login, not both")
        login = (
            BrokerLogin.new_password()
            if password_login
            else BrokerLogin(certificate=certificate.read_bytes() if certificate is not None else None)
        )
        trusted, ca_pem = trust.read_bytes(), ca.read_bytes()
        credential = credential_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the hub's settings: {exc}") from None
    address = HubAddress(api, bootstrap)
    connect_site(where, address, trust=trusted, ca=ca_pem, credential=credential, login=login)
    err.print(f"the site at {where} now reaches the hub at {api} and {bootstrap}")


@app.command("pseudonym")
@reports_errors
def pseudonym_of(
    dataset: Annotated[str, typer.Option(help="A dataset the site's agency owns")],
    key: Annotated[str, typer.Option(help="The record's key, e.g. a member id")],
    home: Home = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """The pseudonym (subject ref, hex) of one record of a dataset the site owns: what the owner hands an
    auditor who asks ``sharehub audit access --subject-ref``. The routing key comes from the hub's key
    service into memory only (the release is itself in the access log) and never leaves this process."""
    from connectors.sdk import SiteSession
    from sharehub.envelope import pseudonym

    site_home = _home(home)
    session = SiteSession(site_home, site_passphrase(site_home, passphrase_file))
    keys = session.key_service()
    try:
        print(pseudonym(keys.routing_key(dataset), key).hex())
    finally:
        keys.close()


@app.command("backup")
@reports_errors
def backup(
    out: Annotated[Path, typer.Argument(help="The archive to write (a tar file, new)")],
    home: Home = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Write the site's backup to OUT: its encrypted keys and TLS key, certificate, journals and the hub's
    addresses; its credential and broker password sealed under a key derived from the passphrase (which is
    not in it: keep it apart). A key inside a token is backed up by the token's own means."""
    from services.site_backup import create_site_backup

    site = _home(home)
    manifest = create_site_backup(site, _passphrase(passphrase_file, new=False, site=site), out)
    for member in manifest.members:
        print(f"{member.sha256}  {member.name}{'  (sealed)' if member.sealed else ''}")
    err.print(f"backup of the site of {manifest.agency!r} written to {out}", markup=False, highlight=False)


@app.command("restore")
@reports_errors
def restore(
    archive: Annotated[Path, typer.Argument(help="A site's backup archive")],
    home: Annotated[Path, typer.Option("--home", help="The new site's directory: absent or empty")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Restore a site's backup into a new or empty directory, everything checked first (the members, the
    seal, the key opening with the passphrase); a refusal changes nothing."""
    from services.site_backup import restore_site

    manifest = restore_site(archive, home, _passphrase(passphrase_file, new=False))
    print(home)
    err.print(f"restored the site of {manifest.agency!r} into {home}", markup=False, highlight=False)
