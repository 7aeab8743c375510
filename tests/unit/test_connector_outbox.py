"""The outbox connector's parts that need no database or broker: its mapping file, positions in commit
order, the DSN and password rules, the set-up SQL, rejects written once, and its health."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.health import SourceHealth
from connectors.journal import SourceState
from connectors.outbox import IdKind, OutboxRejects, Row, checked_dsn, position, read_password, split
from connectors.outbox_mapping import OutboxMapping, setup_sql
from sharehub.errors import ConfigurationError, InputError

YAML = """table: agency.outbox
payload: payload
type: type
key: aggregate_id
types:
  MemberRegistered: UPSERTED
  MemberErased: ERASED
unmapped: skip
notify: sharehub_outbox
"""
TOML = """table = "agency.outbox"
payload = "payload"
type = "type"
key = "aggregate_id"
unmapped = "skip"
notify = "sharehub_outbox"
[types]
MemberRegistered = "UPSERTED"
MemberErased = "ERASED"
"""


def test_a_mapping_reads_the_same_from_yaml_and_toml(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(YAML)
    (tmp_path / "m.toml").write_text(TOML)
    mapping = OutboxMapping.load(tmp_path / "m.yaml")
    assert mapping == OutboxMapping.load(tmp_path / "m.toml")
    assert (mapping.table, mapping.id, mapping.txid) == (("agency", "outbox"), "id", "txid")
    assert mapping.filtered == ["MemberErased", "MemberRegistered"]
    assert mapping.event_type("MemberErased") == "ERASED" and mapping.event_type("Other") is None
    plain = OutboxMapping.of({"table": "outbox", "payload": "body"})
    assert plain.event_type(None) == "UPSERTED" and plain.filtered is None and plain.notify is None


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"payload": "p"}, "must name the 'table'"),
        ({"table": "t", "payload": "p", "colour": "x"}, "unknown settings: colour"),
        ({"table": "t", "payload": "p", "type": "k", "types": {"A": "CREATED"}}, "not ['A: CREATED']"),
        ({"table": "t", "payload": "p", "types": {"A": "UPSERTED"}}, "needs the 'type' column"),
        ({"table": "t", "payload": "p", "type": "k"}, "needs 'types'"),
        ({"table": "t", "payload": "p", "unmapped": "drop"}, "reject or skip"),
        ({"table": "a.b.c", "payload": "p"}, "a table or schema.table"),
        ({"table": "t", "payload": "p", "notify": "x$y"}, "must be a name"),
    ],
)
def test_a_wrong_mapping_is_refused_with_what_is_wrong(raw: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        OutboxMapping.of(raw)
    assert says in str(caught.value)


def test_a_mapping_file_of_another_kind_or_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / "m.toml").write_text("table = ")
    for name in ("m.json", "m.toml", "missing.yaml"):
        with pytest.raises(ConfigurationError):
            OutboxMapping.load(tmp_path / name)


bigints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
txids = st.integers(min_value=3, max_value=2**64 - 1)


@given(st.tuples(txids, bigints), st.tuples(txids, bigints))
def test_positions_sort_as_transaction_then_integer_id(a: tuple[int, int], b: tuple[int, int]) -> None:
    kind = IdKind(uuid=False)
    pa, pb = (position(t, kind.rank(i)) for t, i in (a, b))
    assert (pa < pb) == (a < b) and (pa == pb) == (a == b)
    txid, rank = split(pa)
    assert (txid, kind.value(rank)) == a


@given(txids, st.uuids(), st.uuids())
def test_positions_of_uuid_ids_sort_within_a_transaction_and_come_back(
    txid: int, a: uuid.UUID, b: uuid.UUID
) -> None:
    kind = IdKind(uuid=True)
    assert (position(txid, kind.rank(a)) < position(txid, kind.rank(b))) == (a.int < b.int)
    assert position(txid, kind.rank(a)) < position(txid + 1, kind.rank(b))
    assert kind.value(split(position(txid, kind.rank(a)))[1]) == a


def test_a_dsn_with_a_password_is_refused_and_one_without_is_taken() -> None:
    for dsn in ("postgresql://u:secret@db/agency", "host=db user=u password=secret dbname=agency"):
        with pytest.raises(InputError, match="carries a password") as caught:
            checked_dsn(dsn)
        assert "secret" not in str(caught.value)
    assert checked_dsn("postgresql+psycopg://u@db/agency") == "postgresql://u@db/agency"
    assert checked_dsn("host=db user=u dbname=agency") == "host=db user=u dbname=agency"


def test_a_password_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        read_password(path)
    path.chmod(0o600)
    assert read_password(path) == "s3cret"


def test_the_setup_adds_the_commit_order_column_the_trigger_and_a_read_only_role() -> None:
    mapping = OutboxMapping.of({"table": "agency.outbox", "payload": "payload", "notify": "sharehub_outbox"})
    sql = setup_sql(mapping, role="sharehub_reader")
    assert sql[0] == (
        'ALTER TABLE "agency"."outbox" ADD COLUMN IF NOT EXISTS "txid" xid8 NOT NULL '
        "DEFAULT pg_current_xact_id()"
    )
    assert sql[1] == 'CREATE INDEX IF NOT EXISTS "outbox_txid_id" ON "agency"."outbox" ("txid", "id")'
    assert "pg_notify('sharehub_outbox', '')" in sql[2]
    assert sql[-1] == 'GRANT SELECT ON "agency"."outbox" TO "sharehub_reader"'
    assert setup_sql(mapping, role="r", delete=True)[-1].startswith("GRANT SELECT, DELETE")
    assert len(setup_sql(OutboxMapping.of({"table": "outbox", "payload": "p"}))) == 2
    with pytest.raises(ConfigurationError):
        setup_sql(mapping, role="r$x")


def test_rejects_name_the_row_and_are_written_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    row = Row(17, 812, {"secret": "content"}, "MemberRegistered", None)
    OutboxRejects(path).write([(row, "gender: 'X' is not one of the symbols")])
    again = OutboxRejects(path)
    again.write(
        [(row, "gender: 'X' is not one of the symbols"), (Row(uuid.UUID(int=5), 812, {}, None, None), "r")]
    )
    lines = path.read_text().splitlines()
    assert lines[0] == '{"id": 17, "txid": "812", "reason": "gender: \'X\' is not one of the symbols"}'
    assert len(lines) == 2 and "content" not in path.read_text()
    assert again.ids == ["00000000-0000-0000-0000-000000000005", "17"]


def test_an_outbox_health_counts_rows_not_positions() -> None:
    state = SourceState(
        name="outbox:agency/public.outbox", acked=position(900, 2**63 + 42), published=40, skipped=2,
        rejected=1, endless=True, pending=7,
    )  # fmt: skip
    health = SourceHealth.of("party-members", state)
    assert (health.acknowledged, health.pending, health.done, health.endless) == (43, 7, False, True)
