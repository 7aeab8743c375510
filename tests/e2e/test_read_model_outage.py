"""The read-model database stopped under the query API and the worker's engine, then started: the API
answers 503 with Retry-After (never a 500) and is not ready, the engine waits for it instead of failing, and
both go on as before once it is back. Against a PostgreSQL server of this module's own (the suite's server
is shared by every test and is never stopped) and the real broker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from projections.read_model import ReadModelStore
from services.api.app import create_app
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from services.projection_engine import read_models_once_answering
from sharehub.errors import ReadModelUnavailable
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import free_port
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector
from tooling.postgres_local import LocalPostgres

pytestmark = pytest.mark.kafka
RECORDS = "/v1/consumers/dongthap-ppc/datasets/party-members/records"
PURPOSE = {"purpose": "Prepare the congress report"}
#: The module's own server and its URL.
Server = tuple[LocalPostgres, str]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    pg = LocalPostgres(free_port())
    try:
        yield pg, pg.start()
    finally:
        pg.remove()


@pytest.fixture
def hub(tmp_path: Path, kafka_bootstrap: str, server: Server) -> Iterator[Hub]:
    settings = Settings(
        home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=server[1]
    )
    hub = Hub(settings)
    load(hub.governance_desk(), demo_spec())
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 4)]))
    yield hub
    hub.close()
    for consumer in hub.consumers():  # the server is the module's: each test's read models go with it
        store = ReadModelStore(settings.read_model_url_template, consumer)
        store.drop()
        store.close()


def test_the_api_answers_503_with_retry_after_while_the_database_is_down(hub: Hub, server: Server) -> None:
    pg, _ = server
    client = TestClient(create_app(hub))
    bearer = {"Authorization": f"Bearer {issue_credential(hub, 'dongthap-ppc')}"}
    assert client.get(RECORDS, params=PURPOSE, headers=bearer).status_code == 200
    assert client.get("/readyz").json() == {"status": "ready"}
    pg.stop()
    try:
        for path in (RECORDS, RECORDS + "/PM0000000001"):
            down = client.get(path, params=PURPOSE, headers=bearer)
            assert down.status_code == 503, down.text
            assert down.json()["error"] == "unavailable" and "read-model database" in down.json()["detail"]
            assert int(down.headers["retry-after"]) >= 1
            assert "127.0.0.1" not in down.text  # nothing of the database's address or login
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200  # alive, not ready
    finally:
        pg.start()
    back = client.get(RECORDS, params=PURPOSE, headers=bearer)
    assert back.status_code == 200 and len(back.json()["items"]) == 3
    assert client.get("/readyz").status_code == 200


def test_the_engine_waits_for_the_database_instead_of_failing(hub: Hub, server: Server) -> None:
    pg, _ = server
    fresh = Hub(hub.settings)  # its read models not opened yet, as in a worker starting
    found: list[dict[str, ReadModelStore]] = []
    pg.stop()
    try:
        with pytest.raises(ReadModelUnavailable):
            fresh.store("dongthap-ppc")
        waiting = threading.Thread(target=lambda: found.append(read_models_once_answering(fresh)))
        waiting.start()
        waiting.join(timeout=5)
        assert waiting.is_alive() and not found, "it waits while the database is down"
    finally:
        pg.start()
    waiting.join(timeout=30)
    assert found and set(found[0]) == set(hub.consumers())
    assert found[0]["dongthap-ppc"].state_hash() == hub.store("dongthap-ppc").state_hash()
    fresh.close()
