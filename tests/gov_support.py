"""Builders shared by the governance tests: a settable clock, an operator key, a seeded service.

Named test_gov_* so that it stays among the governance tests' files; it holds no tests itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sharehub.avro import load_schema
from sharehub.gov import GovernanceService
from sharehub.gov import events as ev
from sharehub.gov.acts import KeyRing
from sharehub.gov.log import Logged
from sharehub.gov.state import RULE_VIOLATION, fold_log
from sharehub.keys import SigningKey

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
MEMBER_FIELDS = ("member_id", "province_code", "commune_code", "status")

#: A small dataset below secret, so that one approver suffices.
TASKS_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ResolutionTask",
    "namespace": "vn.sharehub.test",
    "fields": [
        {"name": "task_id", "type": "string", "classification": "internal"},
        {"name": "title", "type": "string", "classification": "internal"},
        {"name": "province_code", "type": "string", "classification": "internal"},
        {"name": "budget", "type": "long", "classification": "confidential"},
    ],
}


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


def signing_key(key_id: str = "cpo/sign/1") -> SigningKey:
    return SigningKey(key_id, Ed25519PrivateKey.generate())


def public_hex(key: SigningKey) -> str:
    return key.private.public_key().public_bytes_raw().hex()


AGENCIES = [
    ("cpo", "Central Party Office", "central-office", "top-secret", None),
    ("coc", "Central Organization Commission", "party-agency", "top-secret", None),
    ("op", "Office of the President", "central-office", "top-secret", None),
    ("go", "Government Office", "central-office", "top-secret", None),
    ("ona", "Office of the National Assembly", "central-office", "secret", None),
    (
        "dongthap-ppc",
        "Dong Thap Provincial Party Committee",
        "provincial-party-committee",
        "confidential",
        "cpo",
    ),
    (
        "langson-ppc",
        "Lang Son Provincial Party Committee",
        "provincial-party-committee",
        "confidential",
        "cpo",
    ),
    ("mcst-pc", "Party Committee of the Ministry of Culture", "party-agency", "internal", None),
]


def seeded(
    clock: Clock | None = None, key: SigningKey | None = None, prefix: str = "sharehub"
) -> GovernanceService:
    """A service with the demo agencies, ``party-members`` (secret, owner coc) and ``tasks`` (internal,
    owner go), each with a schema."""
    svc = GovernanceService.in_memory(
        "cpo", key or signing_key(), topic_prefix=prefix, clock=clock or Clock()
    )
    seed(svc)
    return svc


def seed(svc: GovernanceService) -> None:
    for agency_id, name, kind, clearance, parent in AGENCIES:
        svc.register_agency("cpo", agency_id, name, kind, clearance, parent)
    svc.signers.add(party_keys(svc, [a[0] for a in AGENCIES if a[0] != "cpo"]))
    svc.declare_dataset("cpo", "party-members", "coc", "secret", "member_id", description="members")
    svc.register_schema("coc", "party-members", load_schema("party-members"))
    svc.declare_dataset("cpo", "tasks", "go", "internal", "task_id", partitions=1)
    svc.register_schema("go", "tasks", TASKS_SCHEMA)


def party_key_id(agency: str) -> str:
    return f"{agency}/sign/party"


def party_keys(svc: GovernanceService, agencies: list[str]) -> KeyRing:
    """A signing key for each of ``agencies``, registered by the operator and held in a key ring: the
    service seals their acts with it, as each agency's own site would."""
    ring = KeyRing()
    for agency in agencies:
        key = signing_key(party_key_id(agency))
        svc.add_key("cpo", agency, key.key_id, public_hex(key))
        ring.add(agency, key)
    return ring


def propose_tasks(svc: GovernanceService, agreement_id: str = "mcst.tasks.1", **overrides: Any) -> None:
    """mcst-pc asks for tasks, valid from T0 for a year."""
    args: dict[str, Any] = {
        "consumer": "mcst-pc",
        "dataset": "tasks",
        "fields": ["task_id", "title"],
        "purpose": "Follow the resolution tasks of the ministry",
        "legal_basis": "Regulation 384, Art. 5",
        "valid_from": T0,
        "valid_until": T0 + 365 * DAY,
        **overrides,
    }
    actor = args.pop("actor", args["consumer"])
    svc.propose(actor, agreement_id, **args)


def propose_members(
    svc: GovernanceService, agreement_id: str = "dongthap.members.1", **overrides: Any
) -> None:
    """dongthap-ppc asks for four internal fields of the secret party-members dataset."""
    propose_tasks(
        svc,
        agreement_id,
        **{
            "consumer": "dongthap-ppc",
            "dataset": "party-members",
            "fields": list(MEMBER_FIELDS),
            **overrides,
        },
    )


def logged_past_the_rules(svc: GovernanceService, payload: ev.Payload, actor: str = "cpo") -> str:
    """Seal ``payload`` as the log's next event without the service's rules (as a faulty operator could),
    fold the log with it, check that it links the chain but changes nothing (``rule_violation``), and
    return why it was not applied."""
    before = svc.state.dump()
    bad = ev.seal(
        svc.signing_key,
        sequence=svc.state.head_sequence + 1,
        prev_hash=svc.state.head_hash,
        occurred_at=svc.clock(),
        actor=actor,
        payload=payload,
    )
    raws = [*svc._log.read_all(), bad.raw]
    state = fold_log([Logged(n, raw) for n, raw in enumerate(raws)], svc.state.trust, svc.state.topic_prefix)
    assert [(s.offset, s.reason) for s in state.skipped] == [(len(raws) - 1, RULE_VIOLATION)]
    after = state.dump()
    assert state.head_sequence == bad.sequence
    assert after.pop("head") != before.pop("head") and after == before
    return state.skipped[0].detail
