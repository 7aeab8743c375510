"""The quarantine can be listed, re-checked after a fix, and what passes is taken in by a rebuild: real
broker, real worker, the real command line."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

import connectors.publisher as publisher_module
from services.hub import Hub
from sharehub.kafka import client_config
from tests.kafka_helpers import Worker, sharehub, wait_until
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def refused_under_a_key_governance_does_not_know(hub: Hub, worker: Worker, count: int, seed: int) -> bytes:
    """The Commission starts signing with a new key before governance has it: every event is refused.
    Returns the key's public bytes, for governance to register later."""
    public = hub.keys.create_signing_key("coc", "coc/sign/2")
    # The SDK refuses a key governance does not know before it seals anything; an agency system of its own
    # (not the SDK) would not: it is played here by the publisher without that check.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publisher_module, "_check_signer", lambda *_: None)
        publisher = hub.publisher("coc", DATASET)
    publisher.publish_records(generate_party_members(count, seed=seed))
    publisher.close()
    worker.start()
    wait_until(
        lambda: len(sharehub(hub, "quarantine", "list").stdout.splitlines()) == count,
        timeout=120,
        what=f"{count} refused events",
        log=worker.log,
    )
    return public


def test_events_signed_with_a_key_governance_learns_late_are_rechecked_and_rebuilt(
    hub: Hub, worker: Worker
) -> None:
    public = refused_under_a_key_governance_does_not_know(hub, worker, 5, seed=2)
    listed = sharehub(hub, "quarantine", "list", "--reason", "unknown_signer")
    assert len(listed.stdout.splitlines()) == 5 and "coc/sign/2" in listed.stdout
    before = sharehub(hub, "quarantine", "recheck")
    assert before.stdout.count("\trefused\t") == 5 and "5 refused" in before.stderr
    assert hub.store("dongthap-ppc").count(DATASET) == 0

    # The fix: governance registers the key, valid from before those events were signed.
    with hub.governing() as gov:
        since = gov.state.agencies_["coc"].registered_at  # no key of coc can be valid earlier
        gov.add_key("cpo", "coc", "coc/sign/2", public, valid_from=since)
    after = sharehub(hub, "quarantine", "recheck")
    assert after.stdout.count("\tpasses\t") == 5 and "5 passes" in after.stderr

    worker.stop()
    rebuilt = sharehub(hub, "project", "rebuild", "--consumer", "dongthap-ppc")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert hub.store("dongthap-ppc").count(DATASET) == 5


def test_redrive_has_the_running_worker_take_in_what_passes_now(hub: Hub, worker: Worker) -> None:
    public = refused_under_a_key_governance_does_not_know(hub, worker, 6, seed=3)
    nothing = sharehub(hub, "quarantine", "redrive")
    assert nothing.returncode == 0 and "0 of 6 refused events pass now; nothing to replay" in nothing.stderr

    with hub.governing() as gov:
        since = gov.state.agencies_["coc"].registered_at  # no key of coc can be valid earlier
        gov.add_key("cpo", "coc", "coc/sign/2", public, valid_from=since)
    redriven = sharehub(hub, "quarantine", "redrive")
    assert redriven.returncode == 0, redriven.stderr
    assert "6 of 6 refused events pass now" in redriven.stderr
    assert redriven.stdout.split("\t")[0] == DATASET and "dongthap-ppc" in redriven.stdout
    stores = [hub.store("dongthap-ppc"), hub.store("langson-ppc")]
    wait_until(
        lambda: all(set(s.versions(DATASET).values()) == {1} and s.count(DATASET) == 6 for s in stores),
        timeout=120,
        what="the re-driven events in both read models, each applied once",
        log=worker.log,
    )
    assert worker.alive(), "re-driven without stopping the worker"


def test_junk_on_the_quarantine_is_listed_and_rechecked_as_malformed_and_halts_nothing(hub: Hub) -> None:
    topic = hub.governance.quarantine_topic
    producer = Producer(client_config(hub.kafka_as("projector")))  # a principal that may write it
    producer.produce(topic, value=b"not a quarantine record")
    assert producer.flush(10) == 0
    listed = sharehub(hub, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[:4] == [topic, "0", "0", "malformed"]
    rechecked = sharehub(hub, "quarantine", "recheck")
    assert rechecked.returncode == 0 and "1 refused" in rechecked.stderr
    assert "\trefused\tmalformed: junk on the quarantine topic" in rechecked.stdout
    redriven = sharehub(hub, "quarantine", "redrive")
    assert redriven.returncode == 0 and "0 of 1 refused events pass now" in redriven.stderr
