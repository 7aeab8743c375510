"""The web console in real Chromium against a real ``sharehub serve`` and projection worker on the real
broker: the agreement workflow end to end, need-to-know, CSRF, the language switch, and no request leaving
the API's host. Each role's home page is written to docs/console/<role>.png."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page

from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.gov import events as ev
from tests.browser.conftest import MEMBERS, SITE, Requests
from tests.kafka_helpers import Worker, wait_until

pytestmark = pytest.mark.kafka
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
PURPOSE = "Theo dõi đảng viên của tỉnh"
NewContext = Callable[[], BrowserContext]


def logged_in(new_context: NewContext, hub: Hub, base: str, agency: str) -> Page:
    page = new_context().new_page()
    page.goto(base + "/console/login")
    page.fill("#credential", issue_credential(hub, agency))
    page.click("main button[type=submit]")
    page.wait_for_url(base + "/console/")
    return page


def row_count(page: Page) -> int:
    return page.locator("table.records tbody tr").count()


def test_the_agreement_workflow_from_proposal_to_rows_and_back_to_none(
    console_hub: Hub, console_api: str, console_worker: Worker, new_context: NewContext
) -> None:
    hub, base, agreement = console_hub, console_api, "thainguyen-ppc.party-members.console"
    consumer = logged_in(new_context, hub, base, "thainguyen-ppc")
    consumer.goto(base + "/console/act/propose")
    for name, value in {
        "id": agreement, "dataset": "party-members", "fields": "member_id, province_code, status",
        "purpose": PURPOSE, "legal_basis": "Regulation 384, Art. 5",
    }.items():  # fmt: skip
        consumer.fill(f"#{name}", value)
    consumer.click("main button[type=submit]")
    consumer.wait_for_url(base + "/console/?done=propose")
    assert consumer.locator(f"#consumer tr:has-text('{agreement}') .stage-proposed").count() == 1

    owner = logged_in(new_context, hub, base, "coc")
    owner.click(f"#owner tr:has-text('{agreement}') button")
    owner.wait_for_url(base + "/console/?done=consent")
    for approver, approvals in (("cpo", "1/2"), ("op", "2/2")):
        office = logged_in(new_context, hub, base, approver)
        row = f"#central-office tr:has-text('{agreement}')"
        office.click(f"{row} button")
        office.wait_for_url(base + "/console/?done=approve")
        assert approvals in office.locator(row).inner_text()

    browse = f"{base}/console/records/thainguyen-ppc/party-members?purpose={PURPOSE}"

    def rows_shown() -> bool:
        consumer.goto(browse)
        return row_count(consumer) == MEMBERS

    wait_until(rows_shown, timeout=60, what="the consumer's rows in the browser", log=console_worker.log)
    assert consumer.locator("table.records th").all_inner_texts() == ["member_id", "province_code", "status"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    consumer.screenshot(path=str(SCREENSHOTS / "records.png"), full_page=True)

    owner.goto(f"{base}/console/act/suspend?agreement_id={agreement}")
    owner.fill("#reason", "Inspection of the province's use")
    owner.click("main button[type=submit]")
    owner.wait_for_url(base + "/console/?done=suspend")

    answer = consumer.goto(browse)
    assert answer is not None and answer.status == 403
    assert row_count(consumer) == 0
    assert "holds no active agreement" in consumer.inner_text("main")
    store = hub.store("thainguyen-ppc")
    wait_until(lambda: store.count("party-members") == 0, timeout=30, what="the purge of the read model")


def test_a_consumer_cannot_open_another_consumers_records(
    console_hub: Hub, console_api: str, new_context: NewContext
) -> None:
    page = logged_in(new_context, console_hub, console_api, "langson-ppc")
    answer = page.goto(f"{console_api}/console/records/dongthap-ppc/party-members?purpose={PURPOSE}")
    assert answer is not None and answer.status == 403
    assert "may not read the read model of 'dongthap-ppc'" in page.inner_text("main")
    assert row_count(page) == 0


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    console_hub: Hub, console_api: str, new_context: NewContext
) -> None:
    with console_hub.governing() as gov:
        gov.propose("langson-ppc", "langson-ppc.browser-csrf", "langson-ppc", "party-members",
                    ["member_id"], "Count members", "Regulation 384, Art. 5")  # fmt: skip
    page = logged_in(new_context, console_hub, console_api, "coc")
    before = console_hub.governance_state(refresh=True).head_sequence
    row = "#owner tr:has-text('langson-ppc.browser-csrf')"
    page.locator(f"{row} input[name=csrf]").evaluate("field => field.remove()")  # the form, less its token
    with page.expect_navigation() as sent:
        page.click(f"{row} button")
    answer = sent.value
    assert answer is not None and answer.status == 403
    assert "CSRF" in page.inner_text("main")
    state = console_hub.governance_state(refresh=True)
    assert state.head_sequence == before
    assert state.agreement("langson-ppc.browser-csrf").stage == "proposed"


def test_the_language_switch(console_api: str, new_context: NewContext) -> None:
    page = new_context().new_page()
    page.goto(console_api + "/console/login")
    assert page.inner_text("h1") == "Đăng nhập"
    assert page.get_attribute("html", "lang") == "vi"
    page.click("text=English")
    page.wait_for_url(console_api + "/console/login")
    assert page.inner_text("h1") == "Log in"
    assert page.get_attribute("html", "lang") == "en"
    page.click("text=Tiếng Việt")
    assert page.inner_text("h1") == "Đăng nhập"


def test_each_roles_page_loads_nothing_from_outside_the_api(
    console_hub: Hub, console_api: str, new_context: NewContext, requests_made: Requests
) -> None:
    """Also writes each role's home page to docs/console/<role>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for role, agency in (
        ("operator", "cpo"),
        ("central-office", "op"),
        ("owner", "coc"),
        ("consumer", "langson-ppc"),
        ("auditor", "cic"),
    ):
        page = logged_in(new_context, console_hub, console_api, agency)
        if role == "auditor":  # its audit page, then the access search over the console's own logins
            page.goto(f"{console_api}/console/audit")
            assert page.locator("#verify-runs form button").count() == 1
            page.goto(f"{console_api}/console/audit/access?dataset=party-members")
            assert page.locator("#access-found").count() == 1
        page.screenshot(path=str(SCREENSHOTS / f"{role}.png"), full_page=True)
    docs = new_context().new_page()
    docs.goto(console_api + "/docs")
    docs.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "sharehub query API" in docs.inner_text(".swagger-ui .info .title")
    api = urlsplit(console_api)
    assert requests_made, "the browser's requests were recorded"
    elsewhere = [
        u for u in requests_made if (urlsplit(u).scheme, urlsplit(u).netloc) != (api.scheme, api.netloc)
    ]
    assert elsewhere == []


def test_a_site_proposes_in_the_browser_seals_it_with_the_sign_act_command_and_it_is_on_the_log(
    console_hub: Hub, console_api: str, site_home: Path, new_context: NewContext
) -> None:
    """The site's two steps as a person takes them: the form, the command the console shows run at the
    site (here, this machine: ``sharehub agency sign-act`` with SHAREHUB_HOME=the site), its output pasted
    back. The hub never held the site's key."""
    hub, base, agreement = console_hub, console_api, f"{SITE}.party-members.browser"
    page = logged_in(new_context, hub, base, SITE)
    page.goto(base + "/console/act/propose")
    for name, value in {
        "id": agreement, "dataset": "party-members", "fields": "member_id, status",
        "purpose": PURPOSE, "legal_basis": "Regulation 384, Art. 5",
    }.items():  # fmt: skip
        page.fill(f"#{name}", value)
    page.click("main button[type=submit]")
    command = shlex.split(page.inner_text("#command"))
    assert command[:4] == ["sharehub", "agency", "sign-act", "propose"]
    assert json.loads(command[5]) == json.loads(page.inner_text("#request"))
    at_site = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    signed = subprocess.run(
        [str(Path(sys.executable).parent / "sharehub"), *command[1:]],
        env=at_site | {"SHAREHUB_HOME": str(site_home)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    before = hub.governance_state(refresh=True).head_sequence
    page.fill("#sealed", signed.stdout)
    page.click("main button[type=submit]")
    page.wait_for_url(base + "/console/?done=propose")
    assert page.locator(f"#consumer tr:has-text('{agreement}') .stage-proposed").count() == 1
    state = hub.governance_state(refresh=True)
    assert state.agreement(agreement).terms.consumer == SITE and state.head_sequence == before + 1
    event = ev.parse(hub.log.read_all()[-1])
    assert event.actor == SITE and event.act_seal is not None
    site_key = event.act_seal.key_id
    assert site_key.startswith(f"{SITE}/") and not hub.keys.has(site_key, "signing")
