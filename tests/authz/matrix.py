"""The authorisation matrix: who may do what, on which interface of the hub. Data only.

Every operation names the roles allowed to take it; every other role is refused, with the interface's
refusal unless the operation names another for that role. ``tests/authz/test_matrix.py`` checks each cell
against the real broker and the real HTTP apps, and that a refusal changed nothing; ``python -m
tests.authz.render`` writes the same table as ``docs/authorisation.md``.

Each role is played by one principal of a hub governed by ``demo/hub.yaml``: the operator is ``cpo`` (which
also owns ``documents`` and ``resolution-tasks``), the owner ``coc`` (``party-members``,
``handbook-activities``), the consumer ``dongthap-ppc`` (an active agreement on ``party-members``, owns
nothing), the auditor ``cic`` (its own site: it set its broker password itself). The hub's services have a
broker login each and no HTTP credential. The unknown principal is a login or a credential the hub never made.
The owner also runs a gateway at a site of its own (its key made there, its broker login a certificate):
that gateway knows its agency's credential alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Interface(StrEnum):
    BROKER = "broker"
    GOVERNANCE_API = "governance API"
    KEY_SERVICE = "key service"
    QUERY_API = "query API"
    GATEWAY = "gateway"
    SITE_GATEWAY = "gateway at the owner's site"


#: Role -> the principal that plays it (see the module's docstring).
AGENCY_ROLES = {"operator": "cpo", "owner": "coc", "consumer": "dongthap-ppc", "auditor": "cic"}
SERVICE_ROLES = {"projector": "projector", "api": "api", "hub tools": "hub", "governance": "governance"}
UNKNOWN = "unknown"
BROKER_ROLES = (*AGENCY_ROLES, *SERVICE_ROLES, UNKNOWN)
HTTP_ROLES = (*AGENCY_ROLES, UNKNOWN)

#: How each interface refuses a principal it does not know, and one it knows that may not take the step.
NOT_AUTHENTICATED = {Interface.BROKER: "SASL_AUTHENTICATION_FAILED"} | {
    i: "401 not_authenticated" for i in Interface if i is not Interface.BROKER
}
TOPIC_REFUSED, GROUP_REFUSED, CLUSTER_REFUSED = (
    "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
)
FORBIDDEN, NOT_FOUND, CONFLICT = "403 forbidden", "404 not_found", "409 conflict"
ALLOWED = "allowed"


@dataclass(frozen=True)
class Operation:
    interface: Interface
    #: Stable id: the probe that takes the step has the same name.
    name: str
    #: What the step is, for a person.
    what: str
    allowed: frozenset[str]
    #: What a known role that is not allowed gets; ``refused_as`` overrides it for some roles.
    refused: str = FORBIDDEN
    refused_as: dict[str, str] = field(default_factory=dict)
    #: What an allowed role gets (an HTTP status on the HTTP interfaces).
    ok: str = ALLOWED
    #: Whether the step, allowed, leaves a trace the test must see (an event, a record, a topic, a grant, a
    #: release in the access log): so the state it compares for refusals is shown to see such things.
    writes: bool = False

    def expected(self, role: str) -> str:
        if role == UNKNOWN:
            return NOT_AUTHENTICATED[self.interface]
        if role in self.allowed:
            return self.ok
        return self.refused_as.get(role, self.refused)


def _broker(
    name: str, what: str, *allowed: str, refused: str = TOPIC_REFUSED, writes: bool = False
) -> Operation:
    return Operation(Interface.BROKER, name, what, frozenset(allowed), refused, writes=writes)


def _http(interface: Interface, name: str, what: str, ok: int, *allowed: str, **kw: object) -> Operation:
    """An HTTP step; every change of governance (201) writes its event."""
    kw.setdefault("writes", ok == 201)
    return Operation(interface, name, what, frozenset(allowed), ok=str(ok), **kw)  # type: ignore[arg-type]


_EVERY_AGENCY = tuple(AGENCY_ROLES)
_READERS_OF_GOVERNANCE = ("operator", "owner", "auditor", "projector", "api", "hub tools", "governance")

OPERATIONS: tuple[Operation, ...] = (
    # --- the broker: Kafka's StandardAuthorizer and the ACLs governance made (services/broker_access.py)
    _broker("write-dataset-topic", "write an event to the owner's dataset topic", "owner", writes=True),
    _broker(
        "read-dataset-topic", "read the owner's dataset topic", "owner", "auditor", "projector", "hub tools"
    ),
    _broker(
        "see-dataset-topic-ends",
        "see the dataset topic's end offsets (lag)",
        "owner",
        "auditor",
        "projector",
        "api",
        "hub tools",
        "governance",
    ),
    _broker("write-checkpoint-topic", "write the owner's checkpoint topic", "owner", writes=True),
    _broker("read-checkpoint-topic", "read the owner's checkpoint topic", "auditor", "hub tools"),
    _broker("read-governance-log", "read the governance log", *_READERS_OF_GOVERNANCE),
    _broker("write-governance-log", "write the governance log", "governance", writes=True),
    _broker("read-quarantine", "read the quarantine", "api", "hub tools"),
    _broker("write-quarantine", "write the quarantine", "projector", "hub tools", writes=True),
    _broker("read-access-log", "read the access log", "auditor", "api", "hub tools"),
    _broker("write-access-log", "write the access log", "api", "hub tools", writes=True),
    _broker("read-access-checkpoints", "read the access log's lane checkpoints", "auditor", "hub tools"),
    _broker(
        "write-access-checkpoints",
        "write the access log's lane checkpoints",
        "api",
        "hub tools",
        writes=True,
    ),
    _broker(
        "use-projector-group",
        "use the projector's consumer group",
        "projector",
        "hub tools",
        refused=GROUP_REFUSED,
    ),
    _broker("create-topic", "create a topic in the hub's namespace", "governance", writes=True),
    _broker(
        "set-dataset-topic-retention",
        "set the retention of a dataset topic (as its dataset declares it)",
        "governance",
        writes=True,
    ),
    _broker("grant-acl", "grant an ACL", "governance", refused=CLUSTER_REFUSED, writes=True),
    # --- governance: POST /v1/gov/{operation} and its reads (services/api/governance.py)
    _http(Interface.GOVERNANCE_API, "register-agency", "register an agency", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "declare-dataset", "declare a dataset", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "issue-credential", "issue a credential to an agency", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "rotate-credential", "rotate an agency's credential", 201, "operator"),
    _http(
        Interface.GOVERNANCE_API,
        "revoke-own-credential",
        "revoke a credential of its own agency",
        201,
        *_EVERY_AGENCY,
    ),  # fmt: skip
    _http(
        Interface.GOVERNANCE_API,
        "revoke-others-credential",
        "revoke another agency's credential",
        201,
        "operator",
    ),  # fmt: skip
    _http(
        Interface.GOVERNANCE_API, "add-own-key", "add a signing key of its own agency", 201, *_EVERY_AGENCY
    ),
    _http(Interface.GOVERNANCE_API, "add-others-key", "add a signing key of another agency", 201, "operator"),
    _http(
        Interface.GOVERNANCE_API, "register-own-key", "register its site's key request", 201, *_EVERY_AGENCY
    ),
    _http(
        Interface.GOVERNANCE_API,
        "register-others-key",
        "register another agency's key request",
        201,
        "operator",
    ),
    _http(
        Interface.GOVERNANCE_API,
        "rotate-own-key",
        "rotate a signing key of its own agency",
        201,
        *_EVERY_AGENCY,
    ),
    _http(
        Interface.GOVERNANCE_API,
        "revoke-own-key",
        "revoke a signing key of its own agency",
        201,
        *_EVERY_AGENCY,
    ),
    _http(
        Interface.GOVERNANCE_API,
        "register-schema",
        "register a schema version of the owner's dataset",
        201,
        "operator",
        "owner",
    ),
    _http(
        Interface.GOVERNANCE_API,
        "propose",
        "propose an agreement for the consumer on the owner's dataset",
        201,
        "operator",
        "owner",
        "consumer",
    ),
    _http(Interface.GOVERNANCE_API, "consent", "consent to that agreement", 201, "owner"),
    _http(Interface.GOVERNANCE_API, "approve", "approve that agreement", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "suspend", "suspend that agreement", 201, "operator", "owner"),
    _http(Interface.GOVERNANCE_API, "resume", "resume that agreement", 201, "operator", "owner"),
    _http(Interface.GOVERNANCE_API, "revoke", "revoke that agreement", 201, "operator", "owner"),
    _http(
        Interface.GOVERNANCE_API,
        "set-dataset-purposes",
        "change the purposes the owner's dataset may be shared for",
        201,
        "operator",
        "owner",
    ),
    _http(
        Interface.GOVERNANCE_API,
        "set-dataset-retention",
        "change how long the owner's dataset's topic keeps its events",
        201,
        "operator",
        "owner",
    ),
    _http(Interface.GOVERNANCE_API, "define-purpose", "define a purpose of the vocabulary", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "retire-purpose", "retire a purpose of the vocabulary", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "define-legal-basis", "define a legal basis", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "retire-legal-basis", "retire a legal basis", 201, "operator"),
    _http(Interface.GOVERNANCE_API, "list-operations", "list the operations", 200, *_EVERY_AGENCY),
    _http(
        Interface.GOVERNANCE_API,
        "read-state",
        "read governance (as far as it concerns the caller)",
        200,
        *_EVERY_AGENCY,
    ),
    _http(
        Interface.GOVERNANCE_API,
        "read-agreement-history",
        "read the consumer's agreement's history",
        200,
        "operator",
        "owner",
        "consumer",
        refused_as={"auditor": NOT_FOUND},
    ),
    # --- the key service and sites' logins (services/api/key_service.py, site_login.py)
    _http(
        Interface.KEY_SERVICE,
        "dataset-keys",
        "take the owner's dataset's current keys",
        200,
        "owner",
        writes=True,
    ),
    _http(
        Interface.KEY_SERVICE,
        "earlier-data-key",
        "take an earlier data key of that dataset",
        200,
        "owner",
        writes=True,
    ),
    _http(
        Interface.KEY_SERVICE,
        "subject-keys",
        "take (and make) data subjects' keys of that dataset",
        200,
        "owner",
        writes=True,
    ),
    _http(
        Interface.KEY_SERVICE,
        "set-own-broker-password",
        "set its own broker password (own site only)",
        204,
        "auditor",
        refused=CONFLICT,
        writes=True,
    ),
    # --- the query API (services/api/records.py, operations.py)
    _http(Interface.QUERY_API, "who-am-i", "ask which agency its credential is", 200, *_EVERY_AGENCY),
    _http(
        Interface.QUERY_API,
        "list-own-datasets",
        "list the datasets its own agreements grant",
        200,
        *_EVERY_AGENCY,
        writes=True,
    ),
    _http(
        Interface.QUERY_API,
        "read-consumers-records",
        "list the consumer's records of party-members",
        200,
        "consumer",
        writes=True,
    ),
    _http(
        Interface.QUERY_API,
        "read-consumers-record",
        "fetch one of the consumer's records by key",
        200,
        "consumer",
        writes=True,
    ),
    _http(
        Interface.QUERY_API,
        "read-own-party-members",
        "list party-members in its own read model (an agreement needed)",
        200,
        "consumer",
        writes=True,
    ),
    _http(Interface.QUERY_API, "status", "read the hub's status", 200, "operator"),
    _http(Interface.QUERY_API, "metrics", "read the hub's metrics", 200, "operator"),
    # --- the hub's ingest gateway, custodial mode (services/gateway/)
    _http(
        Interface.GATEWAY,
        "publish-records",
        "publish records to the owner's dataset",
        200,
        "owner",
        writes=True,
    ),
    _http(Interface.GATEWAY, "publish-envelopes", "publish sealed envelopes (at a site's gateway only)", 200),
    _http(Interface.GATEWAY, "read-chain", "read its chain heads (at a site's gateway only)", 200),
    # --- the owner's gateway at its own site (services/gateway/modes.py, at_site): its credential alone
    *(
        _http(
            Interface.SITE_GATEWAY,
            name,
            what,
            200,
            "owner",
            refused=NOT_AUTHENTICATED[Interface.GATEWAY],
            writes=writes,
        )  # fmt: skip
        for name, what, writes in (
            ("site-publish-records", "publish records, sealed with the site's key", True),
            ("site-publish-envelopes", "publish envelopes sealed and signed at the site", True),
            ("site-read-chain", "read its chain heads", False),
        )
    ),
)


@dataclass(frozen=True)
class Cell:
    operation: Operation
    role: str

    @property
    def expected(self) -> str:
        return self.operation.expected(self.role)

    @property
    def id(self) -> str:
        return f"{self.operation.interface}:{self.operation.name}:{self.role}".replace(" ", "-")


def roles(interface: Interface) -> tuple[str, ...]:
    return BROKER_ROLES if interface is Interface.BROKER else HTTP_ROLES


CELLS: tuple[Cell, ...] = tuple(Cell(op, role) for op in OPERATIONS for role in roles(op.interface))
