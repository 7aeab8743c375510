"""``sharehub kafka start|stop|status``: the local development broker, or cluster, from the command line.

``start`` prints the bootstrap address (the SASL_SSL listener; a cluster's every node, comma-separated) as
its last stdout line (so ``BOOTSTRAP=$(sharehub kafka start)`` works); everything meant for a human goes to
stderr. ``--brokers 3`` starts a three-node cluster (see :mod:`tooling.kafka_local.cluster`); ``stop`` and
``status`` act on what the home last started, and a later ``start`` without ``--brokers`` starts it again.
When ``SHAREHUB_KAFKA_BOOTSTRAP`` names an external broker, ``start`` and ``stop`` leave it alone and
``status`` checks that it answers. Exit codes: 0 ok, 1 error (one readable message, no traceback), 2 bad
input (a cluster size we do not run, or one that differs from the home's), 3 from ``status`` when a node
is not running.
"""

from __future__ import annotations

import typer

from sharehub.errors import InputError, SharehubError
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafkaCluster, broker_answers, recorded_size

app = typer.Typer(
    no_args_is_help=True,
    help="Run the local Kafka (KRaft, Kafka 3.9.1) that sharehub uses in development: one node, or three.",
)

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_RUNNING = 3


def _local(settings: Settings, brokers: int | None = None) -> LocalKafkaCluster:
    """The cluster of ``brokers`` nodes, by default the size this home last started (else one node)."""
    count = brokers or recorded_size(settings.home) or 1
    return LocalKafkaCluster(settings.home, settings.cache_dir, settings.local_kafka_port, count)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(action: str, exc: Exception) -> typer.Exit:
    _say(f"sharehub kafka {action} failed: {exc}")
    return typer.Exit(EXIT_BAD_INPUT if isinstance(exc, InputError) else EXIT_ERROR)


def _settings(action: str) -> Settings:
    try:
        return Settings()
    except Exception as exc:  # invalid SHAREHUB_* values: report them, not a pydantic traceback
        raise _fail(action, exc) from None


@app.command()
def start(
    brokers: int | None = typer.Option(
        None, "--brokers", help="1 (a lone broker) or 3 (a cluster); default: what this home last ran, or 1."
    ),
) -> None:
    """Start the local broker or cluster (fetching its jars on first use); print its bootstrap address."""
    settings = _settings("start")
    if settings.kafka_bootstrap:
        _say(
            f"An external Kafka broker is configured (SHAREHUB_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}); "
            "not starting a local one."
        )
        typer.echo(settings.kafka_bootstrap)
        return
    try:
        kafka = _local(settings, brokers)
        kafka.check_home()
        already = [s.pid for s in kafka.status() if s.running]
        if len(already) < kafka.count:
            _say(f"Starting the local Kafka ({kafka.count} node(s), state in {kafka.state_dir}) ...")
        bootstrap = kafka.start()
        pids = [s.pid for s in kafka.status()]
    except Exception as exc:  # LocalKafkaError carries the explanation; anything else still gets one
        raise _fail("start", exc) from None
    verb = "already running" if already == pids else "running"
    what = "Kafka broker" if kafka.count == 1 else f"Kafka cluster of {kafka.count} nodes"
    _say(
        f"{what} {verb} (pid {', '.join(map(str, pids))}), bootstrap {bootstrap} (SASL/SCRAM over TLS), "
        f"mutual TLS on {kafka.mtls_bootstrap}; clients verify it with the hub CA, {kafka.ca_file}."
    )
    typer.echo(bootstrap)


@app.command()
def stop() -> None:
    """Stop the local broker, if it runs."""
    settings = _settings("stop")
    if settings.kafka_bootstrap:
        _say(
            f"An external Kafka broker is configured (SHAREHUB_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}); "
            "nothing to stop."
        )
        return
    try:
        stopped = _local(settings).stop()
    except Exception as exc:
        raise _fail("stop", exc) from None
    _say("Local Kafka stopped." if stopped else "No local Kafka broker was running.")


@app.command()
def status() -> None:
    """Tell whether the broker (every node of a cluster) runs and answers (exit 0) or not (exit 3)."""
    settings = _settings("status")
    if settings.kafka_bootstrap:
        try:
            up = broker_answers(_admin_access(settings), timeout=5.0)
        except Exception as exc:
            raise _fail("status", exc) from None
        state = "answering" if up else "NOT answering"
        typer.echo(f"external broker {settings.kafka_bootstrap} (SHAREHUB_KAFKA_BOOTSTRAP): {state}")
        if not up:
            raise typer.Exit(EXIT_NOT_RUNNING)
        return
    try:
        found = _local(settings).status()
    except Exception as exc:
        raise _fail("status", exc) from None
    for number, node in enumerate(found, start=1):
        typer.echo(node.detail if len(found) == 1 else f"node {number}: {node.detail}")
    if not all(node.running for node in found):
        raise typer.Exit(EXIT_NOT_RUNNING)


def _admin_access(settings: Settings) -> str:
    """The external broker's address with the admin login when one is configured (else the bare address)."""
    from services.hub import Hub

    try:
        with Hub(settings) as hub:
            return hub.kafka_admin
    except SharehubError:
        return settings.kafka_bootstrap or settings.bootstrap
