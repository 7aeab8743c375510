"""The browser tests' shared parts, one of each for the whole package: a hub on the real broker with members
published by their owner, its projection worker and its ``sharehub serve`` process, and Debian's Chromium
driven by Playwright, trusting exactly the API's certificate (its public key's SHA-256), nothing else.
``go`` is a site: it holds its own key in its own site directory (``<home>/sites/go``, as the demo makes
them), and the hub never holds it.

Skipped, with the reason, when ``SHAREHUB_CHROMIUM`` does not name the browser (``scripts/test.sh`` sets it).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from connectors.sdk import BrokerLogin, HubAddress, connect, make_tls_request
from connectors.site import PASSPHRASE_BESIDE, read_passphrase
from services.cli.demo_commands import SITES, load_with_sites
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub import pki
from sharehub.gov import anchors
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import Worker, served_api
from tooling.synthetic.party_members import generate_party_members

MEMBERS = 12
#: The agency that holds its own key at its own site (an owner: its site reads governance from the broker).
SITE = "go"

if not os.environ.get("SHAREHUB_CHROMIUM"):
    pytest.skip(
        "SHAREHUB_CHROMIUM is unset: the console's browser tests need Debian's chromium "
        "(scripts/browser.sh install; scripts/test.sh sets it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright  # noqa: E402


@pytest.fixture(scope="package")
def console_hub(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("console-browser") / "home"
    settings = Settings(home=home, kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None)
    hub = Hub(settings)
    load_with_sites(hub, demo_spec(own_sites=(SITE,)), [SITE])
    report = hub.publisher("coc", "party-members").publish_records(
        list(generate_party_members(MEMBERS, seed=24))
    )
    assert report.published == MEMBERS and not report.rejected
    yield hub
    hub.close()


@pytest.fixture(scope="package")
def console_worker(console_hub: Hub) -> Iterator[Worker]:
    worker = Worker(console_hub)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="package")
def console_api(console_hub: Hub, console_worker: Worker) -> Iterator[str]:
    """A real ``sharehub serve`` of the hub; its HTTPS base address."""
    with served_api(console_hub) as base:
        yield base


@pytest.fixture(scope="package")
def site_home(console_hub: Hub, console_api: str) -> Path:
    """The site of :data:`SITE`, connected to the hub: its pinned trust, its API credential, and a client
    certificate the broker's CA signs for a TLS key the site made (mutual TLS)."""
    hub, home = console_hub, console_hub.home / SITES / SITE
    request = make_tls_request(home, hub.anchors.topic_prefix, read_passphrase(home / PASSPHRASE_BESIDE))
    certificate = pki.HubCA.load(hub.settings.kafka_ca_path.parent).sign_csr(
        request.read_bytes(), hub.principal(SITE)
    )
    connect(
        home,
        HubAddress(console_api, hub.settings.mtls_bootstrap),
        trust=anchors.path(hub.home).read_bytes(),
        ca=hub.ca_bundle(),
        credential=issue_credential(hub, SITE),
        login=BrokerLogin(certificate=certificate),
    )
    return home


def spki_sha256(certificate_chain: Path) -> str:
    """Base64 of the SHA-256 of the server certificate's SubjectPublicKeyInfo (Chromium's pin format)."""
    leaf = x509.load_pem_x509_certificates(certificate_chain.read_bytes())[0]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def chromium(playwright: Playwright, console_hub: Hub, console_api: str) -> Iterator[Browser]:
    """Chromium with a fresh profile (Playwright gives each launch its own temporary user-data-dir),
    trusting the API's certificate by its public key and no other certificate error."""
    pin = spki_sha256(console_hub.settings.tls_dir / "api.pem")
    browser = playwright.chromium.launch(
        executable_path=os.environ["SHAREHUB_CHROMIUM"],
        headless=True,
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--ignore-certificate-errors-spki-list={pin}",
        ],
    )
    yield browser
    browser.close()


class Requests(list[str]):
    """Every URL a browser context asked for, across the package's tests."""


@pytest.fixture(scope="package")
def requests_made() -> Requests:
    return Requests()


@pytest.fixture
def new_context(chromium: Browser, requests_made: Requests) -> Iterator[Callable[[], BrowserContext]]:
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
        context.on("request", lambda request: requests_made.append(request.url))
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
