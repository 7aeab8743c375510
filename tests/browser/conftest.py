"""The browser tests' shared parts, one of each for the whole package: a hub on the real broker with members
published by their owner, its projection worker and its ``sharehub serve`` process, and Debian's Chromium
driven by Playwright, trusting exactly the API's certificate (its public key's SHA-256), nothing else.

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

from services import processes
from services.governance_bootstrap import load
from services.hub import Hub
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import Worker, answers, free_port, hub_env, wait_until
from tooling.synthetic.party_members import generate_party_members

MEMBERS = 12

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
    load(hub.governance_desk(), demo_spec())
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
    port = free_port()
    processes.start(console_hub.home, "api", ["serve", "--port", str(port)], env=hub_env(console_hub))
    base = f"https://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(console_hub, base + "/healthz"), timeout=60, what="the API")
        yield base
    finally:
        processes.stop(console_hub.home, "api")


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
