"""Credentials with a lifetime against the real broker: a revocation written to the governance log is
refused by every API instance within a second; an expired credential, and a rotated one once its overlap has
passed, are refused at the request, with the reason, and counted."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from services.api.app import create_app
from services.cli import credential_commands
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.gov import new_credential
from sharehub.gov.credentials import credential_id
from sharehub.gov.views import token_hash
from tests.kafka_helpers import https_client, hub_env, sharehub

pytestmark = pytest.mark.kafka

#: A route every credential may call, which reads no read model: what authentication alone decides.
PROBE = "/v1/me"
#: The issue's promise: a revoked credential is refused within a second by every API instance.
WITHIN_S = 1.0


@pytest.fixture
def second_instance(hub: Hub) -> Iterator[TestClient]:
    """Another API instance of the same hub: its own process state and its own governance follower."""
    other = Hub(hub.settings)
    try:
        yield TestClient(create_app(other))
    finally:
        other.close()


def status(get: Callable[[str, dict[str, str]], int], token: str) -> int:
    return get(PROBE, {"Authorization": f"Bearer {token}"})


def test_a_revoked_credential_is_refused_by_every_api_instance_within_a_second(
    hub: Hub, api: str, second_instance: TestClient
) -> None:
    issued = sharehub(hub, "gov", "credentials", "issue", "go", "--lifetime-days", "7")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    cid = credential_id(token_hash(token))
    assert f"credential {cid} of go" in issued.stderr

    with https_client(hub) as real:
        instances: dict[str, Callable[[str, dict[str, str]], int]] = {
            "api process": lambda path, headers: real.get(api + path, headers=headers, timeout=5).status_code,
            "second instance": lambda path, headers: second_instance.get(path, headers=headers).status_code,
        }
        for name, get in instances.items():  # the new credential reaches every instance
            assert status(get, token) == 200, name

        with hub.governing() as service:  # the agency revokes its own credential
            service.revoke_credential("go", cid, "found in a build log")
            on_the_log = time.time()  # the write was acknowledged (acks=all) and flushed
        refused_after = _time_until_refused(instances, token, since=on_the_log)

    print(f"\nrevocation refused after: {', '.join(f'{n} {t:.3f} s' for n, t in refused_after.items())}")
    assert all(t < WITHIN_S for t in refused_after.values()), refused_after

    refusal = second_instance.get(PROBE, headers={"Authorization": f"Bearer {token}"}).json()
    assert refusal["detail"].startswith(f"credential {cid} was revoked (from ")


def _time_until_refused(
    instances: dict[str, Callable[[str, dict[str, str]], int]], token: str, *, since: float
) -> dict[str, float]:
    """Seconds from ``since`` (a ``time.time()``) until each instance first answered 401, asking every
    10 ms (each in its own thread, so a slow answer of one does not delay the other)."""
    found: dict[str, float] = {}

    def watch(name: str, get: Callable[[str, dict[str, str]], int]) -> None:
        while time.time() - since < 5 * WITHIN_S:
            if status(get, token) == 401:
                found[name] = time.time() - since
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=watch, args=item) for item in instances.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(found) == set(instances), (
        f"still accepted after {5 * WITHIN_S} s: {set(instances) - set(found)}"
    )
    return found


def test_expiry_and_the_end_of_a_rotations_overlap_are_judged_at_the_request(hub: Hub) -> None:
    client = TestClient(create_app(hub))
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    expiring, expiring_hash = new_credential()
    replaced = issue_credential(hub, "ona")
    successor, successor_hash = new_credential()
    with hub.governing() as service:
        service.issue_credential("cpo", "go", expiring_hash, expires_at=soon)
        service.rotate_credential(
            "cpo", credential_id(token_hash(replaced)), successor_hash, overlap_until=soon
        )

    def get(path: str, headers: dict[str, str]) -> int:
        return client.get(path, headers=headers).status_code

    assert [status(get, t) for t in (expiring, replaced, successor)] == [200, 200, 200]
    time.sleep(max((soon - dt.datetime.now(dt.UTC)).total_seconds(), 0) + 0.05)  # no event is written

    expired = client.get(PROBE, headers={"Authorization": f"Bearer {expiring}"})
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "not_authenticated",
        "detail": f"credential {credential_id(expiring_hash)} expired on {soon.isoformat()}",
        "message": "not authenticated: the credential is missing, unknown, expired, replaced or revoked",
    }
    ended = client.get(PROBE, headers={"Authorization": f"Bearer {replaced}"})
    assert ended.status_code == 401
    assert f"was replaced by {credential_id(successor_hash)}" in ended.json()["detail"]
    assert status(get, successor) == 200
    counts = client.app.state.context.credentials.counts  # type: ignore[attr-defined]
    assert counts.ended == {"expired_credential": 1, "replaced_credential": 1}
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {issue_credential(hub, 'cpo')}"})
    assert 'sharehub_api_auth_failures_total{reason="expired_credential"} 1.0' in metrics.text


def credentials(hub: Hub, *args: str) -> Result:
    """``sharehub gov credentials ARGS`` in this process (the real command line's wiring is run above)."""
    root = typer.Typer()
    root.add_typer(credential_commands.app, name="credentials")
    root.command()(lambda: None)
    return CliRunner().invoke(root, ["credentials", *args], env=hub_env(hub))


def test_the_command_line_rotates_revokes_and_lists_credentials_without_their_secrets(
    hub: Hub, tmp_path: Path
) -> None:
    old = issue_credential(hub, "go")
    old_id = credential_id(token_hash(old))
    rotated = credentials(hub, "rotate", old_id, "--overlap-hours", "2", "--lifetime-days", "30")
    assert rotated.exit_code == 0, rotated.stderr
    new = rotated.stdout.strip()
    new_id = credential_id(token_hash(new))
    assert f"credential {new_id} of go, expires" in rotated.stderr
    own = tmp_path / "go.credential"
    own.write_text(new)

    # The agency revokes its own credential with it; another agency may not, and a second time is refused.
    as_ona = ["--as", "ona", "--credential-file", str(tmp_path / "ona.credential")]
    (tmp_path / "ona.credential").write_text(issue_credential(hub, "ona"))
    refused = credentials(hub, "revoke", new_id, "--reason", "not mine", *as_ona)
    assert refused.exit_code == 2 and "may not revoke credentials of 'go'" in refused.stderr
    by_itself = ["--as", "go", "--credential-file", str(own)]
    revoked = credentials(hub, "revoke", new_id, "--reason", "found in a build log", *by_itself)
    assert revoked.exit_code == 0, revoked.stderr
    assert json.loads(revoked.stdout)["type"] == "CredentialRevoked"
    again = credentials(hub, "revoke", new_id, "--reason", "twice")
    assert again.exit_code == 2 and f"credential {new_id} was already revoked" in again.stderr

    listed = credentials(hub, "list", "--agency", "go", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = {row["id"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[old_id]["state"] == "valid" and rows[old_id]["replaced_by"] == new_id
    assert rows[new_id]["state"] == "revoked" and rows[new_id]["replaces"] == old_id
    for secret in (old, new, token_hash(old), token_hash(new)):
        assert secret not in listed.stdout
