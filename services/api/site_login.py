"""An agency's site sets its own broker password: the hub passes it to the broker once and keeps nothing.

Sites prefer a client certificate (mutual TLS: no secret leaves the site). A site that must use SCRAM makes
its password itself (``sharehub agency connect --login password``) and sends it here, over HTTPS, with the
credential governance issued to its agency: ``POST /v1/site/broker-password`` sets it for the agency's own
principal, and only for it, through the broker's Admin API. The password is in no log, no file and no store
of the hub; the access log records that it was set (who, when), never the password.

An agency in the hub's custody (:meth:`services.hub.Hub.in_custody`) is refused with 409: the hub already
keeps its login, and a second one would leave the hub unable to act for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.api.context import ApiContext, caller, context
from services.api.errors import RESPONSES
from services.broker_access import set_password
from sharehub.errors import InCustody

#: Shorter passwords are refused: the site makes a random one of 43 characters (32 bytes).
MIN_PASSWORD_LENGTH = 24
MAX_PASSWORD_LENGTH = 256
PURPOSE = "setting the agency's own broker password"

router = APIRouter(prefix="/v1/site", tags=["sites"], responses=RESPONSES)


class BrokerPasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: SecretStr = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


@router.post(
    "/broker-password",
    status_code=204,
    summary="Set the calling agency's own SCRAM password on the broker (kept by the site only)",
)
async def broker_password(
    body: BrokerPasswordIn,
    who: Annotated[str, Depends(caller)],
    ctx: Annotated[ApiContext, Depends(context)],
) -> Response:
    logins = ctx.logins
    if await run_in_threadpool(logins.in_custody, who):
        raise InCustody(
            f"the hub keeps the broker login of {who!r}, which is in its custody: a site of its own makes "
            "its keys first ('sharehub agency init', then 'sharehub gov register-key')"
        )
    await ctx.access.record(consumer=who, purpose=PURPOSE, operation="set_broker_password")
    password = body.password.get_secret_value().encode()
    await run_in_threadpool(set_password, logins.kafka_governance, logins.principal(who), password)
    return Response(status_code=204)
