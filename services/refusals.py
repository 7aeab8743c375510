"""The stable codes of every refusal, the APIs' and the command line's, and their sentences in Vietnamese and
English (the ``errors`` domain of the hub's catalogues, :mod:`services.i18n`).

:func:`status_of` maps the error hierarchy (:mod:`sharehub.errors`) onto an HTTP status and the code the APIs
answer in ``error``; :func:`command_code` gives a command's failure the same code, or for what only a command
meets (settings, the local broker, a benchmark) a code of its own, and a governance act refused for its seal
its ``act_seal`` reason; :func:`sentence` is a code's sentence in a language. A code the catalogue lacks has
no sentence: the caller then shows the code and detail alone.
"""

from __future__ import annotations

from pydantic import ValidationError

from services import i18n
from sharehub.errors import (
    BenchmarkError,
    BrokerError,
    ConfigurationError,
    DuplicateId,
    EnvelopeError,
    Forbidden,
    InCustody,
    KeyServiceUnavailable,
    LifecycleViolation,
    LocalKafkaError,
    NotAuthenticated,
    NotPermitted,
    ProjectionError,
    PurposeNotAllowed,
    ReadModelUnavailable,
    RequestInvalid,
    SharehubError,
    SourceUnavailable,
    TooManyRequests,
    UnknownReferenceError,
)
from sharehub.gov.acts import ActSealRefused

DOMAIN = "errors"

#: Failures only a command meets (the APIs answer none of them), most specific first.
COMMAND_CODES: tuple[tuple[type[Exception], str], ...] = (
    (ValidationError, "invalid_request"),
    (ConfigurationError, "misconfigured"),
    (KeyServiceUnavailable, "unavailable"),
    (SourceUnavailable, "unavailable"),
    (EnvelopeError, "envelope_refused"),
    (ProjectionError, "projection_failed"),
    (LocalKafkaError, "local_broker"),
    (BenchmarkError, "benchmark_failed"),
)


def status_of(exc: SharehubError) -> tuple[int, str]:
    """The HTTP status and the code the APIs refuse ``exc`` with."""
    if isinstance(exc, NotAuthenticated):
        return 401, "not_authenticated"
    if isinstance(exc, TooManyRequests):
        return 429, "too_many_requests"
    if isinstance(exc, RequestInvalid):
        return 422, "invalid_request"
    if isinstance(exc, PurposeNotAllowed):
        return 403, "purpose_not_allowed"
    if isinstance(exc, Forbidden | NotPermitted):
        return 403, "forbidden"
    if isinstance(exc, UnknownReferenceError):
        return 404, "not_found"
    if isinstance(exc, DuplicateId | LifecycleViolation | InCustody):
        return 409, "conflict"
    if isinstance(exc, BrokerError | ReadModelUnavailable):
        return 503, "unavailable"
    return 400, "bad_request"


def command_code(exc: Exception) -> str:
    """The code of a command's failure: the most specific one the catalogue has a sentence for."""
    if isinstance(exc, ActSealRefused):
        return exc.reason
    for kind, code in COMMAND_CODES:
        if isinstance(exc, kind):
            return code
    return status_of(exc)[1] if isinstance(exc, SharehubError) else "failed"


def sentence(code: str, language: str) -> str | None:
    """``code``'s sentence in ``language`` (one of :data:`services.i18n.LANGUAGES`); None when the catalogue
    has none."""
    said: str = i18n.translations(DOMAIN, language).gettext(code)
    return said if said != code else None
