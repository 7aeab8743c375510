"""One way every command runs: a clear message on stderr and an exit code on failure, never a traceback.

Each command is its process's composition root: it opens the hub it needs in a ``with`` block (closed
however the command ends) and hands the services the parts they use."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from services.hub import Hub
from sharehub.errors import ConfigurationError, InputError, SharehubError
from sharehub.gov.state import GovState

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def governance_now() -> GovState:
    """Governance as the log has it now, read by a hub (settings from the environment) opened for it."""
    with Hub() as hub:
        return hub.governance


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (InputError, ValidationError) as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
        except SharehubError as exc:  # LocalKafkaError is one too
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper
