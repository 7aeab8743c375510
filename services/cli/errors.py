"""One way every command runs: a clear message on stderr and an exit code on failure, never a traceback.

A failure's message is its code's sentence (:mod:`services.refusals`, the codes the APIs answer with) in
the language of the setting ``language`` (``SHAREHUB_LANGUAGE``: ``en``, the default, or ``vi``), then
its detail: ``error: bad input — no agency 'nobody'``.

Each command is its process's composition root: it opens the hub it needs in a ``with`` block (closed
however the command ends) and hands the services the parts they use."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from services import i18n
from services.hub import Hub
from services.refusals import command_code, sentence
from sharehub.errors import InputError, SharehubError
from sharehub.gov.state import GovState
from sharehub.settings import Settings

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


def explained(exc: Exception) -> str:
    """``exc``'s detail after its code's sentence in the language of the setting ``language``."""
    said = sentence(command_code(exc), _language())
    return f"{said} — {exc}" if said else str(exc)


def _language() -> str:
    try:
        return Settings().language
    except ValidationError:  # settings that do not parse: the failure being reported, perhaps
        return i18n.FALLBACK


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (InputError, ValidationError) as exc:
            raise fail(explained(exc), EXIT_BAD_INPUT) from None
        except SharehubError as exc:  # ConfigurationError and LocalKafkaError are ones too
            raise fail(explained(exc)) from None
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper
