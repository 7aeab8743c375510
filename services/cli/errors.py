"""One way every command runs: a clear message on stderr and an exit code on failure, never a traceback;
and the hub it opened (:func:`command_hub`) closed when it ends, however it ends."""

from __future__ import annotations

import contextvars
import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from services.hub import HUB_PRINCIPAL, Hub
from sharehub.errors import ConfigurationError, InputError, SharehubError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


#: The hubs the running command opened, closed when it ends.
_opened: contextvars.ContextVar[list[Hub] | None] = contextvars.ContextVar("command_hubs", default=None)


def command_hub(service: str = HUB_PRINCIPAL) -> Hub:
    """A hub (settings from the environment) that the running command closes when it ends; ``service``: the
    principal it logs in to the broker as."""
    hub = Hub(service=service)
    opened = _opened.get()
    if opened is not None:
        opened.append(hub)
    return hub


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _opened.set([])
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
        finally:
            for hub in reversed(_opened.get() or []):
                hub.close()
            _opened.reset(token)

    return wrapper
