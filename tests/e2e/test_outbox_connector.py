"""The PostgreSQL outbox connector (`sharehub connect outbox`) against the suite's real PostgreSQL, the real
broker, the real key service and a real site: a kill -9 in the middle of a batch, then every row once on the
topic and in the read model the real projector builds; rows that commit out of id order; a bad row
rejected; a NOTIFY waking the connector at once. Each test has a schema and a role of its own, dropped
afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.journal import SourceState, journal_path, read_journal
from connectors.outbox import OutboxTable, position
from connectors.outbox_mapping import OutboxMapping, setup_sql
from services.hub import Hub
from sharehub.codec import Opened
from sharehub.errors import ConfigurationError
from sharehub.kafka import TopicReader
from tests.e2e.test_connectors import (
    DATASET,
    _connected_site,
    _events_per_member,
    _in_the_read_model,
    _metrics,
    _run,
    _start,
)
from tests.kafka_helpers import free_port, topic_messages, wait_until
from tests.process_helpers import kill_when
from tooling.synthetic import generate_party_members

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

#: The common outbox shape, as an agency has it before sharehub.
TABLE = """CREATE TABLE {schema}.outbox (
    id bigserial PRIMARY KEY,
    aggregate text NOT NULL,
    aggregate_id text NOT NULL,
    type text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
)"""
INSERT = "INSERT INTO {schema}.outbox (aggregate, aggregate_id, type, payload) VALUES (%s, %s, %s, %s)"


@dataclass
class Outbox:
    """A schema of this test's own with the agency's outbox table, the superuser's DSN and a reader role."""

    schema: str
    admin: str
    role: str

    def dsn(self, user: str) -> str:
        params = conninfo_to_dict(self.admin) | {"user": user}
        params.pop("password", None)
        return make_conninfo(**params)

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.admin, autocommit=autocommit)

    def insert(
        self, conn: psycopg.Connection[tuple[Any, ...]], rows: list[tuple[str, Any]], key: str = ""
    ) -> None:
        """(type, payload) rows, the aggregate's id the payload's member_id (else ``key``), a statement each:
        in the connection's transaction, or each its own."""
        with conn.cursor() as cur:
            cur.executemany(
                INSERT.format(schema=self.schema),
                [("member", _member_id(p) or key, t, json.dumps(p)) for t, p in rows],
            )

    def backends(self, conn: psycopg.Connection[tuple[Any, ...]]) -> set[int]:
        """The server processes of the reader role's connections (the connector's)."""
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s", (self.role,)).fetchall()
        return {int(pid) for (pid,) in rows}

    def count(self) -> int:
        with self.connect() as conn:
            found = conn.execute(f"SELECT count(*) FROM {self.schema}.outbox").fetchone()
        assert found is not None
        return int(found[0])


def _member_id(payload: Any) -> str:
    return str(payload.get("member_id", "")) if isinstance(payload, dict) else ""


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    url = os.environ.get("SHAREHUB_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("SHAREHUB_TEST_POSTGRES_URL is not set: run the suite with 'make test'")
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"ob_{uuid.uuid4().hex[:10]}"
    box = Outbox(name, admin, f"{name}_reader")
    with box.connect() as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(TABLE.format(schema=name))
    try:
        yield box
    finally:
        with box.connect() as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")
            if conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (box.role,)).fetchone():
                conn.execute(f"DROP OWNED BY {box.role}")
                conn.execute(f"DROP ROLE {box.role}")


def _outbox_states(journal: Path) -> list[SourceState]:
    """The outbox sources the journal knows (none before the connector has started its table)."""
    return [s for source, s in read_journal(journal).items() if source.startswith("outbox:")]


def _outbox_state(journal: Path) -> SourceState:
    found = _outbox_states(journal)
    assert len(found) == 1, read_journal(journal)
    return found[0]


def _acknowledged(journal: Path) -> int:
    return sum(s.published + s.skipped + s.rejected for s in _outbox_states(journal))


def _on_topic(hub: Hub, reader: TopicReader | None = None) -> int:
    """Events on the dataset's topic (acknowledged by the broker), from its lanes' ends."""
    topic = hub.governance.dataset(DATASET).topic
    if reader is None:
        with TopicReader(hub.kafka) as reader:
            return _on_topic(hub, reader)
    return sum(high - low for low, high in reader.partitions(topic).values())


def _kill_mid_batch(process: subprocess.Popen[str], hub: Hub, journal: Path, at_least: int) -> None:
    """SIGKILL ``process`` once a batch after ``at_least`` rows is partly on the topic (its first chunk
    acknowledged), not yet journaled."""
    with TopicReader(hub.kafka) as reader:

        def mid_batch() -> bool:
            try:
                written = sum(s.published + s.skipped for s in _outbox_states(journal))
            except ConfigurationError:  # stopped inside a write of its journal, holding its lock
                return False
            return written >= at_least and _on_topic(hub, reader) >= written + 100

        kill_when(process, mid_batch)


def test_the_outbox_connector_killed_mid_batch_publishes_every_row_once(
    hub: Hub, api: str, outbox: Outbox, tmp_path: Path
) -> None:
    home, env = _connected_site(hub, tmp_path, api)
    mapping = tmp_path / "outbox.yaml"
    mapping.write_text(
        f"table: {outbox.schema}.outbox\npayload: payload\ntype: type\nkey: aggregate_id\n"
        "types:\n  MemberRegistered: UPSERTED\n  MemberCorrected: CORRECTED\n  MemberErased: ERASED\n"
    )
    setup = _run(env, "connect", "outbox-setup", "--mapping", str(mapping), "--role", outbox.role,
                 "--dsn", outbox.admin)  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    members: list[dict[str, Any]] = list(generate_party_members(3000, seed=41))
    rows: list[tuple[str, Any]] = [("MemberRegistered", m) for m in members]
    rows[10] = ("MemberRegistered", {**members[10], "gender": "X"})  # id 11: not the schema's
    rows[100] = ("MemberPromoted", members[100])  # id 101: a type the mapping does not name
    rows[499] = ("MemberRegistered", [members[499]])  # id 500: not a JSON object
    with outbox.connect() as conn:
        outbox.insert(conn, rows)
    password = tmp_path / "db.password"
    password.write_text("never-printed-anywhere\n")
    password.chmod(0o600)

    journal = journal_path(home, DATASET)
    common = ("connect", "outbox", "--dsn", outbox.dsn(outbox.role), "--dataset", DATASET, "--mapping",
              str(mapping), "--password-file", str(password), "--checkpoint-every", "1000")  # fmt: skip
    _kill_mid_batch(_start(env, *common, "--once", "--quiet"), hub, journal, 1000)
    time.sleep(1)  # what the killed process had handed to the network lands now or never
    killed = _outbox_state(journal)
    extra = _on_topic(hub) - (killed.published + killed.skipped)
    assert 1000 <= killed.published + killed.skipped + killed.rejected < len(rows) and extra >= 100

    port = free_port()
    following = _start(env, *common, "--metrics-port", str(port), "--poll-interval", "0.2")
    wait_until(lambda: _acknowledged(journal) == 3000 and _outbox_state(journal).pending == 0
               or following.poll() is not None, timeout=120, what="every row acknowledged")  # fmt: skip
    # The database drops the connector's connection: it connects again and goes on with what comes next.
    later = list(generate_party_members(20, seed=41, start_index=3000))
    with outbox.connect() as conn:
        dropped = outbox.backends(conn)
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (outbox.role,)
        )
        outbox.insert(conn, [("MemberRegistered", m) for m in later])
    members += later
    wait_until(lambda: _acknowledged(journal) == 3020 and _outbox_state(journal).pending == 0
               or following.poll() is not None, timeout=60, what="rows after a lost connection")  # fmt: skip
    with outbox.connect() as conn:
        assert dropped and not outbox.backends(conn) & dropped, "the connector read through a new connection"
    metrics = _metrics(port)
    following.send_signal(signal.SIGTERM)
    _, stderr = following.communicate(timeout=30)
    assert following.returncode == 0, stderr
    assert "never-printed-anywhere" not in stderr

    state = _outbox_state(journal)
    assert state.skipped - killed.skipped == extra, "what the topic held was found there, not sent again"
    assert (state.rejected, state.error, state.pending) == (3, None, 0)
    counts = _events_per_member(hub)
    bad = {members[i]["member_id"] for i in (10, 100, 499)}
    assert set(counts) == {m["member_id"] for m in members} - bad
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1][:5]
    applied = _in_the_read_model(hub)
    assert set(applied) == set(counts) and set(applied.values()) == {1}, "each record in the read model once"

    rejects = [json.loads(line) for line in (home / "connectors" / f"{DATASET}.outbox-rejects.jsonl")
               .read_text().splitlines()]  # fmt: skip
    assert [r["id"] for r in rejects] == [11, 101, 500]
    assert "gender" in rejects[0]["reason"] and "MemberPromoted" in rejects[1]["reason"]
    assert "not a JSON object" in rejects[2]["reason"]
    assert outbox.count() == 3020, "the outbox is only read"

    label = f'dataset="{DATASET}",file="{state.name}"'
    assert f"sharehub_connector_rejects{{{label}}} 3.0" in metrics
    assert f"sharehub_connector_lines_pending{{{label}}} 0.0" in metrics
    assert f"sharehub_connector_lines_acknowledged{{{label}}} 3020.0" in metrics
    status = _run(env, "connect", "status")
    row = next((line for line in status.stdout.splitlines() if "outbox:" in line), status.stdout)
    assert "following" in row and "3020" in row and " 3 " in row


def test_rows_go_in_commit_order_and_a_notify_wakes_the_connector(
    hub: Hub, api: str, outbox: Outbox, tmp_path: Path
) -> None:
    home, env = _connected_site(hub, tmp_path, api)
    mapping = tmp_path / "outbox.toml"
    mapping.write_text(
        f'table = "{outbox.schema}.outbox"\npayload = "payload"\ntype = "type"\nkey = "aggregate_id"\n'
        'notify = "sharehub_outbox"\nunmapped = "skip"\n[types]\nMemberRegistered = "UPSERTED"\n'
        'MemberCorrected = "CORRECTED"\nMemberErased = "ERASED"\n'
    )
    setup = _run(env, "connect", "outbox-setup", "--mapping", str(mapping), "--role", outbox.role,
                 "--delete", "--dsn", outbox.admin)  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    a, b, c, d = list(generate_party_members(4, seed=43))
    journal = journal_path(home, DATASET)
    # Polling every minute: only a NOTIFY brings a row out within seconds.
    connector = _start(env, "connect", "outbox", "--dsn", outbox.dsn(outbox.role), "--dataset", DATASET,
                       "--mapping", str(mapping), "--poll-interval", "60", "--delete-published")  # fmt: skip
    try:
        wait_until(lambda: [s.pending for s in _outbox_states(journal)] == [0]
                   or connector.poll() is not None, timeout=60, what="the connector idle")  # fmt: skip
        with outbox.connect(autocommit=False) as t1, outbox.connect(autocommit=False) as t2:
            outbox.insert(t1, [("MemberRegistered", a)])  # takes id 1
            outbox.insert(t2, [("MemberRegistered", b), ("AuditOnly", {"note": "skipped"})])  # ids 2, 3
            t2.commit()  # commits first: its NOTIFY wakes the connector, which must not take id 2 yet
            time.sleep(1.5)
            assert _on_topic(hub) == 0, "a row behind a transaction still open was published"
            t1.commit()
            committed = time.monotonic()
            wait_until(lambda: _on_topic(hub) == 2, timeout=20, what="both rows, once the first committed")
            woke = time.monotonic() - committed

            # The older transaction (its xid taken first) inserts its row last, and commits first.
            t1.execute("SELECT pg_current_xact_id()")
            outbox.insert(t2, [("MemberRegistered", c)])  # id 4, the younger transaction
            outbox.insert(t1, [("MemberCorrected", {**a, "status": "EXPELLED"})])  # id 5
            t1.commit()
            wait_until(lambda: _on_topic(hub) == 3, timeout=20, what="the older transaction's row")
            t2.commit()  # id 4 after id 5 was published: a poller by id alone would skip it forever
            wait_until(lambda: _on_topic(hub) == 4, timeout=20, what="the younger transaction's row")
        with outbox.connect() as conn:  # an erasure naming its subject by the aggregate's id alone
            outbox.insert(conn, [("MemberErased", {})], key=b["member_id"])
            outbox.insert(conn, [("MemberRegistered", d)])
        wait_until(lambda: _on_topic(hub) == 6, timeout=20, what="an erasure and a last row")
        wait_until(lambda: outbox.count() == 1, timeout=20, what="the published rows deleted")
    finally:
        connector.send_signal(signal.SIGTERM)
        _, stderr = connector.communicate(timeout=30)
    assert connector.returncode == 0, stderr
    assert woke < 5, f"the NOTIFY did not wake the connector ({woke:.1f} s)"

    codec = hub.codec(DATASET)
    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    opened = codec.open_many([(p, raw) for p, _, raw in topic_messages(hub, topic)])
    assert all(isinstance(o, Opened) for o in opened), opened
    events = sorted((o.envelope.header.event_type, o.subject_ref) for o in opened if isinstance(o, Opened))
    ref = {m["member_id"]: codec.pseudonym(m["member_id"]).hex() for m in (a, b, c, d)}
    assert events == sorted([
        ("UPSERTED", ref[a["member_id"]]), ("UPSERTED", ref[b["member_id"]]),
        ("UPSERTED", ref[c["member_id"]]), ("CORRECTED", ref[a["member_id"]]),
        ("ERASED", ref[b["member_id"]]), ("UPSERTED", ref[d["member_id"]]),
    ])  # fmt: skip
    state = _outbox_state(journal)
    assert (state.published, state.rejected, state.error) == (6, 0, None)
    with outbox.connect() as conn:
        left = conn.execute(f"SELECT type FROM {outbox.schema}.outbox").fetchall()
    assert left == [("AuditOnly",)], "a type the mapping skips is neither published nor deleted"


def test_a_table_not_set_up_or_a_database_behind_the_position_is_refused_clearly(outbox: Outbox) -> None:
    mapping = OutboxMapping.of({"table": f"{outbox.schema}.outbox", "payload": "payload"})
    with pytest.raises(ConfigurationError, match="has no column txid 'txid'"):
        OutboxTable(outbox.admin, mapping)
    with outbox.connect() as conn:
        for statement in setup_sql(mapping):
            conn.execute(statement.encode())
    table = OutboxTable(outbox.admin, mapping)
    try:
        assert table.source == f"outbox:{conninfo_to_dict(outbox.admin)['dbname']}/{outbox.schema}.outbox"
        table.check_horizon(0)
        with pytest.raises(ConfigurationError, match="restored from a backup"):
            table.check_horizon(position(2**40, 0))  # a journal from a cluster far ahead of this one
    finally:
        table.close()
    with pytest.raises(ConfigurationError, match="no table"):
        OutboxTable(outbox.admin, OutboxMapping.of({"table": f"{outbox.schema}.nothing", "payload": "p"}))
