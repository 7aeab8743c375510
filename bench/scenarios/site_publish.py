"""(f) Publishing from an agency's own site through the agency SDK against a bare confluent-kafka producer.

Hub: ``connectors.sdk.open_publisher`` at a site of the owner: its own signing key, its own broker login (a
client certificate of the hub CA, mutual TLS), governance read from the log and verified against the pinned
operator key, and the dataset's keys from the hub's key service over HTTPS (a ``sharehub serve`` process;
subjects' keys asked for in batches of 512, created durably at the hub, each release in the access log
first). The same from :data:`PROCESSES` processes (``open_lane_split_publisher``: this process validates
and routes, each child seals its share of the lanes with its own key session, key service client and
producer), each repetition publishing with both in turn. Baseline: the same number of messages of the same
sizes, random bytes under random keys, produced by confluent-kafka with the same producer settings (as in
scenario b).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.environment import DATASET, OWNER, hub_env, new_hub
from bench.load import query_api
from bench.model import Config, Row, ScenarioResult
from bench.scenarios.publish import publishers_against_raw_produce
from connectors.dataset_publishing import DatasetPublishing
from connectors.sdk import (
    BrokerLogin,
    HubAddress,
    connect,
    make_tls_request,
    open_lane_split_publisher,
    open_publisher,
)
from connectors.site import PASSPHRASE_BESIDE, AgencySite
from services.gov_operations import Caller, perform
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub import pki
from sharehub.gov import anchors
from sharehub.keys import write_private

PASSPHRASE = b"the owner's site keeps this one"
#: Processes of the split publisher: one a core.
PROCESSES = 2


def _mutual_tls(bootstrap: str) -> str:
    """The local broker's mutual-TLS listener: two ports after its client listener."""
    host, port = str(bootstrap).rsplit(":", 1)
    return f"{host}:{int(port) + 2}"


def connected_site(hub: Hub, bootstrap: str, api_url: str, *, mtls_bootstrap: str | None = None) -> Path:
    """The owner's site under the hub's home: its own key (registered), its TLS key and the certificate the
    hub CA signed for it (mutual TLS, on ``mtls_bootstrap``, by default the listener beside a lone broker's
    ``bootstrap``), connected to the hub's API at ``api_url``; the passphrase beside it."""
    site = hub.home / "sites" / OWNER
    _, request = AgencySite.init(site, OWNER, PASSPHRASE, label="bench")
    perform(hub.governance_desk(), Caller(hub.governance.operator, local=True), "register-key", request)
    csr = make_tls_request(site, hub.governance.topic_prefix, PASSPHRASE).read_bytes()
    certificate = pki.HubCA.load(hub.settings.kafka_ca_path.parent).sign_csr(csr, hub.principal(OWNER))
    connect(
        site,
        HubAddress(api_url, mtls_bootstrap or _mutual_tls(bootstrap)),
        trust=anchors.path(hub.home).read_bytes(),
        ca=hub.ca_bundle(),
        credential=issue_credential(hub, OWNER),
        login=BrokerLogin(certificate=certificate),
    )
    write_private(site / PASSPHRASE_BESIDE, PASSPHRASE)
    return site


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    hub = new_hub(config.workdir / "site-publish", config.bootstrap)
    try:
        with query_api(hub_env(hub), hub.home / "api.log") as server:
            site = connected_site(hub, config.bootstrap, server.base)
            publishers: dict[str, DatasetPublishing] = {
                "publish_s": open_publisher(site, DATASET, PASSPHRASE),
                "publish_split_s": open_lane_split_publisher(site, DATASET, PASSPHRASE, PROCESSES),
            }
            measured, notes = publishers_against_raw_produce(hub, config, publishers)
    finally:
        hub.close()
    return ScenarioResult(
        id="f",
        title="Publish from an agency site (SDK, key service over HTTPS, mutual TLS) vs raw produce",
        hub="open_publisher(site).publish_records: site key, keys from the key service, own principal",
        baseline="confluent_kafka.Producer.produce of random bytes of the same sizes, then flush",
        reps=config.reps,
        rows=[
            Row("site publish vs produce", "throughput", "publish_s", "produce_s", config.events),
            Row(
                f"site publish, {PROCESSES} processes vs produce",
                "throughput",
                "publish_split_s",
                "produce_s",
                config.events,
            ),
        ],
        measurements=measured,
        notes=[
            *notes,
            "The key service is a local `sharehub serve` process on the same 2 cores.",
            f"One process against {PROCESSES} (same run, same repetitions): "
            f"{_speedup(measured['hub']):.2f}x the one-process rate (median of the repetitions' ratios).",
        ],
    )


def _speedup(hub: dict[str, list[float]]) -> float:
    """The split publisher's rate over the single one's: the median of the repetitions' time ratios."""
    ratios = [one / split for one, split in zip(hub["publish_s"], hub["publish_split_s"], strict=True)]
    return statistics.median(ratios)
