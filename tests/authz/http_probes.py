"""Each HTTP operation of the matrix as one request, sent with a role's credential to the real app.

A probe gets the world and the acting agency and returns the request to send. What the step needs first
(an agreement at the stage the step moves on, a key to rotate) is made by the agencies whose part it is,
through the governance desk, before the state is taken; the request itself is the only thing the role does.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from services.act_signing import seal_request, site_body, with_fixed_times
from services.gov_operations import OPERATIONS, Caller, parse_request, perform
from sharehub.errors import InputError
from sharehub.gov.credentials import credential_id
from sharehub.gov.key_request import make_key_request
from sharehub.gov.vocabulary import in_use
from sharehub.keys import SigningKey
from tests.authz.world import World
from tests.conftest import REPO
from tests.e2e.test_gateway import sealed_at_site
from tooling.synthetic import generate_party_members

#: The agreement the matrix's agreement steps are about: the consumer's, on one of the owner's datasets.
OWNED = "handbook-activities"
CONSUMER, OWNER, OPERATOR, OTHER = "dongthap-ppc", "coc", "cpo", "go"
GRANTED = "party-members"  # the consumer's active agreement
RECORDS = f"/v1/consumers/{CONSUMER}/datasets/{GRANTED}/records"
#: What the consumer's agreement on GRANTED names from the demo's vocabulary (demo/hub.yaml).
PURPOSE = {"purpose": "party-member-management"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent to the hub's gateway, or (``site``) to the owner's gateway at its site, not to the API.
    gateway: bool = False
    site: bool = False

    def send(self, client: TestClient, auth: dict[str, str]) -> str:
        """The answer: its status when it succeeds, ``<status> <error code>`` when refused."""
        content = None if self.json is None else json.dumps(self.json)
        answer = client.request(
            self.method, self.path, content=content, params=self.params,
            headers={"Content-Type": "application/json", **self.headers, **auth},
        )  # fmt: skip
        if answer.status_code < 400:
            return str(answer.status_code)
        return f"{answer.status_code} {answer.json()['error']}"


#: A day and one more millisecond each time: an allowed change of retention always changes something.
_RETENTIONS = itertools.count(86_400_001)


def _fresh() -> str:
    return uuid.uuid4().hex[:12]


def _public_hex() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()


def _as(world: World, agency: str, operation: str, body: dict[str, Any]) -> None:
    """A step taken beforehand by the agency whose part it is (on the hub's machine, as the CLI does)."""
    kind, _ = OPERATIONS[operation]
    world.known = None
    perform(world.hub.governance_desk(), Caller(agency, local=True), operation, kind.model_validate(body))


def _gov(operation: str, body: dict[str, Any]) -> Request:
    return Request("POST", f"/v1/gov/{operation}", body)


def _gov_by(world: World, agency: str, operation: str, body: dict[str, Any]) -> Request:
    """``_gov``, with the act sealed at ``agency``'s own site when the world holds its site's key (an agency
    not in the hub's custody, whose acts the hub cannot seal); an act the rules refuse there goes unsealed,
    for the hub to refuse as it would."""
    signer = world.site_signers.get(agency)
    if signer is None:
        return _gov(operation, body)
    now = dt.datetime.now(dt.UTC)
    request = with_fixed_times(parse_request(operation, body), now)
    try:
        seal = seal_request(world.hub.governance_state(refresh=True), signer, agency, operation, request, now)
    except InputError:
        return _gov(operation, body)
    return _gov(operation, site_body(request, seal))


def _proposal(agreement: str) -> dict[str, Any]:
    """The consumer's proposal of an agreement on one field of the owner's dataset."""
    return {"id": agreement, "consumer": CONSUMER, "dataset": OWNED, "fields": ["activity_id"],
            "purposes": ["party-cell-activities"], "legal_basis": "regulation-384-art-5"}  # fmt: skip


def _agreement_at(world: World, stage: str) -> str:
    """A new agreement of the consumer on the owner's dataset, moved on to ``stage``."""
    agreement = f"{CONSUMER}.{OWNED}.m{_fresh()}"
    steps = ["proposed", "consented", "approved", "suspended"]
    _as(world, CONSUMER, "propose", _proposal(agreement))
    step = {"agreement_id": agreement}
    takes = [
        (OWNER, "consent", step),
        (OPERATOR, "approve", step),
        (OPERATOR, "suspend", step | {"reason": "r"}),
    ]
    for agency, operation, body in takes[: steps.index(stage)]:
        _as(world, agency, operation, body)
    return agreement


def _term(operation: str, world: World | None = None) -> dict[str, str]:
    """A new term of the vocabulary: the request that defines it, or, given the world, its id once the
    operator defined it (for a step that retires it)."""
    term = {"id": f"m{_fresh()}", "label_vi": "Ma trận phân quyền", "label_en": "Authorisation matrix"}
    if operation == "define-legal-basis":
        term["reference"] = "Regulation 384"
    if world is not None:
        _as(world, OPERATOR, operation, term)
    return term


def _purposes_widened(world: World) -> dict[str, Any]:
    """A change of the owner's dataset's purposes to every purpose in use, a new one among them (defined by
    the operator first): a widening, so no agreement on it stands in the way, and never the same list."""
    _term("define-purpose", world)
    vocabulary = world.hub.governance_state(refresh=True).purposes_
    return {"dataset": OWNED, "purposes": in_use(vocabulary), "reason": "the matrix widens them"}


def _key_of(world: World, agency: str) -> str:
    """A new signing key of ``agency``, added by the operator."""
    key_id = f"{agency}/sign/k{_fresh()}"
    _as(world, OPERATOR, "add-key", {"agency": agency, "key_id": key_id, "public_key": _public_hex()})
    return key_id


def _credential_of(world: World, agency: str) -> str:
    """The id of a new credential of ``agency``, issued by the operator (not one a role signs in with)."""
    digest = hashlib.sha256(_fresh().encode()).hexdigest()
    _as(world, OPERATOR, "issue-credential", {"agency": agency, "sha256": digest})
    return credential_id(digest)


def _key_request(agency: str) -> dict[str, Any]:
    key = SigningKey(f"{agency}/sign/s{_fresh()}", Ed25519PrivateKey.generate())
    request = make_key_request(key, agency=agency, valid_from=dt.datetime.now(dt.UTC))
    return request.model_dump(mode="json")


def _next_schema() -> dict[str, Any]:
    """The owner's dataset's schema with one more optional field (a compatible new version)."""
    schema: dict[str, Any] = json.loads((REPO / "schemas" / f"{OWNED}.avsc").read_text())
    extra = {
        "name": f"m{_fresh()}",
        "type": ["null", "string"],
        "default": None,
        "classification": "internal",
    }
    return {**schema, "fields": [*schema["fields"], extra]}


def _records(me: str) -> str:
    return f"/v1/consumers/{me}/datasets/{GRANTED}/records"


def _publish(body: dict[str, Any], kind: str, *, site: bool = False) -> Request:
    key = {"Idempotency-Key": _fresh()}
    return Request("POST", f"/v1/datasets/{GRANTED}/{kind}", body, headers=key, gateway=True, site=site)


def _sealed_at_the_site(world: World) -> dict[str, Any]:
    """A body of one envelope the owner's site sealed and signed, after the chain heads its gateway gives
    (sealing takes keys from the key service, which makes the subject's and logs the release)."""
    world.known = None
    heads = world.site_gateway.get(f"/v1/datasets/{GRANTED}/chain", headers=world.bearer("owner"))
    assert heads.status_code == 200, heads.text
    [raw] = sealed_at_site(world.site_home, heads.json(), [_member()], GRANTED)
    return {"envelopes": [base64.b64encode(raw).decode()]}


def _member() -> dict[str, Any]:
    record: dict[str, Any] = json.loads(json.dumps(next(generate_party_members(1, seed=7)), default=str))
    return {**record, "member_id": f"PM{uuid.uuid4().int % 10**10:010d}"}


Probe = Callable[[World, str], Request]

#: Operation name (as in the matrix) -> the request the acting agency ``me`` sends.
PROBES: dict[str, Probe] = {
    "register-agency": lambda w, me: _gov(
        "register-agency",
        {"id": f"m{_fresh()}", "name": "Matrix", "kind": "state-agency", "clearance": "internal"},
    ),
    "declare-dataset": lambda w, me: _gov(
        "declare-dataset",
        {"id": f"m{_fresh()}", "owner": OWNER, "classification": "internal", "key_field": "id"},
    ),
    "issue-credential": lambda w, me: _gov(
        "issue-credential", {"agency": OTHER, "sha256": uuid.uuid4().hex * 2}
    ),
    "rotate-credential": lambda w, me: _gov(
        "rotate-credential", {"credential_id": _credential_of(w, OTHER), "sha256": uuid.uuid4().hex * 2}
    ),
    "revoke-own-credential": lambda w, me: _gov_by(
        w, me, "revoke-credential", {"credential_id": _credential_of(w, me), "reason": "leaked"}
    ),
    "revoke-others-credential": lambda w, me: _gov(
        "revoke-credential", {"credential_id": _credential_of(w, OTHER), "reason": "leaked"}
    ),
    "add-own-key": lambda w, me: _gov_by(
        w, me, "add-key", {"agency": me, "key_id": f"{me}/sign/a{_fresh()}", "public_key": _public_hex()}
    ),
    "add-others-key": lambda w, me: _gov(
        "add-key", {"agency": OTHER, "key_id": f"{OTHER}/sign/a{_fresh()}", "public_key": _public_hex()}
    ),
    "register-own-key": lambda w, me: _gov_by(w, me, "register-key", _key_request(me)),
    "register-others-key": lambda w, me: _gov("register-key", _key_request(OTHER)),
    "rotate-own-key": lambda w, me: _gov_by(
        w,
        me,
        "rotate-key",
        {
            "agency": me,
            "old_key_id": _key_of(w, me),
            "new_key_id": f"{me}/sign/r{_fresh()}",
            "public_key": _public_hex(),
        },
    ),
    "revoke-own-key": lambda w, me: _gov_by(
        w, me, "revoke-key", {"agency": me, "key_id": _key_of(w, me), "reason": "lost"}
    ),
    "register-schema": lambda w, me: _gov("register-schema", {"dataset": OWNED, "schema": _next_schema()}),
    "propose": lambda w, me: _gov("propose", _proposal(f"{CONSUMER}.{OWNED}.p{_fresh()}")),
    "consent": lambda w, me: _gov("consent", {"agreement_id": _agreement_at(w, "proposed")}),
    "approve": lambda w, me: _gov("approve", {"agreement_id": _agreement_at(w, "consented")}),
    "suspend": lambda w, me: _gov("suspend", {"agreement_id": _agreement_at(w, "approved"), "reason": "r"}),
    "resume": lambda w, me: _gov("resume", {"agreement_id": _agreement_at(w, "suspended"), "reason": "r"}),
    "revoke": lambda w, me: _gov("revoke", {"agreement_id": _agreement_at(w, "proposed"), "reason": "r"}),
    "define-purpose": lambda w, me: _gov("define-purpose", _term("define-purpose")),
    "retire-purpose": lambda w, me: _gov(
        "retire-purpose", {"id": _term("define-purpose", w)["id"], "reason": "r"}
    ),
    "set-dataset-purposes": lambda w, me: _gov("set-dataset-purposes", _purposes_widened(w)),
    "set-dataset-retention": lambda w, me: _gov(
        "set-dataset-retention",
        {"dataset": OWNED, "retention_ms": next(_RETENTIONS), "reason": "the matrix keeps it a day or so"},
    ),
    "define-legal-basis": lambda w, me: _gov("define-legal-basis", _term("define-legal-basis")),
    "retire-legal-basis": lambda w, me: _gov(
        "retire-legal-basis", {"id": _term("define-legal-basis", w)["id"], "reason": "r"}
    ),
    "list-operations": lambda w, me: Request("GET", "/v1/gov/operations"),
    "read-state": lambda w, me: Request("GET", "/v1/gov/state"),
    "read-agreement-history": lambda w, me: Request(
        "GET", f"/v1/gov/agreements/{CONSUMER}.{GRANTED}.1/history"
    ),
    "dataset-keys": lambda w, me: Request("GET", f"/v1/keys/{GRANTED}"),
    "earlier-data-key": lambda w, me: Request("GET", f"/v1/keys/{GRANTED}/data/{GRANTED}/data/1"),
    "subject-keys": lambda w, me: Request(
        "POST", f"/v1/keys/{GRANTED}/subjects", {"refs": [uuid.uuid4().hex], "create": True}
    ),
    "set-own-broker-password": lambda w, me: Request(
        "POST", "/v1/site/broker-password", {"password": w.site_password}
    ),
    "who-am-i": lambda w, me: Request("GET", "/v1/me"),
    "list-own-datasets": lambda w, me: Request("GET", f"/v1/consumers/{me}/datasets", params=PURPOSE),
    "read-consumers-records": lambda w, me: Request("GET", RECORDS, params=PURPOSE),
    "read-consumers-record": lambda w, me: Request("GET", f"{RECORDS}/PM0000000001", params=PURPOSE),
    "read-own-party-members": lambda w, me: Request("GET", _records(me), params=PURPOSE),
    "status": lambda w, me: Request("GET", "/v1/status"),
    "metrics": lambda w, me: Request("GET", "/metrics"),
    "publish-records": lambda w, me: _publish({"records": [_member()]}, "records"),
    "publish-envelopes": lambda w, me: _publish({"envelopes": ["c2hhcmVodWI="]}, "envelopes"),
    "read-chain": lambda w, me: Request("GET", f"/v1/datasets/{GRANTED}/chain", gateway=True),
    "site-publish-records": lambda w, me: _publish({"records": [_member()]}, "records", site=True),
    "site-publish-envelopes": lambda w, me: _publish(_sealed_at_the_site(w), "envelopes", site=True),
    "site-read-chain": lambda w, me: Request("GET", f"/v1/datasets/{GRANTED}/chain", gateway=True, site=True),
}
