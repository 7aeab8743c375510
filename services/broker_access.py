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
                            the hub; write the quarantine and access-log topics; the projector's group
``<prefix>.projector``      the projection worker: read the dataset topics and the governance log, write the
                            quarantine, join the projector's group; not the access log
``<prefix>.api``            the query API: read the governance log and the quarantine, write the access log,
                            describe (never read) the dataset topics, for their ends
``<prefix>.<auditor>``      an agency of kind ``inspection-commission``: read (only) every dataset topic, the
                            governance log, every checkpoint topic and the access log; its reader group
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

from services.hub import (
    API_PRINCIPAL,
    GOVERNANCE_PRINCIPAL,
    HUB_PRINCIPAL,
    PROJECTOR_PRINCIPAL,
    SERVICE_PRINCIPALS,
    Hub,
)
from sharehub.errors import BrokerError
from sharehub.gov.views import AUDITOR_KIND
from sharehub.kafka import KafkaAccess, client_config, ensure_topics, reader_group

SCRAM_ITERATIONS = 8192


def provision(hub: Hub) -> list[str]:
    """Make sure every topic, principal and ACL governance's current state calls for exists; returns the
    topics created."""
    state = hub.governance_state(refresh=True)
    admin_access = hub.kafka_governance
    own = [(state.quarantine_topic, 1), (state.access_log_topic, 3)]
    checkpoints = [(state.checkpoint_topic(owner), 1) for owner in state.owners()]
    created = ensure_topics(
        admin_access, [(d.topic, d.partitions) for d in state.datasets()] + own + checkpoints
    )
    if hub.settings.kafka_security == "plaintext":
        return created
    admin = AdminClient(client_config(admin_access))
    in_custody = [a for a in sorted(state.agencies_) if hub.in_custody(a)]
    _upsert_principals(hub, admin, [*SERVICE_PRINCIPALS, *in_custody])
    _drop_logins_out_of_custody(hub, admin, [a for a in sorted(state.agencies_) if a not in in_custody])
    bindings = _service_acls(hub, state.topic_prefix)
    governance_topic = f"{state.topic_prefix}-governance"
    for dataset in state.datasets():
        owner = dataset.owner
        bindings += _owner_acls(hub.principal(owner), dataset.topic, state.checkpoint_topic(owner))
        bindings += _reads(hub.principal(owner), governance_topic)
    auditors = [a.id for a in state.agencies_.values() if a.kind == AUDITOR_KIND]
    audited = [governance_topic, state.access_log_topic]
    audited += [d.topic for d in state.datasets()] + [state.checkpoint_topic(o) for o in state.owners()]
    for auditor in auditors:
        bindings.append(_readers(hub.principal(auditor)))
        for topic in audited:
            bindings += _reads(hub.principal(auditor), topic)
    _create(admin, bindings)
    _delete_grants_no_longer_made(admin, hub, state.topic_prefix)
    return created


def provision_services(hub: Hub) -> None:
    """The hub services' principals and ACLs: all a new hub needs before it can read its governance log."""
    if hub.settings.kafka_security == "plaintext":
        return
    governance = hub.principal(GOVERNANCE_PRINCIPAL)
    # The broker's super user once, to make governance's principal; governance itself from then on.
    made = hub.keys.has(f"kafka/{governance}", "broker")
    admin = AdminClient(client_config(hub.kafka_governance if made else hub.kafka_admin))
    _upsert_principals(hub, admin, list(SERVICE_PRINCIPALS))
    _create(admin, _service_acls(hub, hub.anchors.topic_prefix))


def _upsert_principals(hub: Hub, admin: AdminClient, names: list[str]) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            hub.principal(n), info, hub.keys.broker_password(hub.principal(n)).reveal()
        )
        for n in names
    ]
    _alter(admin, upserts)


def _drop_logins_out_of_custody(hub: Hub, admin: AdminClient, agencies: list[str]) -> None:
    """A password the hub once made for an agency that now logs in from its own site (an older hub made one
    for every agency, or the agency has left custody): deleted from the broker and from the key store. The
    passwords a site set itself (``POST /v1/site/broker-password``) were never in the store and stay."""
    stale = [hub.principal(a) for a in agencies if hub.keys.has(f"kafka/{hub.principal(a)}", "broker")]
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
    for principal in stale:
        hub.keys.forget_broker_password(principal)


def set_password(admin_access: KafkaAccess, principal: str, password: bytes) -> None:
    """Set ``principal``'s SCRAM password on the broker, passing it through once: nothing keeps it here."""
    admin = AdminClient(client_config(admin_access))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    _alter(admin, [UserScramCredentialUpsertion(principal, info, password)])


def _alter(admin: AdminClient, alterations: list[UserScramCredentialAlteration]) -> None:
    for user, future in admin.alter_user_scram_credentials(alterations).items():
        try:
            future.result()
        except KafkaException as exc:
            raise BrokerError(f"could not set the credentials of principal {user!r}: {exc}") from None


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


def _service_acls(hub: Hub, prefix: str) -> list[AclBinding]:
    """The hub's own principals: ``hub`` (the operator's tools), ``projector``, ``api`` and ``governance``."""
    acls = _hub_acls(hub, prefix) + _projector_acls(hub, prefix) + _api_acls(hub, prefix)
    return acls + _governance_acls(hub, prefix)


def _governance_acls(hub: Hub, prefix: str) -> list[AclBinding]:
    """Governance: write (and read) the governance log; create and describe topics in the hub's namespace
    only; make principals and ACLs (ALTER and DESCRIBE on the cluster: Kafka has no narrower grant for
    them). It reads no dataset topic, the access log or the quarantine."""
    principal = hub.principal(GOVERNANCE_PRINCIPAL)
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
        _readers(principal),
    ]


def _hub_acls(hub: Hub, prefix: str) -> list[AclBinding]:
    services = hub.principal(HUB_PRINCIPAL)
    prefixed, t = ResourcePatternType.PREFIXED, ResourceType.TOPIC
    bindings = [
        _allow(services, t, f"{prefix}{separator}", op, prefixed)
        for separator in (".", "-")  # dataset topics, and the hub's own (governance, checkpoints, quarantine)
        for op in (AclOperation.READ, AclOperation.DESCRIBE)
    ]
    for written in ("quarantine", "access-log"):
        bindings.append(
            _allow(services, t, f"{prefix}-{written}", AclOperation.WRITE, ResourcePatternType.LITERAL)
        )
    bindings.append(_readers(services))
    projector = f"{prefix}-projector"  # GovState.projector_group
    bindings.append(
        _allow(services, ResourceType.GROUP, projector, AclOperation.READ, ResourcePatternType.LITERAL)
    )
    return bindings


def _projector_acls(hub: Hub, prefix: str) -> list[AclBinding]:
    """The projection worker: read the dataset topics and the governance log, write the quarantine, join
    the projector's group. Not the access log."""
    worker = hub.principal(PROJECTOR_PRINCIPAL)
    literal, t = ResourcePatternType.LITERAL, ResourceType.TOPIC
    return [
        *(_allow(worker, t, f"{prefix}.", op, ResourcePatternType.PREFIXED) for op in _READ_OPS),
        *_reads(worker, f"{prefix}-governance"),
        _allow(worker, t, f"{prefix}-quarantine", AclOperation.WRITE, literal),
        _readers(worker),
        _allow(worker, ResourceType.GROUP, f"{prefix}-projector", AclOperation.READ, literal),
    ]


def _api_acls(hub: Hub, prefix: str) -> list[AclBinding]:
    """The query API: read the governance log and the quarantine (for status), write the access log, and
    see the dataset topics' ends (lag): describe, never read, them. No consumer group but its readers'."""
    api = hub.principal(API_PRINCIPAL)
    literal, t = ResourcePatternType.LITERAL, ResourceType.TOPIC
    return [
        _allow(api, t, f"{prefix}.", AclOperation.DESCRIBE, ResourcePatternType.PREFIXED),
        *_reads(api, f"{prefix}-governance"),
        *_reads(api, f"{prefix}-quarantine"),
        _allow(api, t, f"{prefix}-access-log", AclOperation.WRITE, literal),
        _allow(api, t, f"{prefix}-access-log", AclOperation.DESCRIBE, literal),
        _readers(api),
    ]


_READ_OPS = (AclOperation.READ, AclOperation.DESCRIBE)


def _delete_grants_no_longer_made(admin: AdminClient, hub: Hub, prefix: str) -> None:
    """Group grants by prefix (``sharehub-``, ``<prefix>-``) made before each principal had only its own
    literal group, and the shared checkpoint topic's write grants: removed, so an upgraded hub is as tight as
    a new one."""
    principals = {f"User:{hub.principal(name)}" for name in [*SERVICE_PRINCIPALS, *hub.governance.agencies_]}
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


def _any_grant(
    kind: ResourceType, name: str, pattern: ResourcePatternType, principal: str
) -> AclBindingFilter:
    """Every grant to ``principal`` on that resource, whatever the operation or permission."""
    return AclBindingFilter(kind, name, pattern, principal, "*", AclOperation.ANY, AclPermissionType.ANY)


def _create(admin: AdminClient, bindings: list[AclBinding]) -> None:
    unique = list(dict.fromkeys(bindings))  # an owner of several datasets needs its group ACL once
    for binding, future in admin.create_acls(unique).items():
        try:
            future.result()
        except KafkaException as exc:
            raise BrokerError(f"could not create the ACL {binding}: {exc}") from None
