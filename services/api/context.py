"""What the routes of the HTTP API use, made once per process, and the dependencies that say who calls.

The app keeps one :class:`ApiContext` in ``app.state``; a route asks for it (``Depends(context)``) and for
its caller (``Depends(caller)``, ``Depends(own_read_model)``, ``Depends(operator)``), and gets nothing else.
The dependencies of the API (here and beside its routes) are ``async`` even when they wait for nothing:
FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per dependency and request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from projections.read_model import ReadModelStore
from services.access_log import AccessLog
from services.api.auth import CredentialCheck
from services.erasure import ErasureParts
from services.erasure_requests import ErasureRequests
from services.governance_desk import GovernanceDesk
from services.operations import Operations
from services.parts import ReadModels
from sharehub.codec import DatasetCodec
from sharehub.errors import Forbidden
from sharehub.gov.state import GovState
from sharehub.kafka import KafkaAccess
from sharehub.keys import LocalKeyStore
from sharehub.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Credential issued by governance to an agency.")


class BrokerLogins(Protocol):
    """The hub's side of an agency's broker login (see :mod:`services.broker_access`)."""

    def in_custody(self, agency: str) -> bool:
        """Whether the hub keeps the agency's keys and broker login."""

    @property
    def kafka_governance(self) -> KafkaAccess:
        """Governance's login, which sets principals' passwords."""

    def principal(self, name: str) -> str:
        """An agency's broker principal in this hub's namespace."""


@dataclass(frozen=True)
class ApiContext:
    #: Governance as the hub's follower thread keeps it current: requests never read the broker.
    governance: GovState
    settings: Settings
    #: A consumer's read model; a dataset's codec (to name records by pseudonym).
    stores: Callable[[str], ReadModelStore]
    codecs: Callable[[str], DatasetCodec]
    access: AccessLog
    credentials: CredentialCheck
    operations: Operations
    #: Governance changes (the hub's lock and operator key, its key store, the broker's provisioning).
    desk: GovernanceDesk
    #: The key store whose keys the key service releases to owners.
    keys: LocalKeyStore
    #: Setting a site's own broker password.
    logins: BrokerLogins
    #: The hub's own broker login: reads the access log and the quarantine (the console's audit and
    #: operator pages).
    kafka: KafkaAccess
    #: An erasure's parts as ``sharehub gov erase`` takes them (governance now); the requests awaiting one.
    erasure: Callable[[], ErasureParts]
    erasure_requests: ErasureRequests
    #: Every consumer's read model (the quarantine's redrive asks them to replay a dataset).
    read_models: ReadModels


async def context(request: Request) -> ApiContext:
    found: ApiContext = request.app.state.context
    return found


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ctx: Annotated[ApiContext, Depends(context)],
) -> str:
    """The agency the bearer credential was issued to (401; 429 for a source that keeps failing)."""
    source = request.client.host if request.client else "unknown"
    token = credentials.credentials if credentials is not None else None
    return await ctx.credentials.holder(token, source)


async def own_read_model(
    consumer: Annotated[str, Path(description="Consumer agency id")],
    who: Annotated[str, Depends(caller)],
) -> str:
    """The consumer in the path, if the caller is it: another agency's read model is a 403."""
    if who != consumer:
        raise Forbidden(f"the credential of {who!r} may not read the read model of {consumer!r}")
    return consumer


async def operator(who: Annotated[str, Depends(caller)], ctx: Annotated[ApiContext, Depends(context)]) -> str:
    """The caller, if it is the hub's operator."""
    if who != ctx.governance.operator:
        raise Forbidden(f"status and metrics are for the hub operator {ctx.governance.operator!r}")
    return who
