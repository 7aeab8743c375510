"""Waiting until what governance just changed on the broker is in force.

The controller acknowledges a new grant, a deleted grant or a new login once its metadata log holds the
change; a broker applies that log a moment later, and until then it goes on showing, and deciding by, what
was there before. So an agency told that governance granted it a topic could be refused on its first write,
and a grant just withdrawn could still let a request through. :mod:`services.broker_access` waits here after
each change, so that "provisioned" means "in force"; each wait raises :class:`BrokerError`, naming what is
still not so, after ``timeout`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from sharehub.errors import BrokerError

#: How long a wait here lasts at most.
IN_FORCE_WITHIN_S = 30.0
_LOOK_EVERY_S = 0.05


def until_shown(admin: AdminClient, bindings: list[AclBinding], timeout: float = IN_FORCE_WITHIN_S) -> None:
    """Wait until the broker shows every one of ``bindings``."""
    wanted = {str(b) for b in bindings}
    principals = sorted({b.principal for b in bindings})

    def missing() -> list[str]:
        return sorted(wanted - {str(acl) for acl in grants_of(admin, principals)})

    _until_none(missing, "grant(s) just made are not shown", timeout)


def until_gone(
    admin: AdminClient, filters: list[AclBindingFilter], timeout: float = IN_FORCE_WITHIN_S
) -> None:
    """Wait until the broker shows no grant that one of ``filters`` matches (grants just deleted)."""

    def left() -> list[str]:
        return sorted(str(acl) for acl in _described(admin, filters))

    _until_none(left, "grant(s) just deleted are still shown", timeout)


def until_logins(
    admin: AdminClient, users: list[str], *, known: bool, timeout: float = IN_FORCE_WITHIN_S
) -> None:
    """Wait until the broker knows a SCRAM login of each of ``users`` (``known``: logins just made), or of
    none of them (logins just deleted)."""

    def outstanding() -> list[str]:
        if not users:
            return []
        described = admin.describe_user_scram_credentials(users)
        assert isinstance(described, dict)  # one future per user when users are named
        return sorted(user for user, future in described.items() if login_known(future) != known)

    what = "login(s) just made are not known" if known else "login(s) just deleted are still known"
    _until_none(outstanding, what, timeout)


def grants_of(admin: AdminClient, principals: list[str]) -> list[AclBinding]:
    """Every grant the broker shows for each of ``principals``."""
    # None: any resource name, any host (the library's stubs declare only str).
    every_grant_of = [
        AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]
            ResourcePatternType.ANY,
            principal,
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        for principal in principals
    ]
    return _described(admin, every_grant_of)


def login_known(future: Future[Any]) -> bool:
    """Whether a described SCRAM user exists (the broker answers an unknown one with an error)."""
    try:
        future.result()
    except KafkaException:
        return False
    return True


def _described(admin: AdminClient, filters: list[AclBindingFilter]) -> list[AclBinding]:
    """Every grant the broker shows that one of ``filters`` matches (asked for at once)."""
    asked = [admin.describe_acls(f) for f in filters]
    return [acl for future in asked for acl in future.result()]


def _until_none(outstanding: Callable[[], list[str]], what: str, timeout: float) -> None:
    """Look at ``outstanding`` until it is empty; BrokerError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            still = outstanding()
        except KafkaException as exc:
            raise BrokerError(f"could not read back what was just changed on the broker: {exc}") from None
        if not still:
            return
        if time.monotonic() >= deadline:
            raise BrokerError(f"{len(still)} {what} by the broker {timeout:g} s later, such as {still[0]}")
        time.sleep(_LOOK_EVERY_S)
