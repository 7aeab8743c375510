"""The query API: a consumer reads its own read model with its own credential, and nothing else; every
answer is recorded with its purpose in the access log on the real broker (R7)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from services.access_log import AccessLog, Checkpointing
from services.api.app import create_app
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from sharehub.envelope import pseudonym
from sharehub.kafka import client_config
from sharehub.settings import Settings
from tests.conftest import demo_hub, demo_spec
from tests.kafka_helpers import sharehub, topic_messages, wait_until
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector, two_versions

RECORDS = "/v1/consumers/{consumer}/datasets/party-members/records"


pytestmark = pytest.mark.kafka
PURPOSE = {"purpose": "Prepare the congress report"}


def load_members(hub: Hub) -> Hub:
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 6)]))
    return hub


@pytest.fixture
def loaded(hub: Hub) -> Hub:
    """A hub of this test's own, five members projected: for a test that changes it or reads its logs."""
    return load_members(hub)


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Hub]:
    """Five members projected on a hub the tests of this module share: for tests that only read records
    (each issues its own credentials; none changes governance or reads the access log)."""
    for hub in demo_hub(tmp_path_factory.mktemp("read-only") / "home", kafka_bootstrap):
        yield load_members(hub)


@pytest.fixture
def retaining(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Callable[..., Hub]]:
    """Makes a hub whose ``party-members`` declares ``retention_ms`` (the demo's other datasets keep theirs
    for ever), keeping ``history_days`` of history hub-wide (None: unset)."""
    made: list[Hub] = []

    def make(retention_ms: int, history_days: float | None = None) -> Hub:
        spec = demo_spec()
        datasets = [
            d.model_copy(update={"retention_ms": retention_ms}) if d.id == "party-members" else d
            for d in spec.datasets
        ]
        settings = Settings(
            home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None,
            history_days=history_days,
        )  # fmt: skip
        made.append(Hub(settings))
        load(made[-1].governance_desk(), spec.model_copy(update={"datasets": datasets}))
        return made[-1]

    yield make
    for hub in made:
        hub.close()


def client(hub: Hub) -> TestClient:
    """A client that states the purpose with every request (a request may state its own)."""
    c = TestClient(create_app(hub))
    c.params = PURPOSE
    return c


def bearer(hub: Hub, consumer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_credential(hub, consumer)}"}


def test_a_consumer_reads_only_its_granted_fields(read_only: Hub) -> None:
    auth = bearer(read_only, "langson-ppc")
    response = client(read_only).get(RECORDS.format(consumer="langson-ppc"), headers=auth)
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 5
    assert all(set(i["fields"]) == {"member_id", "province_code", "commune_code", "status"} for i in items)


def test_no_credential_is_401(read_only: Hub) -> None:
    response = client(read_only).get(RECORDS.format(consumer="dongthap-ppc"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_credential_is_401(read_only: Hub) -> None:
    response = client(read_only).get(
        RECORDS.format(consumer="dongthap-ppc"), headers={"Authorization": "Bearer shc_not-a-real-one"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "detail": "unknown credential",
        "message": "not authenticated: the credential is missing, unknown, expired, replaced or revoked",
    }
    assert response.headers["content-language"] == "en"  # no Accept-Language: English


def test_another_consumers_read_model_is_403_not_an_empty_list(read_only: Hub) -> None:
    auth = bearer(read_only, "langson-ppc")
    c = client(read_only)
    for path in (
        RECORDS.format(consumer="dongthap-ppc"),
        RECORDS.format(consumer="dongthap-ppc") + "/PM0000000001",
        "/v1/consumers/dongthap-ppc/datasets",
    ):
        response = c.get(path, headers=auth)
        assert response.status_code == 403, path
        assert "may not read the read model of 'dongthap-ppc'" in response.json()["detail"]


def test_a_dataset_without_an_active_agreement_is_403(read_only: Hub) -> None:
    auth = bearer(read_only, "go")
    response = client(read_only).get(RECORDS.format(consumer="go"), headers=auth)
    assert response.status_code == 403
    assert response.json()["detail"] == "'go' holds no active agreement for 'party-members'"


def test_unknown_dataset_and_record_are_404(read_only: Hub) -> None:
    auth = bearer(read_only, "dongthap-ppc")
    c = client(read_only)
    assert c.get("/v1/consumers/dongthap-ppc/datasets/weather/records", headers=auth).status_code == 404
    missing = c.get(RECORDS.format(consumer="dongthap-ppc") + "/PM9999999999", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


def test_fetch_by_key_and_pagination(read_only: Hub) -> None:
    auth = bearer(read_only, "dongthap-ppc")
    c = client(read_only)
    base = RECORDS.format(consumer="dongthap-ppc")
    one = c.get(base + "/PM0000000003", headers=auth).json()
    assert one["key"] == "PM0000000003" and one["fields"]["full_name"] == "Nguyễn Thị Lan"
    page = c.get(base, params={"limit": 2}, headers=auth).json()
    assert [i["key"] for i in page["items"]] == ["PM0000000001", "PM0000000002"]
    rest = c.get(base, params={"limit": 10, "after": page["next"]}, headers=auth).json()
    assert [i["key"] for i in rest["items"]] == ["PM0000000003", "PM0000000004", "PM0000000005"]
    assert rest["next"] is None


def test_a_revocation_made_by_another_process_reaches_the_api_without_a_request_reading_the_log(
    loaded: Hub,
) -> None:
    c, auth = client(loaded), bearer(loaded, "dongthap-ppc")
    record = RECORDS.format(consumer="dongthap-ppc") + "/PM0000000001"
    assert c.get(record, headers=auth).status_code == 200
    elsewhere = Hub(loaded.settings)  # another process's view of the same hub: its own state and log reader
    try:
        with elsewhere.governing() as gov:
            gov.revoke("cpo", "dongthap-ppc.party-members.1", "the purpose is fulfilled")
    finally:
        elsewhere.close()
    # The API's follower thread brings the state up to date; requests only read it.
    wait_until(
        lambda: c.get(record, headers=auth).status_code == 403, timeout=10, what="403 after revocation"
    )
    assert loaded.following
    loaded.close()
    assert not loaded.following


def test_no_answer_leaves_the_api_when_the_access_log_refuses_its_record(loaded: Hub) -> None:
    # The hub's services may read the governance topic but never write it: every write is refused.
    state = loaded.governance
    refusing = AccessLog(
        loaded.kafka,
        state.governance_topic,
        loaded.keys.signing_key(state.operator),
        Checkpointing(state.governance_topic, state.operator),
    )
    c = TestClient(create_app(loaded, access_log=refusing))
    c.params = PURPOSE
    try:
        response = c.get(
            RECORDS.format(consumer="dongthap-ppc") + "/PM0000000001", headers=bearer(loaded, "dongthap-ppc")
        )
    finally:
        refusing.close()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "unavailable" and "access log did not take" in body["detail"]
    assert "PM0000000001" not in response.text


def test_a_credential_issued_elsewhere_just_now_is_known_to_the_api_at_once(loaded: Hub) -> None:
    # An API whose follower would not read the log again for an hour: only the recheck can find the token.
    api = Hub(loaded.settings.model_copy(update={"governance_refresh_s": 3600}))
    try:
        c = client(api)  # the app starts the follower, which reads the log once now
        token = issue_credential(loaded, "dongthap-ppc")  # another hub, as another process would
        asked = time.monotonic()
        assert api.governance.consumer_for_token(token) is None, "the followed state does not know it yet"
        assert api.governance_since(asked, min_interval=0.05).consumer_for_token(token) == "dongthap-ppc"
        other = issue_credential(loaded, "dongthap-ppc")
        record = RECORDS.format(consumer="dongthap-ppc") + "/PM0000000001"
        assert c.get(record, headers={"Authorization": f"Bearer {other}"}).status_code == 200
    finally:
        api.close()


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
def test_a_bad_limit_is_a_4xx_not_a_crash(read_only: Hub, limit: str) -> None:
    auth = bearer(read_only, "dongthap-ppc")
    response = client(read_only).get(
        RECORDS.format(consumer="dongthap-ppc"), params={"limit": limit}, headers=auth
    )
    assert response.status_code == 422


def test_datasets_lists_what_the_agreements_grant(read_only: Hub) -> None:
    auth = bearer(read_only, "langson-ppc")
    listed = client(read_only).get("/v1/consumers/langson-ppc/datasets", headers=auth).json()
    assert listed == [
        {
            "dataset": "handbook-attendance",
            "agreement": "langson-ppc.handbook-attendance.1",
            "fields": list(read_only.governance.agreement("langson-ppc.handbook-attendance.1").terms.fields),
            "records": 0,
        },
        {
            "dataset": "party-members",
            "agreement": "langson-ppc.party-members.1",
            "fields": ["member_id", "province_code", "commune_code", "status"],
            "records": 5,
        },
    ]


def test_openapi_and_health(read_only: Hub) -> None:
    c = client(read_only)
    assert c.get("/healthz").json() == {"status": "ok"}
    spec = c.get("/openapi.json").json()
    assert "/v1/consumers/{consumer}/datasets/{dataset}/records/{key}" in spec["paths"]


def test_R7_every_answer_is_in_the_access_log_with_its_purpose(loaded: Hub) -> None:
    from services.access_log import read_access_log

    auth = bearer(loaded, "dongthap-ppc")
    c = client(loaded)
    base = RECORDS.format(consumer="dongthap-ppc")
    assert c.get(base, params={"limit": 2, "purpose": "Audit of cell 7"}, headers=auth).status_code == 200
    assert c.get(base + "/PM0000000004", headers=auth).status_code == 200
    assert c.get("/v1/consumers/langson-ppc/datasets", headers=auth).status_code == 403  # not answered
    logged = list(read_access_log(loaded.kafka, loaded.governance.access_log_topic))
    routing = loaded.keys.routing_key("party-members")
    ref = {f"PM000000000{i}": pseudonym(routing, f"PM000000000{i}").hex() for i in (1, 2, 4)}
    assert [(e["operation"], e["purpose"], e["record_refs"]) for e in logged] == [
        ("list_records", "Audit of cell 7", [ref["PM0000000001"], ref["PM0000000002"]]),
        ("get_record", PURPOSE["purpose"], [ref["PM0000000004"]]),
    ]
    # Records are named as on the dataset topic: by pseudonym, never by key.
    raw = b"".join(v for _, _, v in topic_messages(loaded, loaded.governance.access_log_topic))
    assert b"PM000000000" not in raw
    assert {(e["consumer"], e["dataset"], e["agreement"]) for e in logged} == {
        ("dongthap-ppc", "party-members", "dongthap-ppc.party-members.1")
    }


@pytest.mark.parametrize("purpose", [None, "", "x" * 201])
def test_a_query_without_a_purpose_is_refused(read_only: Hub, purpose: str | None) -> None:
    auth = bearer(read_only, "dongthap-ppc")
    params = {} if purpose is None else {"purpose": purpose}
    response = TestClient(create_app(read_only)).get(
        RECORDS.format(consumer="dongthap-ppc"), params=params, headers=auth
    )
    assert response.status_code == 422
    assert "purpose" in response.text


def test_status_and_metrics_show_each_read_model_to_the_operator_only(read_only: Hub) -> None:
    c = client(read_only)
    assert c.get("/v1/status", headers=bearer(read_only, "dongthap-ppc")).status_code == 403
    operator = bearer(read_only, "cpo")
    status = c.get("/v1/status", headers=operator).json()
    models = {(m["consumer"], m["dataset"]): m for m in status["read_models"]}
    dong_thap = models[("dongthap-ppc", "party-members")]
    assert dong_thap["rows"] == 5 and dong_thap["agreement"] == "dongthap-ppc.party-members.1"
    assert dong_thap["seconds_since_last_write"] is not None and dong_thap["seconds_since_last_write"] >= 0
    assert status["governance_head"] == read_only.governance.head_sequence
    metrics = c.get("/metrics", headers=operator)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'sharehub_read_model_rows{consumer="dongthap-ppc",dataset="party-members"} 5.0' in metrics.text
    assert 'sharehub_agreement_active{consumer="langson-ppc",dataset="party-members"} 1.0' in metrics.text


def test_a_record_on_the_quarantine_that_is_not_one_is_counted_as_malformed(loaded: Hub) -> None:
    producer = Producer(client_config(loaded.kafka_as("projector")))  # a principal that may write it
    producer.produce(loaded.governance.quarantine_topic, value=b"not a quarantine record")
    assert producer.flush(10) == 0
    operator = bearer(loaded, "cpo")
    status = client(loaded).get("/v1/status", headers=operator)
    assert status.status_code == 200 and status.json()["quarantined"] == {"malformed": 1}
    metrics = client(loaded).get("/metrics", headers=operator)
    assert metrics.status_code == 200 and 'reason="malformed"' in metrics.text


@pytest.fixture
def varied(hub: Hub) -> Hub:
    people = [
        member(member_id="PM0000000001", province_code="82", admission_date="2005-05-19"),
        member(member_id="PM0000000002", province_code="20", admission_date="1999-01-02"),
        member(member_id="PM0000000003", province_code="82", admission_date="2011-11-11",
               status="PROBATIONARY", official_date=None),
        member(member_id="PM0000000004", province_code="01", admission_date="1987-03-04"),
    ]  # fmt: skip
    apply(projector(hub), messages(hub, people))
    return hub


def test_list_with_a_filter_and_a_sort_on_granted_fields(varied: Hub) -> None:
    auth = bearer(varied, "dongthap-ppc")
    c = client(varied)
    base = RECORDS.format(consumer="dongthap-ppc")
    found = c.get(
        base, params={"filter": 'province_code == "82" and status == "OFFICIAL"'}, headers=auth
    ).json()
    assert [i["key"] for i in found["items"]] == ["PM0000000001"]
    oldest_first = c.get(base, params={"sort": "admission_date", "limit": 3}, headers=auth).json()
    assert [i["key"] for i in oldest_first["items"]] == ["PM0000000004", "PM0000000002", "PM0000000001"]
    assert oldest_first["next"] == "3"
    rest = c.get(base, params={"sort": "admission_date", "offset": 3}, headers=auth).json()
    assert [i["key"] for i in rest["items"]] == ["PM0000000003"] and rest["next"] is None
    newest = c.get(base, params={"sort": "-admission_date", "limit": 1}, headers=auth).json()
    assert [i["key"] for i in newest["items"]] == ["PM0000000003"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": 'national_id == "1"'}, "national_id"),  # exists, but not granted to Dong Thap
        ({"filter": 'shoe_size == "42"'}, "shoe_size"),
        ({"filter": "status == "}, "column"),
        ({"filter": "__import__('os')"}, "column"),
        ({"sort": "national_id"}, "'national_id' is not a field 'dongthap-ppc' is granted"),
    ],
)
def test_a_bad_filter_or_sort_is_a_clear_400(varied: Hub, params: dict[str, str], message: str) -> None:
    response = client(varied).get(
        RECORDS.format(consumer="dongthap-ppc"), params=params, headers=bearer(varied, "dongthap-ppc")
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]


def test_as_of_a_past_time_shows_each_record_as_it_stood_then(hub: Hub) -> None:
    now = dt.datetime.now(dt.UTC)
    key_since = hub.governance.agencies_["coc"].key("coc/custody/1").valid_from  # events before it are forged
    moments = [key_since + dt.timedelta(milliseconds=ms) for ms in (100, 200, 300)]  # three moments
    assert moments[-1] < now
    history = [
        member(member_id="PM0000000001", status="PROBATIONARY", official_date=None),
        member(member_id="PM0000000002"),
        member(member_id="PM0000000001", status="OFFICIAL"),
    ]
    apply(projector(hub), messages(hub, history, occurred=moments))
    auth, c = bearer(hub, "langson-ppc"), client(hub)
    one = RECORDS.format(consumer="langson-ppc") + "/PM0000000001"

    def status_as_of(moment: dt.datetime) -> object:
        response = c.get(one, params={**PURPOSE, "as_of": moment.isoformat()}, headers=auth)
        return response.json()["fields"]["status"] if response.status_code == 200 else response.status_code

    assert status_as_of(moments[0] - dt.timedelta(milliseconds=50)) == 404, "before its first event"
    assert status_as_of(moments[1].astimezone(dt.timezone(dt.timedelta(hours=7)))) == "PROBATIONARY"
    assert status_as_of(now) == "OFFICIAL"
    page = c.get(
        RECORDS.format(consumer="langson-ppc"),
        params={**PURPOSE, "as_of": (moments[0] + dt.timedelta(milliseconds=50)).isoformat()},
        headers=auth,
    ).json()
    assert [(i["key"], i["fields"]["status"]) for i in page["items"]] == [("PM0000000001", "PROBATIONARY")]

    naive = c.get(one, params={**PURPOSE, "as_of": "2026-01-31T17:00:00"}, headers=auth)
    assert naive.status_code == 400 and "time zone" in naive.json()["detail"]
    assert c.get(one, params={**PURPOSE, "as_of": "last tuesday"}, headers=auth).status_code == 422


def test_as_of_before_the_history_the_read_models_keep_is_a_clear_400(loaded: Hub) -> None:
    keeping = Hub(loaded.settings.model_copy(update={"history_days": 30}))
    try:
        c, auth = client(keeping), bearer(keeping, "dongthap-ppc")
        listing = RECORDS.format(consumer="dongthap-ppc")
        now = dt.datetime.now(dt.UTC)
        for path in (listing, listing + "/PM0000000001"):
            too_old = {**PURPOSE, "as_of": (now - dt.timedelta(days=31)).isoformat()}
            refused = c.get(path, params=too_old, headers=auth)
            assert refused.status_code == 400, refused.text
            assert "keep 30 days of history" in refused.json()["detail"]
            assert c.get(path, params={**PURPOSE, "as_of": now.isoformat()}, headers=auth).status_code == 200
    finally:
        keeping.close()


def test_as_of_before_a_datasets_retention_is_a_clear_400_naming_it(retaining: Callable[..., Hub]) -> None:
    week_ms = 7 * 86_400_000
    hub = retaining(week_ms, history_days=30)  # party-members: 7 days; resolution-tasks: the hub's 30
    c, now = client(hub), dt.datetime.now(dt.UTC)

    def asked(consumer: str, path: str, days_ago: float) -> tuple[int, str]:
        moment = (now - dt.timedelta(days=days_ago)).isoformat()
        answer = c.get(path, params={**PURPOSE, "as_of": moment}, headers=bearer(hub, consumer))
        return answer.status_code, answer.json().get("detail", "") if answer.status_code != 200 else ""

    members = RECORDS.format(consumer="dongthap-ppc")
    # Every route that takes as_of; within the retention each answers (no record then: an empty page, 404).
    for path, within in ((members, 200), (members + "/PM0000000001", 404)):
        status, detail = asked("dongthap-ppc", path, 8)
        assert status == 400, detail
        assert "dataset 'party-members' is retained for 7 days (its retention_ms, 604800000)" in detail
        assert "the history of 'party-members' starts at" in detail
        assert asked("dongthap-ppc", path, 6)[0] == within, "within its retention"
    tasks = "/v1/consumers/go/datasets/resolution-tasks/records"
    assert asked("go", tasks, 8) == (200, ""), "another dataset keeps the hub's 30 days"
    status, detail = asked("go", tasks, 31)
    assert status == 400 and "the hub's read models keep 30 days of history (SHAREHUB_HISTORY_DAYS)" in detail


def test_a_datasets_retention_alone_prunes_its_history_and_leaves_its_current_rows(
    retaining: Callable[..., Hub],
) -> None:
    hub = retaining(1500)  # no SHAREHUB_HISTORY_DAYS: party-members' retention of 1.5 s is the only bound
    moments = two_versions(hub, projector(hub))
    time.sleep(max(0.0, (moments[1] + dt.timedelta(seconds=2) - dt.datetime.now(dt.UTC)).total_seconds()))

    run = sharehub(hub, "project", "prune-history")

    assert run.returncode == 0, run.stderr
    forgotten = dict(line.split("\t") for line in run.stdout.splitlines())
    assert forgotten == {c: "1" if c in ("dongthap-ppc", "langson-ppc") else "0" for c in hub.consumers()}
    assert "party-members: versions from before" in run.stderr
    assert "retained for 1.5 seconds" in run.stderr
    assert "documents" not in run.stderr, "a dataset kept for ever has no horizon"
    store = hub.store("dongthap-ppc")
    assert store.version_count("party-members") == 1
    current = store.get("party-members", "PM0000000001")
    assert current is not None and current["fields"]["status"] == "OFFICIAL", "retention takes no current row"


def test_prune_history_forgets_only_what_no_read_within_the_history_needs(hub: Hub) -> None:
    moments = two_versions(hub, projector(hub))
    consumers = ("dongthap-ppc", "langson-ppc")
    assert [hub.store(c).version_count("party-members") for c in consumers] == [2, 2]
    time.sleep(max(0.0, (moments[1] + dt.timedelta(seconds=1.5) - dt.datetime.now(dt.UTC)).total_seconds()))

    run = sharehub(hub, "project", "prune-history", "--days", "0.00001")  # 0.864 s: both versions are older

    assert run.returncode == 0, run.stderr
    forgotten = dict(line.split("\t") for line in run.stdout.splitlines())
    assert forgotten == {c: "1" if c in consumers else "0" for c in hub.consumers()}, "the superseded one"
    for c in consumers:
        store = hub.store(c)
        assert store.version_count("party-members") == 1
        now = store.get("party-members", "PM0000000001", as_of=dt.datetime.now(dt.UTC))
        assert now == store.get("party-members", "PM0000000001"), "reads within the history answer as before"
    unset = sharehub(hub, "project", "prune-history")
    assert unset.returncode == 2 and "SHAREHUB_HISTORY_DAYS" in unset.stderr
