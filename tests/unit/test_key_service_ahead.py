"""Subjects' keys asked for ahead of need: the answer, or the error, is the one the publisher meets when it
needs those keys, and nothing else waits for it."""

from __future__ import annotations

import time

import pytest

from connectors.key_service import KeyServiceClient
from sharehub.errors import KeyServiceUnavailable
from tests.kafka_helpers import free_port

DATASET = "party-members"


def test_an_error_met_asking_ahead_is_raised_where_the_keys_are_needed() -> None:
    client = KeyServiceClient(f"https://127.0.0.1:{free_port()}", "credential", patience_s=0)
    try:
        started = time.monotonic()
        client.ensure_subject_keys_ahead(DATASET, [b"\x01" * 16, b"\x02" * 16])
        assert time.monotonic() - started < 1, "asking ahead does not wait for the answer"
        with pytest.raises(KeyServiceUnavailable, match="did not answer"):
            client.ensure_subject_keys(DATASET, [b"\x02" * 16])
        # The error was raised once; the next need asks again (and meets the service's state then).
        with pytest.raises(KeyServiceUnavailable, match="did not answer"):
            client.ensure_subject_keys(DATASET, [b"\x02" * 16])
    finally:
        client.close()


def test_keys_already_held_are_not_asked_for_again() -> None:
    client = KeyServiceClient(f"https://127.0.0.1:{free_port()}", "credential", patience_s=0)
    try:
        client._subjects[f"{DATASET}/subject/{'03' * 16}"] = None  # answered before: erased
        client.ensure_subject_keys_ahead(DATASET, [b"\x03" * 16])
        assert client._ahead is None
        client.ensure_subject_keys(DATASET, [b"\x03" * 16])  # no request: nothing to refuse
    finally:
        client.close()


def test_closing_does_not_wait_out_the_patience_of_a_request_asked_ahead() -> None:
    client = KeyServiceClient(f"https://127.0.0.1:{free_port()}", "credential", patience_s=60)
    client.ensure_subject_keys_ahead(DATASET, [b"\x04" * 16])
    time.sleep(0.2)  # asked once, refused, now waiting to ask again
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 5
