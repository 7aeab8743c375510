"""``sharehub kafka start|stop|status``: the local development broker from the command line.

``start`` prints the bootstrap address (the SASL_SSL listener) as its last stdout line (so
``BOOTSTRAP=$(sharehub kafka start)`` works); everything meant for a human goes to stderr. When
``SHAREHUB_KAFKA_BOOTSTRAP`` names an external broker, ``start`` and ``stop`` leave it alone and ``status``
checks that it answers. Exit codes: 0 ok, 1 error (one readable message, no traceback), 3 from
``status`` when the broker is not running.
"""

from __future__ import annotations

import typer

from sharehub.errors import SharehubError
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafka, broker_answers

app = typer.Typer(
    no_args_is_help=True,
    help="Run the local single-node Kafka broker (KRaft, Kafka 3.9.1) that sharehub uses in development.",
)

EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3


def _local(settings: Settings) -> LocalKafka:
    return LocalKafka(settings.home, settings.cache_dir, settings.local_kafka_port)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(action: str, exc: Exception) -> typer.Exit:
    _say(f"sharehub kafka {action} failed: {exc}")
    return typer.Exit(EXIT_ERROR)


def _settings(action: str) -> Settings:
    try:
        return Settings()
    except Exception as exc:  # invalid SHAREHUB_* values: report them, not a pydantic traceback
        raise _fail(action, exc) from None


@app.command()
def start() -> None:
    """Start the local broker (fetching its jars on first use); print its bootstrap address."""
    settings = _settings("start")
    if settings.kafka_bootstrap:
        _say(
            f"An external Kafka broker is configured (SHAREHUB_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}); "
            "not starting a local one."
        )
        typer.echo(settings.kafka_bootstrap)
        return
    kafka = _local(settings)
    try:
        already = kafka.status()
        if not already.running:
            _say(f"Starting the local Kafka broker (state in {kafka.state_dir}) ...")
        bootstrap = kafka.start()
        pid = kafka.status().pid
    except Exception as exc:  # LocalKafkaError carries the explanation; anything else still gets one
        raise _fail("start", exc) from None
    verb = "already running" if already.running and already.pid == pid else "running"
    _say(
        f"Kafka broker {verb} (pid {pid}), bootstrap {bootstrap} (SASL/SCRAM over TLS), mutual TLS on "
        f"{kafka.mtls_bootstrap}; clients verify it with the hub CA, {kafka.ca_file}."
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
    _say("Kafka broker stopped." if stopped else "No local Kafka broker was running.")


@app.command()
def status() -> None:
    """Tell whether the broker runs and answers (exit 0) or not (exit 3)."""
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
    typer.echo(found.detail)
    if not found.running:
        raise typer.Exit(EXIT_NOT_RUNNING)


def _admin_access(settings: Settings) -> str:
    """The external broker's address with the admin login when one is configured (else the bare address)."""
    from services.hub import Hub

    try:
        with Hub(settings) as hub:
            return hub.kafka_admin
    except SharehubError:
        return settings.kafka_bootstrap or settings.bootstrap
