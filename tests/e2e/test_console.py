"""The web console in-process (FastAPI's TestClient) over a real hub on the real broker: login, session,
CSRF, security headers, need-to-know, acts, languages and the local API docs.

One hub for the module (its governance on the broker, five members projected into the demo consumers' read
models); each test uses its own client, so its own cookies. ``mcst-pc`` holds its own key (a site), the
other agencies are in the hub's custody.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Producer
from fastapi import FastAPI
from fastapi.testclient import TestClient

from projections.projector import LogMessage, Quarantined
from projections.quarantine import encode_quarantined
from projections.read_model import REPLAY
from services.access_log import read_access_log
from services.act_signing import seal_request, site_body, with_fixed_times
from services.api.app import create_app
from services.console import audit_jobs, csrf, session
from services.console.render import SECURITY_HEADERS
from services.console.state import Console
from services.gov_operations import parse_request
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from sharehub.evidence_check import verify_pack
from sharehub.evidence_pack import trust_fingerprint
from sharehub.gov import anchors
from sharehub.gov.views import token_hash
from sharehub.kafka import producer_config
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.gov_support import public_hex, signing_key
from tests.kafka_helpers import wait_until
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector

pytestmark = pytest.mark.kafka
SITE = "mcst-pc"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("console") / "home"
    settings = Settings(home=home, kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None)
    hub = Hub(settings)
    load(hub.governance_desk(), demo_spec(own_sites=(SITE,)))
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 6)]))
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def app(hub: Hub) -> FastAPI:
    return create_app(hub)


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        yield client


def log_in(client: TestClient, credential: str) -> httpx.Response:
    client.get("/console/login")
    token = client.cookies[csrf.LOGIN_COOKIE]
    return client.post("/console/login", data={"credential": credential, "csrf": token})


def form_token(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', client.get("/console/").text)
    assert found, "the home page's forms carry the session's CSRF token"
    return found.group(1)


def head(hub: Hub) -> int:
    return hub.governance_state(refresh=True).head_sequence


def test_an_unknown_credential_is_refused_and_opens_no_session(browser: TestClient) -> None:
    refused = log_in(browser, "shc_not-a-real-one")
    assert refused.status_code == 401
    assert "unknown credential" in refused.text
    assert session.COOKIE not in browser.cookies
    assert browser.get("/console/").headers["location"] == "/console/login"


def test_a_login_opens_a_session_in_a_strict_cookie_and_every_page_has_the_security_headers(
    hub: Hub, browser: TestClient
) -> None:
    logged_in = log_in(browser, issue_credential(hub, "langson-ppc"))
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/console/"
    cookie = next(c for c in logged_in.headers.get_list("set-cookie") if c.startswith(session.COOKIE + "="))
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/console"):
        assert attribute.lower() in cookie.lower(), cookie
    pages = [browser.get(p) for p in ("/console/", "/console/login", "/console/static/console.css")]
    pages.append(browser.get("/console/records/dongthap-ppc/party-members"))  # a refusal, too
    for page in pages:
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value, (page.url, name)
    assert "default-src 'none'" in pages[0].headers["content-security-policy"]
    assert "langson-ppc.party-members.1" in pages[0].text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(hub: Hub, browser: TestClient) -> None:
    with hub.governing() as gov:
        gov.propose("langson-ppc", "langson-ppc.csrf.1", "langson-ppc", "party-members", ["member_id"],
                    "Count members", "Regulation 384, Art. 5")  # fmt: skip
    log_in(browser, issue_credential(hub, "coc"))
    before = head(hub)
    for sent in ({}, {"csrf": "0" * 64}):
        refused = browser.post("/console/act/consent", data={"agreement_id": "langson-ppc.csrf.1", **sent})
        assert refused.status_code == 403, refused.text
        assert "CSRF token is missing or wrong" in refused.text
    assert head(hub) == before
    assert hub.governance_state().agreement("langson-ppc.csrf.1").stage == "proposed"
    # The login form's own token: without its cookie the login is refused before the credential is read.
    browser.cookies.clear()
    assert browser.post("/console/login", data={"credential": "x", "csrf": "y"}).status_code == 403
    # With the token, the owner's consent is taken.
    log_in(browser, issue_credential(hub, "coc"))
    done = browser.post("/console/act/consent", data={"agreement_id": "langson-ppc.csrf.1",
                                                      "csrf": form_token(browser)})  # fmt: skip
    assert done.status_code == 303, done.text
    assert hub.governance_state(refresh=True).agreement("langson-ppc.csrf.1").stage == "consented"


def test_a_consumer_browses_its_own_records_access_logged_and_never_anothers(
    hub: Hub, browser: TestClient
) -> None:
    log_in(browser, issue_credential(hub, "langson-ppc"))
    purpose = "Console check of the commune counts"
    own = browser.get("/console/records/langson-ppc/party-members", params={"purpose": purpose})
    assert own.status_code == 200, own.text
    assert own.text.count("<td>PM00000000") == 5
    filtered = browser.get(
        "/console/records/langson-ppc/party-members",
        params={"purpose": purpose, "filter": 'member_id == "PM0000000002"'},
    )
    assert filtered.text.count("<td>PM00000000") == 1
    bad_filter = browser.get(
        "/console/records/langson-ppc/party-members", params={"purpose": purpose, "filter": "nonsense =="}
    )
    assert bad_filter.status_code == 400, bad_filter.text
    other = browser.get("/console/records/dongthap-ppc/party-members", params={"purpose": purpose})
    assert other.status_code == 403
    assert "may not read the read model of &#39;dongthap-ppc&#39;" in other.text
    state = hub.governance_state()
    logged = [r for r in read_access_log(hub.kafka, state.access_log_topic) if r["purpose"] == purpose]
    assert [r["operation"] for r in logged] == ["list_records", "list_records"]
    assert {r["consumer"] for r in logged} == {"langson-ppc"}


def test_logging_in_and_out_is_in_the_access_log_and_logging_out_ends_the_session(
    hub: Hub, browser: TestClient
) -> None:
    log_in(browser, issue_credential(hub, "ona"))
    out = browser.post("/console/logout", data={"csrf": form_token(browser)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert browser.get("/console/").headers["location"] == "/console/login"
    topic = hub.governance_state().access_log_topic
    logged = [r["operation"] for r in read_access_log(hub.kafka, topic) if r["consumer"] == "ona"]
    assert logged == ["console_login", "console_logout"]


def test_a_revoked_credential_ends_its_sessions(hub: Hub, browser: TestClient) -> None:
    credential = issue_credential(hub, "thainguyen-ppc")
    log_in(browser, credential)
    assert browser.get("/console/").status_code == 200
    record = hub.governance_state().credential(token_hash(credential))
    assert record is not None
    with hub.governing() as gov:
        gov.revoke_credential("cpo", record.id, "left on a shared machine")
    wait_until(
        lambda: browser.get("/console/").headers.get("location") == "/console/login",
        timeout=10,
        what="the session to end with its credential",
    )


def test_a_session_expires_after_its_lifetime(hub: Hub, app: FastAPI, browser: TestClient) -> None:
    console: Console = app.state.console
    digest = token_hash(issue_credential(hub, "dongthap-ppc"))
    hub.governance_state(refresh=True)  # the state the app reads (its follower would in a moment)
    now = dt.datetime.now(dt.UTC)
    lifetime = dt.timedelta(seconds=console.sessions.lifetime_s)
    for issued, answer in ((now - lifetime / 2, 200), (now - lifetime - dt.timedelta(seconds=1), 303)):
        browser.cookies.set(session.COOKIE, console.sessions.seal("dongthap-ppc", digest, issued))
        assert browser.get("/console/").status_code == answer
    forged = console.sessions.seal("dongthap-ppc", digest, now)[:-3] + "AAA"
    browser.cookies.set(session.COOKIE, forged)
    assert browser.get("/console/").status_code == 303


def test_the_roles_sections_show_what_each_may_see(hub: Hub, app: FastAPI) -> None:
    def home(agency: str) -> str:
        with TestClient(app, base_url="https://testserver") as client:
            log_in(client, issue_credential(hub, agency))
            return client.get("/console/").text

    operator, owner, consumer = home("cpo"), home("coc"), home("langson-ppc")
    assert 'id="operator"' in operator and 'id="central-office"' in operator
    assert "Nothing quarantined" in operator or "Không có sự kiện bị cách ly" in operator
    assert 'id="operator"' not in owner and 'id="owner"' in owner
    assert 'id="owner"' not in consumer and 'id="central-office"' not in consumer
    assert "dongthap-ppc.party-members.1" not in consumer, "another consumer's agreement is not shown"
    assert "documents" not in consumer, "a top-secret dataset is not shown to an agency not cleared for it"


def test_a_site_seals_its_act_at_its_site_and_a_bad_seal_changes_nothing(
    hub: Hub, browser: TestClient
) -> None:
    log_in(browser, issue_credential(hub, SITE))
    proposal = {
        "id": "mcst-pc.tasks.1", "dataset": "resolution-tasks", "fields": "task_id, task_title",
        "purpose": "Follow the ministry's tasks", "legal_basis": "Regulation 384, Art. 5",
    }  # fmt: skip
    step_one = browser.post("/console/act/propose", data={**proposal, "csrf": form_token(browser)})
    assert step_one.status_code == 200, step_one.text
    assert "sharehub agency sign-act propose --request" in step_one.text
    assert "&#34;consumer&#34;: &#34;mcst-pc&#34;" in step_one.text, "the request names the site as consumer"
    before = head(hub)
    body = {"id": "mcst-pc.tasks.1", "consumer": SITE, "dataset": "resolution-tasks",
            "fields": ["task_id", "task_title"], "purpose": "x", "legal_basis": "y",
            "act_seal": {"key_id": "mcst-pc/sign/1", "signature": "00" * 64,
                         "signed_at": dt.datetime.now(dt.UTC).isoformat()}}  # fmt: skip
    for pasted, status, reason in (
        ("not json", 400, "Expecting value"),
        (json.dumps(body), 403, "governance event"),
    ):
        sent = {"sealed": pasted, "csrf": form_token(browser)}
        refused = browser.post("/console/act/propose/sealed", data=sent)
        assert refused.status_code == status, refused.text
        assert "Bị từ chối: " + reason in refused.text, refused.text
    assert head(hub) == before


def test_a_site_seals_its_proposal_with_its_own_key_and_the_console_submits_it(
    hub: Hub, browser: TestClient
) -> None:
    """The two steps as a site takes them: the request the console shows, sealed with the site's key as
    'sharehub agency sign-act' seals it, pasted back; the hub never held that key."""
    site_key = signing_key("mcst-pc/sign/console")
    with hub.governing() as gov:
        gov.add_key("cpo", SITE, site_key.key_id, public_hex(site_key))
    log_in(browser, issue_credential(hub, SITE))
    proposal = {
        "id": "mcst-pc.tasks.sealed", "dataset": "resolution-tasks", "fields": "task_id, task_title",
        "purpose": "Follow the ministry's tasks", "legal_basis": "Regulation 384, Art. 5",
    }  # fmt: skip
    step_one = browser.post("/console/act/propose", data={**proposal, "csrf": form_token(browser)})
    shown = re.search(r'<pre id="request">([^<]*)</pre>', step_one.text)
    assert shown is not None, step_one.text
    now = dt.datetime.now(dt.UTC)
    request = with_fixed_times(parse_request("propose", json.loads(html.unescape(shown.group(1)))), now)
    seal = seal_request(hub.governance_state(refresh=True), site_key, SITE, "propose", request, now)
    pasted = json.dumps(site_body(request, seal))
    done = browser.post("/console/act/propose/sealed", data={"sealed": pasted, "csrf": form_token(browser)})
    assert done.status_code == 303, done.text
    made = hub.governance_state(refresh=True).agreement("mcst-pc.tasks.sealed")
    assert made.stage == "proposed" and made.terms.consumer == SITE
    assert not hub.keys.has(site_key.key_id, "signing"), "the hub never held the site's key"
    # The same sealed body again is refused: the agreement exists, nothing more is written.
    before = head(hub)
    again = browser.post("/console/act/propose/sealed", data={"sealed": pasted, "csrf": form_token(browser)})
    assert again.status_code == 409 and head(hub) == before


def test_the_language_switch_and_the_default_vietnamese(browser: TestClient) -> None:
    assert "Đăng nhập" in browser.get("/console/login").text
    switched = browser.get("/console/lang/en", params={"next": "/console/login"})
    assert switched.status_code == 303 and switched.headers["location"] == "/console/login"
    english = browser.get("/console/login").text
    assert "Log in" in english and "Đăng nhập" not in english.replace('lang="vi">Tiếng Việt', "")
    away = browser.get("/console/lang/vi", params={"next": "https://example.org/"})
    assert away.headers["location"] == "/console/", "never a redirect off the console"


def test_the_api_docs_load_only_local_files(browser: TestClient) -> None:
    docs = browser.get("/docs")
    assert docs.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sources and all(s.startswith("/console/static/") for s in sources), sources
    for source in sources:
        assert browser.get(source).status_code == 200, source
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert browser.get("/openapi.json").json()["info"]["title"] == "sharehub query API"


def test_the_session_key_is_kept_wrapped_in_the_key_store_and_shared(hub: Hub) -> None:
    key = hub.keys.console_session_key().reveal()
    assert len(key) == 32
    elsewhere = Hub(hub.settings)  # another API process of the same hub
    try:
        assert elsewhere.keys.console_session_key().reveal() == key
    finally:
        elsewhere.close()
    on_disk = [p for p in hub.home.rglob("*") if p.is_file() and key in p.read_bytes()]
    assert on_disk == [], "the key is nowhere in clear"


def test_an_agency_sees_its_own_access_history_and_the_auditor_searches_everyones(
    hub: Hub, app: FastAPI, browser: TestClient
) -> None:
    purpose = "Console check of the access history"
    log_in(browser, issue_credential(hub, "dongthap-ppc"))
    browser.get("/console/records/dongthap-ppc/party-members", params={"purpose": purpose})
    own = browser.get("/console/access")
    assert own.status_code == 200, own.text
    row = re.search(rf"<tr><td>[^<]*</td><td><code>list_records</code></td><td>party-members</td>"
                    rf"<td>{purpose}</td>.*?<td class=\"num\">(\d+)</td></tr>", own.text, re.S)  # fmt: skip
    assert row is not None and row.group(1) == "5", own.text
    assert "dongthap-ppc.party-members.1" in own.text and "console_login" in own.text
    topic = hub.governance_state().access_log_topic
    everyone = list(read_access_log(hub.kafka, topic))
    assert {r["consumer"] for r in everyone} > {"dongthap-ppc"}, "other agencies are in the log"
    mine = [r for r in everyone if r["consumer"] == "dongthap-ppc"]
    assert own.text.count('<td class="num">') == len(mine), "its own entries, never another agency's"
    refused = browser.get("/console/audit/access", params={"agency": "langson-ppc"})
    assert refused.status_code == 403 and "for the auditor" in refused.text

    with TestClient(app, base_url="https://testserver", follow_redirects=False) as auditor:
        log_in(auditor, issue_credential(hub, "cic"))
        assert "/console/audit/access" in auditor.get("/console/").text
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        found = auditor.get("/console/audit/access", params={"agency": "dongthap-ppc", "start": since})
        assert found.status_code == 200, found.text
        assert purpose in found.text and "<td>langson-ppc</td>" not in found.text
        later = auditor.get("/console/audit/access", params={"agency": "dongthap-ppc", "end": since})
        assert purpose not in later.text, "the time range bounds the entries"
        before = sum(1 for _ in read_access_log(hub.kafka, topic))
        for bad in ({"start": "yesterday"}, {"start": "2026-12-06T10:00", "end": "2026-12-06T09:00"}):
            answer = auditor.get("/console/audit/access", params=bad)
            assert answer.status_code == 400, answer.text
        searches = [r for r in read_access_log(hub.kafka, topic) if r["operation"] == "audit_access"]
        assert {r["consumer"] for r in searches} == {"cic"} and len(searches) == 2
        assert before == sum(1 for _ in read_access_log(hub.kafka, topic)), "a refused search is not logged"


def test_an_agreement_is_resumed_and_revoked_through_the_act_forms_and_a_refused_one_changes_nothing(
    hub: Hub, browser: TestClient
) -> None:
    agreement = "langson-ppc.resume.1"
    with hub.governing() as gov:
        gov.propose("langson-ppc", agreement, "langson-ppc", "party-members", ["member_id"],
                    "Count members", "Regulation 384, Art. 5")  # fmt: skip
        gov.consent("coc", agreement)
        gov.approve("cpo", agreement)
        gov.approve("op", agreement)
        gov.suspend("coc", agreement, "Inspection")
    log_in(browser, issue_credential(hub, "coc"))
    assert f"/console/act/resume?agreement_id={agreement}" in browser.get("/console/").text
    for operation, stage in (("resume", "approved"), ("revoke", "revoked")):
        sent = {
            "agreement_id": agreement,
            "reason": f"{operation} from the console",
            "csrf": form_token(browser),
        }
        done = browser.post(f"/console/act/{operation}", data=sent)
        assert done.status_code == 303, done.text
        assert hub.governance_state(refresh=True).agreement(agreement).stage == stage
    before = head(hub)
    again = browser.post("/console/act/resume", data={"agreement_id": agreement, "reason": "again",
                                                      "csrf": form_token(browser)})  # fmt: skip
    assert again.status_code == 409 and "resume when not suspended" in again.text, again.text
    no_reason = browser.post("/console/act/revoke", data={"agreement_id": "langson-ppc.csrf.1", "reason": "",
                                                          "csrf": form_token(browser)})  # fmt: skip
    assert no_reason.status_code == 422, no_reason.text
    assert head(hub) == before


def test_an_owners_erasure_request_is_approved_by_the_operator_and_both_are_in_the_access_log(
    hub: Hub, app: FastAPI, browser: TestClient
) -> None:
    requests = app.state.context.erasure_requests
    topic = hub.governance_state().access_log_topic
    subject, asked = "PM0000000004", {"dataset": "party-members", "reason": "The member asked for it"}
    log_in(browser, issue_credential(hub, "langson-ppc"))
    not_owner = browser.post("/console/erasure/request",
                             data={**asked, "record_key": subject, "csrf": form_token(browser)})  # fmt: skip
    assert not_owner.status_code == 400 and "only &#39;coc&#39;, the owner" in not_owner.text
    log_in(browser, issue_credential(hub, "coc"))
    no_token = browser.post("/console/erasure/request", data={**asked, "record_key": subject})
    assert no_token.status_code == 403 and requests.pending() == []
    for key in (subject, "PM0000000005"):
        made = browser.post("/console/erasure/request",
                            data={**asked, "record_key": key, "csrf": form_token(browser)})  # fmt: skip
        assert made.status_code == 303, made.text
    first, second = requests.pending()
    assert (requests.folder / f"{first.id}.json").stat().st_mode & 0o777 == 0o600
    kept = b"".join(p.read_bytes() for p in requests.folder.iterdir())
    assert subject.encode() not in kept and b"PM0000000005" not in kept, "record keys are kept sealed"
    assert (first.record_key, second.record_key) == (subject, "PM0000000005")
    refused = browser.post(f"/console/erasure/{first.id}/approve", data={"csrf": form_token(browser)})
    assert refused.status_code == 400 and "approved centrally" in refused.text
    assert len(requests.pending()) == 2, "a refused approval leaves the request pending"

    with TestClient(app, base_url="https://testserver", follow_redirects=False) as operator:
        log_in(operator, issue_credential(hub, "cpo"))
        assert "The member asked for it" in operator.get("/console/").text
        for decision in ("approve", "decline"):
            assert operator.post(f"/console/erasure/{first.id}/{decision}", data={}).status_code == 403
        assert len(requests.pending()) == 2, "a decision without the form's token changes nothing"
        approved = operator.post(f"/console/erasure/{first.id}/approve", data={"csrf": form_token(operator)})
        assert approved.status_code == 303, approved.text
        declined = operator.post(f"/console/erasure/{second.id}/decline", data={"csrf": form_token(operator)})
        assert declined.status_code == 303, declined.text
        twice = operator.post(f"/console/erasure/{first.id}/approve", data={"csrf": form_token(operator)})
        assert twice.status_code == 404
    assert requests.pending() == []
    [receipt] = [json.loads(p.read_text()) for p in (hub.home / "erasures").glob("*.json")]
    assert (receipt["requested_by"], receipt["approved_by"], receipt["subject_key_destroyed"]) == (
        "coc",
        "cpo",
        True,
    )
    ref = hub.codec("party-members").pseudonym(subject).hex()
    assert receipt["subject_ref"] == ref
    logged = {
        (r["operation"], r["consumer"], tuple(r["record_refs"])) for r in read_access_log(hub.kafka, topic)
    }
    assert {("erasure_request", "coc", (ref,)), ("erasure_approve", "cpo", (ref,))} <= logged
    assert any(op == "erasure_decline" and who == "cpo" for op, who, _ in logged)
    assert not any(subject in json.dumps(r, default=str) for r in read_access_log(hub.kafka, topic))


@pytest.fixture(scope="module")
def two_refused(hub: Hub) -> LogMessage:
    """Two refused events of party-members (coc's) on the quarantine topic, as the projection worker writes
    them: one that passes now (refused earlier, its signer since registered, say), returned, and a malformed
    one that is still refused."""
    valid, junk = messages(
        hub, [member(member_id="PM0000000101"), member(member_id="PM0000000102")], start=90
    )
    junk = dataclasses.replace(junk, value=b"not an event")
    topic = hub.governance_state().quarantine_topic
    producer = Producer(producer_config(hub.kafka))
    for refused, reason in ((valid, "unknown_signer"), (junk, "malformed")):
        key, value = encode_quarantined(Quarantined(refused, reason, f"refused as {reason}"))
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0
    return valid


def test_the_operator_reviews_the_quarantine_by_reason_rechecks_and_redrives(
    hub: Hub, app: FastAPI, browser: TestClient, two_refused: LogMessage
) -> None:
    valid = two_refused
    granted = hub.store("go")  # a read model the worker granted party-members (its rows are not needed here)
    granted.reset_dataset("party-members", valid.topic, terms="as the worker recorded them", agreement_id="x")

    log_in(browser, issue_credential(hub, "langson-ppc"))
    assert browser.get("/console/quarantine").status_code == 403
    log_in(browser, issue_credential(hub, "cpo"))
    listed = browser.get("/console/quarantine", params={"reason": "malformed"})
    assert listed.status_code == 200, listed.text
    assert "refused as malformed" in listed.text and "refused as unknown_signer" not in listed.text
    assert re.search(
        r"<code>unknown_signer</code></a></td><td class=\"num\"><span class=\"badge bad\">1<", listed.text
    )
    for action in ("recheck", "redrive"):
        assert browser.post(f"/console/quarantine/{action}", data={}).status_code == 403
    assert granted.recorded_terms()["party-members"] != REPLAY, "a refused redrive did nothing"
    checked = browser.post("/console/quarantine/recheck", data={"csrf": form_token(browser)})
    assert checked.status_code == 200 and "1 passes" in checked.text and "1 refused" in checked.text
    redriven = browser.post("/console/quarantine/redrive", data={"csrf": form_token(browser)})
    assert redriven.status_code == 200, redriven.text
    assert re.search(r"<td><code>party-members</code></td><td>go</td>", redriven.text), redriven.text
    assert granted.recorded_terms()["party-members"] == REPLAY
    logged = [r for r in read_access_log(hub.kafka, hub.governance_state().access_log_topic)
              if r["consumer"] == "cpo" and r["operation"].startswith("quarantine_")]  # fmt: skip
    assert [r["operation"] for r in logged] == ["quarantine_recheck", "quarantine_redrive"]
    assert "replayed party-members" in logged[-1]["purpose"]


def test_an_owner_sees_the_lag_and_the_rejected_records_of_its_own_datasets_only(
    hub: Hub, app: FastAPI, two_refused: LogMessage
) -> None:

    def owner_page(agency: str) -> str:
        with TestClient(app, base_url="https://testserver") as client:
            log_in(client, issue_credential(hub, agency))
            return client.get("/console/").text

    rejected = re.compile(r"<tr><td><code>party-members</code></td><td><code>malformed</code></td>"
                          r"<td class=\"num\"><span class=\"badge bad\">1</span>")  # fmt: skip
    wait_until(lambda: rejected.search(owner_page("coc")) is not None, timeout=10,
               what="the owner's rejected records (the status counts the quarantine every 5 s)")  # fmt: skip
    coc = owner_page("coc")
    publishing = coc.split('id="publishing"')[1].split("</table>")[0]
    assert '<td><code>party-members</code></td><td>langson-ppc</td><td class="num">5</td>' in publishing
    assert "citizen-feedback" not in publishing, "another owner's dataset is not shown"
    go = owner_page("go")
    assert 'id="publishing"' in go and "party-members" not in go.split('id="owner"')[1]
    assert "Nothing of its datasets was rejected" in go or "Không có bản ghi nào" in go


def test_the_auditor_runs_a_verify_and_a_pack_in_the_background_and_only_it_downloads_its_pack(
    hub: Hub, app: FastAPI, browser: TestClient
) -> None:
    jobs = audit_jobs.jobs_dir(hub.home)
    started_before = set(jobs.iterdir()) if jobs.is_dir() else set()
    log_in(browser, issue_credential(hub, "langson-ppc"))
    assert browser.get("/console/audit").status_code == 403, "a consumer has no audit page"
    assert browser.post("/console/audit/verify", data={"csrf": form_token(browser)}).status_code == 403
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as auditor:
        log_in(auditor, issue_credential(hub, "cic"))
        assert 'href="/console/audit"' in auditor.get("/console/").text
        no_token = auditor.post("/console/audit/verify")
        wrong_token = auditor.post("/console/audit/pack", data={"consumer": "langson-ppc", "csrf": "0" * 64})
        assert no_token.status_code == wrong_token.status_code == 403, (no_token.text, wrong_token.text)
        bad = auditor.post("/console/audit/pack", data={"consumer": "nobody", "csrf": form_token(auditor)})
        assert bad.status_code == 404 and "nobody" in bad.text
        no_time = {"consumer": "langson-ppc", "since": "yesterday", "csrf": form_token(auditor)}
        bad_time = auditor.post("/console/audit/pack", data=no_time)
        assert bad_time.status_code == 400 and "not an ISO 8601 time" in bad_time.text
        assert (set(jobs.iterdir()) if jobs.is_dir() else set()) == started_before, (
            "a refused form starts nothing"
        )
        token = form_token(auditor)
        run = auditor.post("/console/audit/verify", data={"csrf": token}).headers["location"]
        again = auditor.post("/console/audit/verify", data={"csrf": token})
        assert again.status_code == 409 and "still runs" in again.text, "one run at a time"
        pack = auditor.post("/console/audit/pack", data={"consumer": "langson-ppc", "csrf": token})
        pack_page = pack.headers["location"]
        assert oct(jobs.stat().st_mode & 0o777) == "0o700"
        assert len(set(jobs.iterdir()) - started_before) == 2, "a verify run and a pack, the refused one not"
        running = 'id="job-state"><span class="badge warn"'
        for page in (run, pack_page):
            wait_until(
                lambda page=page: running not in auditor.get(page).text, timeout=60, what=f"{page} ends"
            )
        shown = auditor.get(run).text
        assert 'id="no-finding"' in shown, shown
        governance = re.search(r'-governance</code></td><td class="num">(\d+)</td>', shown)
        assert governance and int(governance.group(1)) > 0, "the run read the governance log"
        ready = auditor.get(pack_page).text
        anchor = re.search(r'id="pack-anchor">([0-9a-f]{64})<', ready)
        assert anchor, ready
        download = pack_page.replace("/runs/", "/packs/") + "/evidence.zip"
        got = auditor.get(download)
        assert got.status_code == 200 and got.headers["content-disposition"].startswith("attachment")
        evidence, verdict = verify_pack(got.content, anchor.group(1))
        assert verdict.ok, verdict.findings
        assert evidence.scope.consumer == "langson-ppc"
        assert trust_fingerprint(anchors.load(hub.home)) == anchor.group(1)
        ref = hub.codec("party-members").pseudonym("PM0000000001").hex()
        since = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).replace(microsecond=0) - dt.timedelta(
            hours=1
        )
        subject = {"dataset": "party-members", "subject_ref": ref, "since": since.isoformat(), "csrf": token}
        one = auditor.post("/console/audit/pack", data=subject).headers["location"]
        wait_until(lambda: running not in auditor.get(one).text, timeout=60, what="the subject's pack ends")
        zipped = auditor.get(one.replace("/runs/", "/packs/") + "/evidence.zip").content
        evidence, verdict = verify_pack(zipped, anchor.group(1))
        assert verdict.ok and (evidence.scope.subject_ref, evidence.scope.start) == (ref, since)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as operator:
        log_in(operator, issue_credential(hub, "cpo"))
        assert operator.get(download).status_code == 404, "another agency's pack is not given"
        assert operator.get(pack_page).status_code == 404
        latest = re.search(r'id="latest-run">(.*?)</p>', operator.get("/console/").text, re.S)
        assert latest and 'badge good">0<' in latest.group(1), "the latest run, done, with no finding"
        assert operator.get(run).status_code == 200, "the operator reads the hub's verify runs"
    logged = [r["operation"] for r in read_access_log(hub.kafka, hub.governance_state().access_log_topic)
              if r["consumer"] == "cic"]  # fmt: skip
    for operation in ("audit_verify_started", "evidence_pack_started", "evidence_pack_downloaded"):
        assert logged.count(operation) == (1 if operation == "audit_verify_started" else 2), logged
