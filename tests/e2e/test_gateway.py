"""The HTTPS ingest gateway (`sharehub serve gateway`) against the real broker and a real key service: at an
agency's site (envelopes sealed at the site produced unchanged and opened by the projection's codec; records
sealed with the site's key; each refusal with its status and reason; an Idempotency-Key answered alike across
a kill -9 of the gateway) and at the hub in custodial mode (only agencies in custody; the audit counts what
the hub sealed for them).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from connectors.record_rules import RecordRules
from connectors.sdk import SiteSession
from services.audit import audit_verify
from services.cli.demo_commands import load_with_sites
from services.gateway.app import create_gateway
from services.gateway.modes import Limits, at_site
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from services.refusals import sentence
from sharehub import chain
from sharehub.codec import DatasetCodec, Producing
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.e2e.test_agency_sdk import PASSPHRASE, _site
from tests.e2e.test_api_schemathesis import CHECKS
from tests.kafka_helpers import free_port, hub_env, topic_messages, wait_until
from tooling.synthetic import generate_party_members
from tooling.synthetic.citizen_feedback import generate_citizen_feedback
from tooling.synthetic.handbook_activities import generate_handbook_activities

pytestmark = pytest.mark.kafka

DATASET = "party-members"
EXAMPLES = int(os.environ.get("SHAREHUB_SCHEMATHESIS_EXAMPLES", "20"))


@pytest.fixture
def hub(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Hub]:
    """coc makes its keys at its own site; go (owner of citizen-feedback) is in the hub's custody."""
    settings = Settings(
        home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None
    )
    with Hub(settings) as hub:
        load_with_sites(hub, demo_spec(own_sites=("coc",)), ["coc"])  # they sign their own acts
        yield hub


class Gateway:
    """A `sharehub serve gateway` process, its address and the CA its certificate chains to."""

    def __init__(self, env: dict[str, str], home: Path, *args: str) -> None:
        self.env, self.home, self.args = env, home, args
        self.port = free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "services", "serve", "gateway", "--port", str(self.port), *self.args]
        with (self.home / "gateway.log").open("ab") as log:
            process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        try:
            wait_until(lambda: self._answers(process), timeout=60, what="the gateway")
        except BaseException:
            process.kill()
            process.wait()
            raise
        return process

    def _answers(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise AssertionError((self.home / "gateway.log").read_text())
        try:
            with self.client() as client:
                return client.get(self.base + "/healthz", timeout=2).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    def client(self) -> httpx.Client:
        return httpx.Client(
            verify=ssl.create_default_context(cafile=str(self.home / "tls" / "ca.pem")), timeout=60
        )

    def kill_and_restart(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = self._start()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def gateway(env: dict[str, str], home: Path, *args: str) -> Iterator[Gateway]:
    served = Gateway(env, home, *args)
    try:
        yield served
    finally:
        served.stop()


def _site_env(home: Path) -> dict[str, str]:
    secret = home / "signing.passphrase"
    secret.write_bytes(PASSPHRASE)
    secret.chmod(0o600)
    return {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }


def _post(client: httpx.Client, url: str, body: Any, token: str | None, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(url, content=content, headers=headers | {"Content-Type": "application/json"})


def sealed_at_site(
    home: Path, heads: dict[str, Any] | None, records: list[dict[str, Any]], dataset: str = DATASET
) -> list[bytes]:
    """Envelopes of ``records`` sealed and signed at the site, continuing the chain heads the gateway gave
    (None: from the start of each lane)."""
    session = SiteSession(home, PASSPHRASE)
    governance = session.governance()
    ds = governance.dataset(dataset)
    keys = session.key_service()
    heads = heads or {"lanes": ds.partitions, "heads": []}
    try:
        at = {h["lane"]: chain.ChainHead(h["sequence"], bytes.fromhex(h["hash"])) for h in heads["heads"]}
        producing = Producing("coc", session.site.signing_key(PASSPHRASE), heads["lanes"], at)
        codec = DatasetCodec(ds.id, ds.key_field, governance, keys, producing=producing)
        rules = RecordRules(governance, dataset)
        sealed = codec.seal_many([rules.validated(r) for r in records])
        return [s.envelope.raw for s in sealed if not isinstance(s, Exception)]
    finally:
        keys.close()


def _on_topic(hub: Hub, dataset: str) -> list[tuple[int, bytes]]:
    topic = hub.governance_state(refresh=True).dataset(dataset).topic
    return [(p, raw) for p, _, raw in topic_messages(hub, topic)]


def _refusal(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/json", response.text
    code = response.json()["error"]
    # No Accept-Language: the code's sentence in English.
    assert (response.json()["message"], response.headers["content-language"]) == (sentence(code, "en"), "en")
    return response.status_code, code


def test_a_sites_gateway_publishes_exactly_once_and_refuses_each_bad_input(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home = _site(hub, tmp_path, api)
    token = (home / "credential").read_text().strip()
    records_url = f"/v1/datasets/{DATASET}/records"
    members = list(generate_party_members(12, seed=8))
    with gateway(_site_env(home), home, "--max-body", "65536") as served, served.client() as client:
        url = served.base + records_url
        assert client.get(served.base + "/readyz").json() == {"status": "ready"}, "the site's login answers"
        first = _post(client, url, {"records": members[:5]}, token, "batch-1")
        assert first.status_code == 200, first.text
        assert first.json() == {
            "dataset": DATASET, "idempotency_key": "batch-1", "items": 5, "published": 5, "rejected": [],
            "custodial": False,
        }  # fmt: skip
        again = _post(client, url, {"records": members[:5]}, token, "batch-1")
        assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (
            200, first.json(), "true"
        )  # fmt: skip
        assert _refusal(_post(client, url, {"records": members[5:7]}, token, "batch-1")) == (
            409, "idempotency_conflict"
        )  # fmt: skip

        # Envelopes sealed and signed at the site, after the chain heads the gateway reports.
        heads = client.get(
            served.base + f"/v1/datasets/{DATASET}/chain", headers={"Authorization": f"Bearer {token}"}
        )
        assert heads.status_code == 200, heads.text
        envelopes = sealed_at_site(home, heads.json(), members[7:10], DATASET)
        body = {"envelopes": [base64.b64encode(raw).decode() for raw in envelopes]}
        sent = _post(client, served.base + f"/v1/datasets/{DATASET}/envelopes", body, token, "sealed-1")
        assert (sent.status_code, sent.json()["published"]) == (200, 3), sent.text

        _each_refusal(client, served.base, token, hub, home, members)

        served.kill_and_restart()  # kill -9: the journal and the topic are all that is left
        with served.client() as after:
            retried = _post(after, url, {"records": members[:5]}, token, "batch-1")
            resent = _post(after, served.base + f"/v1/datasets/{DATASET}/envelopes", body, token, "sealed-1")
        assert (retried.status_code, retried.json()) == (200, first.json())
        assert (resent.status_code, resent.json()) == (200, sent.json())

    on_topic = _on_topic(hub, DATASET)
    assert len(on_topic) == 8, "5 records and 3 envelopes, each once, across retries and a kill -9"
    raws = {raw for _, raw in on_topic}
    assert set(envelopes) <= raws, "the envelopes sealed at the site are on the topic byte for byte"
    opened = hub.codec(DATASET).open_many(on_topic)  # the projection's codec accepts every one
    assert sorted(getattr(o, "record_key", "") for o in opened) == sorted(
        m["member_id"] for m in members[:5] + members[7:10]
    )


def _each_refusal(
    client: httpx.Client, base: str, token: str, hub: Hub, home: Path, members: list[dict[str, Any]]
) -> None:
    url = f"{base}/v1/datasets/{DATASET}/records"
    ok = {"records": members[10:11]}
    others = issue_credential(hub, "go")
    assert _refusal(_post(client, url, ok, None, "k")) == (401, "not_authenticated")
    assert _refusal(_post(client, url, ok, others, "k")) == (401, "not_authenticated"), "only coc's own"
    assert _refusal(_post(client, url, ok, token, None)) == (400, "idempotency_key")
    assert _refusal(_post(client, url, ok, token, "has space")) == (400, "idempotency_key")
    assert _refusal(_post(client, f"{base}/v1/datasets/nope/records", ok, token, "k")) == (404, "not_found")
    assert _refusal(_post(client, f"{base}/v1/datasets/documents/records", ok, token, "k")) == (
        403,
        "forbidden",
    )
    assert _refusal(_post(client, url, b"x" * 70_000, token, "k")) == (413, "too_large")
    assert _refusal(_post(client, url, b"{not json", token, "k")) == (400, "not_json")
    assert _refusal(_post(client, url, {"rows": []}, token, "k")) == (422, "invalid_request")
    bad = _post(client, url, {"records": [members[10], {"member_id": 7}]}, token, "k")
    assert _refusal(bad) == (422, "invalid_record") and "item 2" in bad.json()["detail"]
    assert "member_id" in bad.json()["detail"] and str(members[10]["full_name"]) not in bad.text

    envelopes_url = f"{base}/v1/datasets/{DATASET}/envelopes"
    heads = client.get(
        f"{base}/v1/datasets/{DATASET}/chain", headers={"Authorization": f"Bearer {token}"}
    ).json()
    [raw] = sealed_at_site(home, heads, members[11:12])
    forged = raw[:-1] + bytes([raw[-1] ^ 1])
    [activity] = sealed_at_site(
        home, None, list(generate_handbook_activities(1, seed=2)), "handbook-activities"
    )
    by_custody = _sealed_by(hub, "go", members[11])
    for envelope, reason in [
        (forged, "bad_signature"), (b"\x00not an envelope", "malformed"), (by_custody, "not_owner"),
        (activity, "dataset_mismatch"),
    ]:  # fmt: skip
        body = {"envelopes": [base64.b64encode(envelope).decode()]}
        assert _refusal(_post(client, envelopes_url, body, token, "e")) == (422, reason)
    assert _refusal(_post(client, envelopes_url, {"envelopes": ["%%"]}, token, "e")) == (422, "malformed")
    twice = {
        "envelopes": [base64.b64encode(raw).decode()] * 2
    }  # all or nothing: the second repeats the first
    assert _refusal(_post(client, envelopes_url, twice, token, "e")) == (422, "duplicate")


def _sealed_by(hub: Hub, agency: str, member: dict[str, Any]) -> bytes:
    """An envelope of party-members sealed by ``agency`` with the key the hub holds for it (not the owner)."""
    governance = hub.governance_state(refresh=True)
    ds = governance.dataset(DATASET)
    producing = Producing(agency, hub.keys.signing_key(agency), ds.partitions)
    codec = DatasetCodec(ds.id, ds.key_field, governance, hub.keys, producing=producing)
    [sealed] = codec.seal_many([RecordRules(governance, DATASET).validated(member)])
    assert not isinstance(sealed, Exception)
    return sealed.envelope.raw


def test_the_hubs_gateway_seals_only_for_agencies_in_custody_and_the_audit_counts_them(hub: Hub) -> None:
    go, coc = issue_credential(hub, "go"), issue_credential(hub, "coc")
    feedback = list(generate_citizen_feedback(4, seed=3))
    with (
        gateway(hub_env(hub), hub.home, "--rate", "0.05", "--burst", "3") as served,
        served.client() as client,
    ):
        ready = client.get(served.base + "/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"}), "the hub's login answers"
        url = served.base + "/v1/datasets/citizen-feedback/records"
        done = _post(client, url, {"records": feedback}, go, "fb-1")
        assert done.status_code == 200, done.text
        assert (done.json()["published"], done.json()["custodial"]) == (4, True)
        assert _post(client, url, {"records": feedback}, go, "fb-1").json() == done.json()
        coc_url = served.base + f"/v1/datasets/{DATASET}/records"
        assert _refusal(_post(client, coc_url, {"records": []}, coc, "c")) == (403, "forbidden"), (
            "not in custody"
        )
        envelopes = served.base + "/v1/datasets/citizen-feedback/envelopes"
        assert _refusal(_post(client, envelopes, {"envelopes": ["AA=="]}, go, "e")) == (403, "forbidden")
        throttled = _post(client, url, {"records": feedback}, go, "fb-2")
        assert (
            _refusal(throttled) == (429, "too_many_requests") and int(throttled.headers["Retry-After"]) >= 1
        )
    report = audit_verify(hub.kafka, hub.governance_state(refresh=True))
    assert not report.findings and report.sealed_in_custody == {"go": 4}
    assert report.to_json()["sealed_in_custody"] == {"go": 4}


def test_the_gateway_answers_as_its_openapi_document_says(hub: Hub, api: str, tmp_path: Path) -> None:
    """schemathesis over the site gateway's routes (in process, on the real broker and key service): valid and
    invalid cases, never a 5xx, each answer as documented. Bounded for ``make test``; a longer fuzz run is
    ``SHAREHUB_SCHEMATHESIS_EXAMPLES=500 make test -- tests/e2e/test_gateway.py -k openapi``."""
    home = _site(hub, tmp_path, api)
    token = (home / "credential").read_text().strip()
    served, close = at_site(home, PASSPHRASE, Limits(rate=10_000, burst=10_000))
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_gateway(served))
        answered: Counter[int] = Counter()
        for operation in [result.ok() for result in schema.get_all_operations()]:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))  # fmt: skip
                def answers_as_documented(case: schemathesis.Case) -> None:
                    if case.path_parameters is not None and "dataset" in case.path_parameters:
                        case.path_parameters["dataset"] = DATASET  # past the owner's check, into the body
                    response = case.call_and_validate(
                        headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
                    )
                    answered[response.status_code] += 1

                try:
                    answers_as_documented()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, operation.label
    finally:
        close()
    assert {200, 400, 422} <= set(answered), sorted(answered.items())
