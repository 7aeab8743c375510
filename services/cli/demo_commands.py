"""``sharehub demo up|down``: the whole hub on one machine, with demo governance and synthetic members."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services import processes
from services.cli.errors import command_hub, fail, reports_errors

app = typer.Typer(help="Run the demo hub locally.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)

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
    from services.governance_bootstrap import issue_credential, load, read_spec
    from tooling.kafka_local import LocalKafka
    from tooling.synthetic import generate_party_members

    hub = command_hub()
    settings = hub.settings
    if settings.kafka_bootstrap is None:
        err.print("starting the local Kafka broker (first run downloads its jars with Maven)…")
        LocalKafka(settings.home, settings.cache_dir, settings.local_kafka_port).start()
    events = load(hub, read_spec(spec))
    state = hub.governance
    err.print(
        f"governance applied from {spec}: {len(events)} new events, {len(state.agencies_)} agencies, "
        f"{len(state.datasets_)} datasets, {len(state.agreements())} agreements"
    )

    # Straight from the generator: the members' personal data is never written to a file in the hub's home.
    publisher = hub.publisher("coc", "party-members")
    report = publisher.publish_records(generate_party_members(members, seed))
    err.print(f"published {report.published} party-members events as the Central Organization Commission")

    worker_pid, worker_log = processes.start(settings.home, "projector", ["project"])
    api_pid, api_log = processes.start(settings.home, "api", ["serve"])
    store = hub.store(DEMO_CONSUMER)
    deadline = time.monotonic() + 180
    while store.count("party-members") < members:
        if time.monotonic() > deadline:
            raise fail(f"the read model of {DEMO_CONSUMER} did not fill within 180 s; see {worker_log}")
        if processes.running_pid(settings.home, "projector") is None:
            raise fail(f"the projection worker stopped; see {worker_log}")
        time.sleep(1)
    token = issue_credential(hub, DEMO_CONSUMER)
    base = f"https://{settings.api_host}:{settings.api_port}"
    records_url = f"{base}/v1/consumers/{DEMO_CONSUMER}/datasets/party-members/records?limit=3&purpose=demo"
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
Stop everything:                              make demo-down
"""
    )


@app.command("down")
@reports_errors
def down() -> None:
    """Stop the API, the worker and the local broker."""
    from tooling.kafka_local import LocalKafka

    settings = command_hub().settings
    for name in ("api", "projector"):
        if processes.stop(settings.home, name):
            err.print(f"stopped {name}")
    if settings.kafka_bootstrap is None:
        LocalKafka(settings.home, settings.cache_dir, settings.local_kafka_port).stop()
        err.print("stopped the local Kafka broker")
