"""What governance makes on the broker: topics, one SCRAM principal per agency, and the ACLs that let each
principal do exactly its part (R1, R2: ownership is enforced by the broker itself).

Principals live in the hub's namespace, ``<topic prefix>.<agency>``, plus ``<prefix>.hub``,
``<prefix>.projector`` and ``<prefix>.api`` for the hub's own services (agency ids that governance keeps
for them). The hub makes SCRAM passwords only for its own services and for the agencies in its custody
(:meth:`services.hub.Hub.in_custody`), keeps them wrapped with the master key like every key, and hands them
to the broker through the Admin API. Every other agency logs in from its own site: with a certificate the
hub CA signed for a key the site made (mutual TLS), or with a password the site made and sent once
(:func:`set_password`), which the hub passes to the broker and does not keep.

==========================  ===============================================================================
principal                   may
==========================  ===============================================================================
``<prefix>.<owner>``        write (and read back, for its chain heads) the topics of the datasets it owns;
                            write its own checkpoint topic, ``<prefix>-checkpoints.<owner>``; read the
                            governance log (metadata and public keys, signed by the operator: its site
                            verifies governance itself, see :mod:`connectors.sdk`); no group
``<prefix>.hub``            the operator's tools (audit, rebuild, quarantine review): read every topic of
                            the hub; write the quarantine, the access log and its checkpoints (an API run
                            inside the operator's tools writes them); the projector's group
``<prefix>.projector``      the projection worker: read the dataset topics and the governance log, write the
                            quarantine, join the projector's group; not the access log
``<prefix>.api``            the query API: read the governance log and the quarantine, write the access log
                            and its lanes' checkpoints (``<prefix>-access-log.checkpoints``), read the access
                            log (the console's access history and the auditor's access search), describe
                            (never read) the dataset topics, for their ends
``<prefix>.<auditor>``      an agency of kind ``inspection-commission``: read (only) every dataset topic, the
                            governance log, every checkpoint topic, the access log and its checkpoints; its
                            reader group
``<prefix>.governance``      governance: write the governance log; create and describe the topics of the
                            hub's namespace; make principals and ACLs (cluster ALTER and DESCRIBE)
the broker's super user     once per hub: creates the services' principals and ACLs, governance's first
==========================  ===============================================================================

Everything else is denied (``allow.everyone.if.no.acl.found=false``): an agency writing another agency's
topic gets TOPIC_AUTHORIZATION_FAILED from the broker, and one joining the projector's consumer group gets
GROUP_AUTHORIZATION_FAILED. Every grant is to a literal name, except the hub's reads of its own topics.
Readers that are not the projector read with assigned partitions and no group. :func:`provision` is
idempotent, and removes the grants an earlier version made that this one no longer makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from services.broker_in_force import until_gone, until_logins, until_shown
from services.principals import (
    API_PRINCIPAL,
    GOVERNANCE_PRINCIPAL,
    HUB_PRINCIPAL,
    PROJECTOR_PRINCIPAL,
    SERVICE_PRINCIPALS,
)
from sharehub.errors import BrokerError
from sharehub.gov.custody import in_custody
from sharehub.gov.state import GovState
from sharehub.gov.views import AUDITOR_KIND
from sharehub.kafka import KafkaAccess, TopicSpec, align_retention, client_config, ensure_topics, reader_group
from sharehub.keys import LocalKeyStore

SCRAM_ITERATIONS = 8192
#: The query API's topics after the prefix (``GovState.access_log_topic``, ``.access_checkpoint_topic``).
ACCESS_LOG_TOPICS = ("access-log", "access-log.checkpoints")


@dataclass(frozen=True)
class BrokerProvisioning:
    """What provisioning acts with: the hub's namespace on the broker, the key store that keeps the passwords
    of the hub's services and of the agencies in its custody, and the two logins it may use (each read only
    when used: the super user's password is needed once per hub). ``plaintext``: a broker without security
    (topics only)."""

    topic_prefix: str
    keys: LocalKeyStore
    governance: Callable[[], KafkaAccess]
    super_user: Callable[[], KafkaAccess]
    plaintext: bool = False

    def principal(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    def in_custody(self, state: GovState, agency: str) -> bool:
        return in_custody(state.agencies_.get(agency), lambda key_id: self.keys.has(key_id, "signing"))


def provision(logins: BrokerProvisioning, state: GovState) -> list[str]:
    """Make sure every topic, principal and ACL governance's current ``state`` calls for exists; returns the
    topics created."""
    admin_access = logins.governance()
    own = [(state.quarantine_topic, 1), (state.access_log_topic, 3), (state.access_checkpoint_topic, 1)]
    checkpoints = [(state.checkpoint_topic(owner), 1) for owner in state.owners()]
    dataset_topics = [TopicSpec(d.topic, d.partitions, d.retention_ms) for d in state.datasets()]
    created = ensure_topics(admin_access, [*dataset_topics, *own, *checkpoints])
    align_retention(admin_access, dataset_topics)
    if logins.plaintext:
        return created
    admin = AdminClient(client_config(admin_access))
    custodial = [a for a in sorted(state.agencies_) if logins.in_custody(state, a)]
    _upsert_principals(logins, admin, [*SERVICE_PRINCIPALS, *custodial])
    _drop_logins_out_of_custody(logins, admin, [a for a in sorted(state.agencies_) if a not in custodial])
    bindings = _service_acls(logins.principal, state.topic_prefix)
    governance_topic = f"{state.topic_prefix}-governance"
    for dataset in state.datasets():
        owner = dataset.owner
        bindings += _owner_acls(logins.principal(owner), dataset.topic, state.checkpoint_topic(owner))
        bindings += _reads(logins.principal(owner), governance_topic)
    auditors = [a.id for a in state.agencies_.values() if a.kind == AUDITOR_KIND]
    audited = [governance_topic, state.access_log_topic, state.access_checkpoint_topic]
    audited += [d.topic for d in state.datasets()] + [state.checkpoint_topic(o) for o in state.owners()]
    for auditor in auditors:
        bindings.append(_readers(logins.principal(auditor)))
        for topic in audited:
            bindings += _reads(logins.principal(auditor), topic)
    _create(admin, bindings)
    _delete_grants_no_longer_made(admin, logins.principal, state)
    return created


def provision_services(logins: BrokerProvisioning) -> None:
    """The hub services' principals and ACLs: all a new hub needs before it can read its governance log."""
    if logins.plaintext:
        return
    governance = logins.principal(GOVERNANCE_PRINCIPAL)
    # The broker's super user once, to make governance's principal; governance itself from then on.
    made = logins.keys.has(f"kafka/{governance}", "broker")
    admin = AdminClient(client_config(logins.governance() if made else logins.super_user()))
    _upsert_principals(logins, admin, list(SERVICE_PRINCIPALS))
    _create(admin, _service_acls(logins.principal, logins.topic_prefix))


def _upsert_principals(logins: BrokerProvisioning, admin: AdminClient, names: list[str]) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    principals = [logins.principal(n) for n in names]
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(p, info, logins.keys.broker_password(p).reveal()) for p in principals
    ]
    _alter(admin, upserts)


def _drop_logins_out_of_custody(logins: BrokerProvisioning, admin: AdminClient, agencies: list[str]) -> None:
    """A password the hub once made for an agency that now logs in from its own site (an older hub made one
    for every agency, or the agency has left custody): deleted from the broker and from the key store. The
    passwords a site set itself (``POST /v1/site/broker-password``) were never in the store and stay."""
    principals = [logins.principal(a) for a in agencies]
    stale = [p for p in principals if logins.keys.has(f"kafka/{p}", "broker")]
    if not stale:
        return
    deletions: list[UserScramCredentialAlteration] = [
        UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512) for principal in stale
    ]
    for user, future in admin.alter_user_scram_credentials(deletions).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.RESOURCE_NOT_FOUND:
                raise BrokerError(f"could not remove the credentials of principal {user!r}: {exc}") from None
    until_logins(admin, stale, known=False)
    for principal in stale:
        logins.keys.forget_broker_password(principal)


def set_password(admin_access: KafkaAccess, principal: str, password: bytes) -> None:
    """Set ``principal``'s SCRAM password on the broker, passing it through once: nothing keeps it here."""
    admin = AdminClient(client_config(admin_access))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    _alter(admin, [UserScramCredentialUpsertion(principal, info, password)])


def _alter(admin: AdminClient, alterations: list[UserScramCredentialAlteration]) -> None:
    """Set the credentials, and return once the broker knows a login of each user (:func:`until_logins`)."""
    altered = admin.alter_user_scram_credentials(alterations)
    for user, future in altered.items():
        try:
            future.result()
        except KafkaException as exc:
            raise BrokerError(f"could not set the credentials of principal {user!r}: {exc}") from None
    until_logins(admin, list(altered), known=True)


def _allow(
    principal: str, kind: ResourceType, name: str, op: AclOperation, pattern: ResourcePatternType
) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{principal}", "*", op, AclPermissionType.ALLOW)


def _readers(principal: str) -> AclBinding:
    """The principal's one reader group (see :func:`sharehub.kafka.reader_group`)."""
    group = reader_group(KafkaAccess("", principal))
    return _allow(principal, ResourceType.GROUP, group, AclOperation.READ, ResourcePatternType.LITERAL)


def _owner_acls(principal: str, topic: str, checkpoints: str) -> list[AclBinding]:
    literal, t = ResourcePatternType.LITERAL, ResourceType.TOPIC
    return [
        _readers(principal),
        *(
            _allow(principal, t, topic, op, literal)
            for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)
        ),
        *(
            _allow(principal, t, checkpoints, op, literal)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ),
    ]


def _reads(principal: str, topic: str) -> list[AclBinding]:
    literal, t = ResourcePatternType.LITERAL, ResourceType.TOPIC
    return [_allow(principal, t, topic, op, literal) for op in (AclOperation.READ, AclOperation.DESCRIBE)]


#: A service's or agency's principal in the hub's namespace, from its name.
Principal = Callable[[str], str]


def _service_acls(principal: Principal, prefix: str) -> list[AclBinding]:
    """The hub's own principals: ``hub`` (the operator's tools), ``projector``, ``api`` and ``governance``."""
    acls = _hub_acls(principal, prefix) + _projector_acls(principal, prefix) + _api_acls(principal, prefix)
    return acls + _governance_acls(principal, prefix)


def _governance_acls(principal_of: Principal, prefix: str) -> list[AclBinding]:
    """Governance: write (and read) the governance log; create and describe topics in the hub's namespace
    only; make principals and ACLs (ALTER and DESCRIBE on the cluster: Kafka has no narrower grant for
    them); read and set the dataset topics' configuration (their retention). It reads no dataset topic,
    the access log or the quarantine."""
    principal = principal_of(GOVERNANCE_PRINCIPAL)
    literal, prefixed, t = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED, ResourceType.TOPIC
    return [
        *(
            _allow(principal, ResourceType.BROKER, "kafka-cluster", op, literal)
            for op in (AclOperation.ALTER, AclOperation.DESCRIBE)
        ),
        *(
            _allow(principal, t, f"{prefix}{separator}", op, prefixed)
            for separator in (".", "-")
            for op in (AclOperation.CREATE, AclOperation.DESCRIBE)
        ),
        *(
            _allow(principal, t, f"{prefix}-governance", op, literal)
            for op in (AclOperation.WRITE, AclOperation.READ)
        ),
        *(  # each dataset topic's retention, as its dataset declares it
            _allow(principal, t, f"{prefix}.", op, prefixed)
            for op in (AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS)
        ),
        _readers(principal),
    ]


def _hub_acls(principal_of: Principal, prefix: str) -> list[AclBinding]:
    services = principal_of(HUB_PRINCIPAL)
    prefixed, t = ResourcePatternType.PREFIXED, ResourceType.TOPIC
    bindings = [
        _allow(services, t, f"{prefix}{separator}", op, prefixed)
        for separator in (".", "-")  # dataset topics, and the hub's own (governance, checkpoints, quarantine)
        for op in (AclOperation.READ, AclOperation.DESCRIBE)
    ]
    for written in ("quarantine", *ACCESS_LOG_TOPICS):
        bindings.append(
            _allow(services, t, f"{prefix}-{written}", AclOperation.WRITE, ResourcePatternType.LITERAL)
        )
    bindings.append(_readers(services))
    projector = f"{prefix}-projector"  # GovState.projector_group
    bindings.append(
        _allow(services, ResourceType.GROUP, projector, AclOperation.READ, ResourcePatternType.LITERAL)
    )
    return bindings


def _projector_acls(principal_of: Principal, prefix: str) -> list[AclBinding]:
    """The projection worker: read the dataset topics and the governance log, write the quarantine, join
    the projector's group. Not the access log."""
    worker = principal_of(PROJECTOR_PRINCIPAL)
    literal, t = ResourcePatternType.LITERAL, ResourceType.TOPIC
    return [
        *(_allow(worker, t, f"{prefix}.", op, ResourcePatternType.PREFIXED) for op in _READ_OPS),
        *_reads(worker, f"{prefix}-governance"),
        _allow(worker, t, f"{prefix}-quarantine", AclOperation.WRITE, literal),
        _readers(worker),
        _allow(worker, ResourceType.GROUP, f"{prefix}-projector", AclOperation.READ, literal),
    ]


def _api_acls(principal_of: Principal, prefix: str) -> list[AclBinding]:
    """The query API: read the governance log and the quarantine (for status), write the access log and its
    checkpoints, read the access log (the console's access history and access search), and see the dataset
    topics' ends (lag): describe, never read, them. No consumer group but its readers'."""
    api = principal_of(API_PRINCIPAL)
    literal, t = ResourcePatternType.LITERAL, ResourceType.TOPIC
    return [
        _allow(api, t, f"{prefix}.", AclOperation.DESCRIBE, ResourcePatternType.PREFIXED),
        *_reads(api, f"{prefix}-governance"),
        *_reads(api, f"{prefix}-quarantine"),
        _allow(api, t, f"{prefix}-access-log", AclOperation.READ, literal),
        *(
            _allow(api, t, f"{prefix}-{written}", op, literal)
            for written in ACCESS_LOG_TOPICS
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ),
        _readers(api),
    ]


_READ_OPS = (AclOperation.READ, AclOperation.DESCRIBE)


def _delete_grants_no_longer_made(admin: AdminClient, principal_of: Principal, state: GovState) -> None:
    """Group grants by prefix (``sharehub-``, ``<prefix>-``) made before each principal had only its own
    literal group, and the shared checkpoint topic's write grants: removed, so an upgraded hub is as tight as
    a new one."""
    prefix = state.topic_prefix
    principals = {f"User:{principal_of(name)}" for name in [*SERVICE_PRINCIPALS, *state.agencies_]}
    stale = [
        _any_grant(ResourceType.GROUP, name, ResourcePatternType.PREFIXED, principal)
        for principal in sorted(principals)
        for name in dict.fromkeys(("sharehub-", f"{prefix}-"))
    ] + [
        _any_grant(ResourceType.TOPIC, f"{prefix}-checkpoints", ResourcePatternType.LITERAL, principal)
        for principal in sorted(principals)
    ]
    for binding_filter, future in admin.delete_acls(stale).items():
        try:
            future.result()
        except KafkaException as exc:
            raise BrokerError(f"could not remove the old grant {binding_filter}: {exc}") from None
    until_gone(admin, stale)


def _any_grant(
    kind: ResourceType, name: str, pattern: ResourcePatternType, principal: str
) -> AclBindingFilter:
    """Every grant to ``principal`` on that resource, whatever the operation or permission."""
    return AclBindingFilter(kind, name, pattern, principal, "*", AclOperation.ANY, AclPermissionType.ANY)


def _create(admin: AdminClient, bindings: list[AclBinding]) -> None:
    """Create the grants, and return once the broker shows every one of them (:func:`until_shown`)."""
    unique = list(dict.fromkeys(bindings))  # an owner of several datasets needs its group ACL once
    for binding, future in admin.create_acls(unique).items():
        try:
            future.result()
        except KafkaException as exc:
            raise BrokerError(f"could not create the ACL {binding}: {exc}") from None
    until_shown(admin, unique)
