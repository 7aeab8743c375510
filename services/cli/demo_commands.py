"""``sharehub demo up|down``: the whole hub on one machine, with demo governance and synthetic members."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import secrets
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from connectors.validated_chunks import PublishReport
from projections.read_model import ReadModelStore
from services import governance_bootstrap, processes
from services.cli.errors import fail, reports_errors
from services.hub import Hub
from sharehub.gov.apply import GovSpec
from sharehub.gov.events import GovernanceEvent
from sharehub.gov.state import GovState
from sharehub.keys import Signer, write_private

app = typer.Typer(help="Run the demo hub locally.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)

SITES = governance_bootstrap.SITES
DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "demo" / "hub.yaml"
DEMO_CONSUMER = "dongthap-ppc"


@app.command("up")
@reports_errors
def up(
    members: Annotated[int, typer.Option(min=1, help="Synthetic party members to publish")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data")] = 384,
    spec: Annotated[Path, typer.Option(help="Governance YAML")] = DEFAULT_SPEC,
) -> None:
    """Start Kafka, load governance, publish synthetic members, start the worker and the API."""
    with Hub() as hub:
        bring_up(hub, members, seed, spec)


def bring_up(hub: Hub, members: int, seed: int, spec: Path) -> None:
    from services.governance_bootstrap import issue_credential, read_spec
    from tooling.kafka_local import LocalKafka

    settings = hub.settings
    if settings.kafka_bootstrap is None:
        err.print("starting the local Kafka broker (first run downloads its jars with Maven)…")
        LocalKafka(settings.home, settings.cache_dir, settings.local_kafka_port).start()
    wanted = read_spec(spec)
    events = load_with_sites(hub, wanted, wanted.site_agencies)
    state = hub.governance
    err.print(
        f"governance applied from {spec}: {len(events)} new events, {len(state.agencies_)} agencies, "
        f"{len(state.datasets_)} datasets, {len(state.agreements())} agreements"
    )

    signers = open_sites(hub, read_spec(spec).site_agencies)
    err.print(
        f"agency sites in {settings.home / SITES}: {', '.join(sorted(signers))} (each holds its own key)"
    )

    worker_pid, worker_log = processes.start(settings.home, "projector", ["project"])
    api_pid, api_log = processes.start(settings.home, "api", ["serve"])
    base = f"https://{settings.api_host}:{settings.api_port}"
    wait_for_api(base, settings.ca_file, api_log)
    connect_sites(hub, base, sorted(signers))

    report = publish_from_the_owners_site(settings.home / SITES / "coc", members, seed)
    err.print(f"published {report.published} party-members events from the site of coc")
    store = wait_for_the_read_model(hub, members, worker_log)
    token = issue_credential(hub, DEMO_CONSUMER)
    auditor = settings.home / SITES / "cic"
    purpose = demo_purpose(state, DEMO_CONSUMER, "party-members")
    records_url = (
        f"{base}/v1/consumers/{DEMO_CONSUMER}/datasets/party-members/records?limit=3&purpose={purpose}"
    )
    typer.echo(
        f"""
sharehub demo is up.
  Kafka            {settings.bootstrap}
  projection       pid {worker_pid}, log {worker_log}
  query API        {base}  (OpenAPI: {base}/docs), log {api_log}
  hub CA           {settings.ca_file.resolve()}  (the API's and the broker's certificates chain to it)
  read model       {DEMO_CONSUMER}: {store.count("party-members")} party members, granted fields only
  state            {settings.home.resolve()}

Read the Dong Thap Provincial Party Committee's read model:
  curl -s --cacert '{settings.ca_file.resolve()}' -H 'Authorization: Bearer {token}' '{records_url}'

Verify every signature and chain on the log:  .venv/bin/sharehub audit verify
... as the auditor, from its own site:        SHAREHUB_HOME={auditor} .venv/bin/sharehub audit verify
Stop everything:                              make demo-down
"""
    )


def demo_purpose(state: GovState, consumer: str, dataset: str) -> str:
    """A purpose the consumer's agreement for ``dataset`` names (what its queries state), or, under an
    agreement of free-text purpose, a word of the demo's own."""
    agreement = state.active_agreement(consumer, dataset, dt.datetime.now(dt.UTC))
    return agreement.purposes[0] if agreement is not None and agreement.purposes else "demo"


def publish_from_the_owners_site(site: Path, members: int, seed: int) -> PublishReport:
    """The members, published from the Central Organization Commission's own site through the agency SDK:
    its key, the hub's key service, its broker login; straight from the generator, so no member's data is
    written to a file."""
    from connectors.sdk import open_publisher
    from connectors.site import PASSPHRASE_BESIDE, read_passphrase
    from tooling.synthetic import generate_party_members

    with open_publisher(site, "party-members", read_passphrase(site / PASSPHRASE_BESIDE)) as publisher:
        return publisher.publish_records(generate_party_members(members, seed))


def wait_for_the_read_model(hub: Hub, members: int, worker_log: Path) -> ReadModelStore:
    store = hub.store(DEMO_CONSUMER)
    deadline = time.monotonic() + 180
    while store.count("party-members") < members:
        if time.monotonic() > deadline:
            raise fail(f"the read model of {DEMO_CONSUMER} did not fill within 180 s; see {worker_log}")
        if processes.running_pid(hub.home, "projector") is None:
            raise fail(f"the projection worker stopped; see {worker_log}")
        time.sleep(1)
    return store


def load_with_sites(
    hub: Hub, spec: GovSpec, agencies: list[str], *, topics: bool = True
) -> list[GovernanceEvent]:
    """Apply ``spec``, the acts of ``agencies`` signed with the keys of their sites on this machine (made
    here if missing, see :func:`sites_for`); their keys are registered from their requests."""
    from services.governance_bootstrap import load

    events = sites_for(hub, spec, agencies, topics=topics)
    return events + load(hub.governance_desk(), spec, topics=topics)


def sites_for(hub: Hub, spec: GovSpec, agencies: list[str], *, topics: bool = True) -> list[GovernanceEvent]:
    """The sites of ``agencies`` on this machine, made once the hub's own acts of ``spec`` (agencies,
    datasets) are applied: a site's key may count only from when its agency exists. Returns those acts."""
    from services.governance_bootstrap import apply_spec, plan_spec

    desk = hub.governance_desk()
    planned = plan_spec(desk, spec, broker=topics)
    # Up to the first agreement's proposal: agencies, vocabulary, datasets (all the operator's).
    hubs_own = list(itertools.takewhile(lambda c: c.args["actor"] == spec.operator, planned))
    events = apply_spec(desk, hubs_own, topics=False)
    make_sites(hub, agencies)
    return events


def make_sites(hub: Hub, agencies: list[str]) -> None:
    """Each agency's site under ``<home>/sites/<agency>``, made at the first run: its key, and a passphrase
    file beside it, a demo's stand-in for what a real site types or keeps on other media. ``gov apply``
    registers their keys from their requests and seals each agency's acts with its site's key."""
    from connectors.site import PASSPHRASE_BESIDE, AgencySite, read_passphrase

    for agency in agencies:
        home = hub.home / SITES / agency
        secret = home / PASSPHRASE_BESIDE
        if not AgencySite.is_site(home):
            home.mkdir(parents=True, mode=0o700)
            write_private(secret, base64.b64encode(secrets.token_bytes(24)) + b"\n")
            AgencySite.init(home, agency, read_passphrase(secret))


def open_sites(hub: Hub, agencies: list[str]) -> dict[str, Signer]:
    """Each agency's site under ``<home>/sites/<agency>`` (made if missing), its keys registered from its
    requests; the sites' signing keys."""
    from connectors.site import PASSPHRASE_BESIDE, AgencySite, read_passphrase
    from services.gov_operations import Caller, perform
    from sharehub.gov.key_request import read_key_request

    make_sites(hub, agencies)
    signers: dict[str, Signer] = {}
    desk = hub.governance_desk()
    state = hub.governance_state(refresh=True)  # read once: registering one site's key changes no other's
    for agency in agencies:
        home = hub.home / SITES / agency
        secret = home / PASSPHRASE_BESIDE
        site = AgencySite(home)
        registered = {k.key_id for k in state.agency(agency).keys}
        for key in site.keys:
            if key.key_id not in registered:
                request = read_key_request(site.request_path(key.label).read_text(encoding="utf-8"))
                perform(desk, Caller(state.operator, local=True), "register-key", request)
        signers[agency] = site.signing_key(read_passphrase(secret))
    return signers


def wait_for_api(base: str, ca_file: Path, api_log: Path, timeout: float = 120) -> None:
    import ssl

    import httpx

    tls = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2, verify=tls).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise fail(f"the API did not answer within {timeout:.0f} s; see {api_log}")
        time.sleep(0.3)


def connect_sites(hub: Hub, api: str, agencies: list[str]) -> None:
    """Give each site that publishes (an owner's) or audits (the auditor's) what it takes: the hub's
    addresses and pinned trust, the hub CA's certificate, an API credential, and a client certificate the
    hub CA signs for a TLS key the site makes (a demo hands these over on one machine)."""
    from connectors.sdk import BrokerLogin, HubAddress, connect, is_connected, make_tls_request
    from connectors.site import PASSPHRASE_BESIDE, read_passphrase
    from services.governance_bootstrap import issue_credential
    from sharehub import pki
    from sharehub.gov import anchors
    from sharehub.gov.views import AUDITOR_KIND

    settings = hub.settings
    state = hub.governance
    wanted = set(state.owners()) | {a.id for a in state.agencies_.values() if a.kind == AUDITOR_KIND}
    ca = pki.HubCA.load(settings.tls_dir)
    for agency in agencies:
        home = hub.home / SITES / agency
        if agency not in wanted or is_connected(home):
            continue
        request = make_tls_request(home, state.topic_prefix, read_passphrase(home / PASSPHRASE_BESIDE))
        certificate = ca.sign_csr(request.read_bytes(), hub.principal(agency))
        connect(
            home,
            HubAddress(api, settings.mtls_bootstrap),
            trust=anchors.path(hub.home).read_bytes(),
            ca=hub.ca_bundle(),
            credential=issue_credential(hub, agency),
            login=BrokerLogin(certificate=certificate),
        )


@app.command("down")
@reports_errors
def down() -> None:
    """Stop the API, the worker and the local broker."""
    from sharehub.settings import Settings
    from tooling.kafka_local import LocalKafka

    settings = Settings()
    for name in ("api", "projector"):
        if processes.stop(settings.home, name):
            err.print(f"stopped {name}")
    if settings.kafka_bootstrap is None:
        LocalKafka(settings.home, settings.cache_dir, settings.local_kafka_port).stop()
        err.print("stopped the local Kafka broker")
