"""One contract for every read-model backend, run against real SQLite and real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from projections.read_model import ReadModelStore
from projections.read_model_tables import Row, record_history, schema_name
from tests.contract.conftest import sqlite_url


def row(key: str, **fields: object) -> Row:
    return Row(
        "party-members",
        key,
        key.encode().hex(),
        dict(fields),
        str(uuid.uuid4()),
        dt.datetime.now(dt.UTC),
        "ag-1",
    )


def test_rows_and_positions_are_written_together(store: ReadModelStore) -> None:
    store.apply([row("a", status="OFFICIAL")], {("t", 0): 10, ("t", 1): 3})
    assert store.get("party-members", "a") == {"key": "a", "fields": {"status": "OFFICIAL"}}
    assert store.positions() == {("t", 0): 10, ("t", 1): 3}


def test_a_failed_transaction_leaves_neither_rows_nor_positions(store: ReadModelStore) -> None:
    store.apply([row("a")], {("t", 0): 1})
    # The rows are written first; the positions then break a NOT NULL constraint: all must roll back.
    with pytest.raises(IntegrityError):
        store.apply([row("b")], {("t", 0): None})  # type: ignore[dict-item]
    assert store.get("party-members", "b") is None
    assert store.positions() == {("t", 0): 1}


def test_upserts_keep_the_latest_fields_and_count_applications(store: ReadModelStore) -> None:
    store.apply([row("a", v=1), row("a", v=2)], {("t", 0): 2})
    store.apply([row("a", v=3)], {("t", 0): 3})
    assert store.get("party-members", "a")["fields"] == {"v": 3}
    assert store.versions("party-members") == {"a": 3}


def test_listing_pages_by_key(store: ReadModelStore) -> None:
    store.apply([row(k) for k in ["c", "a", "e", "b", "d"]], {})
    first = store.page("party-members", limit=2)
    rest = store.page("party-members", limit=10, after_key=first[-1]["key"])
    assert [r["key"] for r in first] == ["a", "b"]
    assert [r["key"] for r in rest] == ["c", "d", "e"]
    assert store.count("party-members") == 5
    assert store.datasets() == [("party-members", 5)]


def test_consumers_are_isolated(url_template: str) -> None:
    one = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    two = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    for s in (one, two):
        s.create()
    try:
        one.apply([row("secret-of-one")], {("t", 0): 1})
        assert two.count() == 0
        assert two.positions() == {}
    finally:
        for s in (one, two):
            s.drop()
            s.close()


def _create_at_the_barrier(url_template: str, consumer: str, barrier: Any) -> None:
    store = ReadModelStore(url_template, consumer)
    barrier.wait()
    store.create()
    store.close()


def test_workers_starting_together_all_create_the_same_read_model(url_template: str) -> None:
    # Two workers given partitions at once both create the consumer's read model: none may fail.
    spawn = multiprocessing.get_context("spawn")
    for _ in range(6):
        consumer = f"c-{uuid.uuid4().hex[:8]}"
        barrier = spawn.Barrier(4)
        workers = [
            spawn.Process(target=_create_at_the_barrier, args=(url_template, consumer, barrier))
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        store = ReadModelStore(url_template, consumer)
        try:
            assert [w.exitcode for w in workers] == [0, 0, 0, 0]
            store.apply([row("PM1", status="OFFICIAL")], {("t", 0): 1})
            assert store.count() == 1
        finally:
            store.drop()
            store.close()


def test_the_database_password_comes_from_a_file_and_never_shows(tmp_path: Path) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("s3cret-from-a-file\n")
    store = ReadModelStore("postgresql+psycopg://sharehub@db.invalid:5432/hub", "c", password_file=secret)
    assert store.engine.url.password == "s3cret-from-a-file"
    assert "s3cret" not in str(store.engine.url) and "s3cret" not in repr(store.engine)


def test_the_state_hash_depends_on_visible_content_only(url_template: str, store: ReadModelStore) -> None:
    store.apply([row("PM1", status="OFFICIAL"), row("PM2", status="PROBATIONARY")], {("t", 0): 2})
    other = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    other.create()
    try:
        # Same rows in another order, other event ids and times, other positions: the same hash.
        other.apply([row("PM2", status="PROBATIONARY")], {("t", 1): 7})
        other.apply([row("PM1", status="OFFICIAL")], {("t", 1): 8})
        assert other.state_hash() == store.state_hash()
        other.apply([row("PM1", status="EXPELLED")], {("t", 1): 9})
        assert other.state_hash() != store.state_hash()
    finally:
        other.drop()
        other.close()


def test_replace_with_swaps_rows_positions_and_heads_at_once(
    url_template: str, store: ReadModelStore
) -> None:
    store.apply([row("OLD", status="OFFICIAL")], {("t", 0): 5})
    fresh = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    fresh.create()
    try:
        fresh.apply([row(f"PM{i}", status="OFFICIAL") for i in range(3)], {("t", 0): 3, ("t", 1): 4})
        store.replace_with(fresh, chunk=2)
        assert store.get("party-members", "OLD") is None
        assert store.count() == 3 and store.positions() == {("t", 0): 3, ("t", 1): 4}
        assert store.state_hash() == fresh.state_hash()
    finally:
        fresh.drop()
        fresh.close()


FILTERS = [
    'status == "OFFICIAL"',
    'status != "OFFICIAL"',
    'province_code in ["79", "01", "82"]',
    'province_code not in ["79", "01"]',
    "official_date is null",
    "official_date is not null",
    'official_date >= "2000-01-01"',
    'not official_date >= "2000-01-01"',
    'official_date == null or official_date < "1990-06-01"',
    'official_date in [null, "2001-05-05"]',
    'official_date not in [null, "2001-05-05"]',
    'admission_date < "1995-01-01" and (status == "PROBATIONARY" or gender == "FEMALE")',
    'not (province_code == "79" or status in ["DECEASED", "EXPELLED"])',
]


@pytest.mark.parametrize("text", FILTERS)
def test_a_row_filter_in_sql_selects_exactly_what_it_matches_in_python(
    store: ReadModelStore, text: str
) -> None:
    from sharehub.avro import datum_to_json, load_schema, record_from_json
    from sharehub.row_filter import compile_filter
    from tooling.synthetic import generate_party_members

    schema = load_schema("party-members")
    datums = {str(r["member_id"]): record_from_json(schema, r) for r in generate_party_members(300, seed=9)}
    rows = [row(k, **datum_to_json(d)) for k, d in datums.items()]
    store.apply(rows, {("t", 0): len(rows)})
    rule = compile_filter(text, schema)
    expected = sorted(k for k, d in datums.items() if rule.matches(d))
    found = [r["key"] for r in store.page("party-members", limit=1000, where=rule)]
    assert found == expected
    assert 0 < len(expected) < len(datums) or text in ('official_date in [null, "2001-05-05"]',)


def test_sorting_on_a_field_in_either_direction(store: ReadModelStore) -> None:
    store.apply(
        [
            row("A", admission_date="2001-01-01"),
            row("B", admission_date="1999-05-05"),
            row("C", admission_date=None),
        ],
        {("t", 0): 3},
    )
    ascending = store.page("party-members", limit=10, sort=("admission_date", "x", False))
    assert [r["key"] for r in ascending] == ["B", "A", "C"]  # nulls last either way
    descending = store.page("party-members", limit=10, sort=("admission_date", "x", True))
    assert [r["key"] for r in descending] == ["A", "B", "C"]
    assert [
        r["key"] for r in store.page("party-members", limit=1, offset=1, sort=("admission_date", "x", False))
    ] == ["A"]


def at(day: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))


def versioned(key: str, day: int, **fields: object) -> Row:
    return row(key, **fields)._replace(occurred_at=at(day))


def test_reads_as_of_a_past_time_see_each_record_as_it_stood(store: ReadModelStore) -> None:
    store.apply(
        [versioned("A", 2, status="PROBATIONARY"), versioned("B", 4, status="OFFICIAL")], {("t", 0): 2}
    )
    store.apply([versioned("A", 6, status="OFFICIAL")], {("t", 0): 3})
    store.apply([versioned("A", 8, status="EXPELLED")], {("t", 0): 4})

    assert store.get("party-members", "A", as_of=at(1)) is None, "before its first event"
    assert store.get("party-members", "A", as_of=at(2))["fields"] == {"status": "PROBATIONARY"}  # type: ignore[index]
    assert store.get("party-members", "A", as_of=at(7))["fields"] == {"status": "OFFICIAL"}  # type: ignore[index]
    assert store.get("party-members", "A")["fields"] == {"status": "EXPELLED"}  # type: ignore[index]
    assert store.page("party-members", limit=10, as_of=at(3)) == [
        {"key": "A", "fields": {"status": "PROBATIONARY"}}
    ]
    as_of_5 = store.page("party-members", limit=10, as_of=at(5), sort=("status", "x", True))
    assert [(r["key"], r["fields"]["status"]) for r in as_of_5] == [("A", "PROBATIONARY"), ("B", "OFFICIAL")]
    assert [r["key"] for r in store.page("party-members", limit=10, as_of=at(9), after_key="A")] == ["B"]
    with pytest.raises(ValueError, match="time zone"):
        store.get("party-members", "A", as_of=dt.datetime(2026, 3, 7))


def test_a_read_as_of_the_very_microsecond_of_an_event_sees_it(store: ReadModelStore) -> None:
    moment = dt.datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    store.apply([row("A", status="OFFICIAL")._replace(occurred_at=moment)], {("t", 0): 1})
    assert store.get("party-members", "A", as_of=moment)["fields"] == {"status": "OFFICIAL"}  # type: ignore[index]
    assert store.page("party-members", limit=10, as_of=moment) == [
        {"key": "A", "fields": {"status": "OFFICIAL"}}
    ]
    just_before = moment - dt.timedelta(microseconds=1)
    assert store.get("party-members", "A", as_of=just_before) is None


def test_a_purged_subject_or_dataset_takes_its_past_versions_along(store: ReadModelStore) -> None:
    a, b = versioned("A", 2, status="OFFICIAL"), versioned("B", 2, status="OFFICIAL")
    store.apply([a, b, versioned("A", 3, status="EXPELLED")], {("t", 0): 3})
    assert store.version_count("party-members") == 3
    store.apply([], {("t", 0): 4}, purges=[("party-members", a.subject_ref)])  # erasure
    assert store.get("party-members", "A", as_of=at(2)) is None
    assert store.version_count("party-members") == 1
    store.purge_dataset("party-members")  # the agreement ended
    assert store.page("party-members", limit=10, as_of=at(2)) == []
    assert store.version_count("party-members") == 0


def test_an_erasure_takes_every_record_of_its_subject_and_no_other_subjects_versions(
    store: ReadModelStore,
) -> None:
    # Two records of one subject (a member's meetings), and a record whose key later names another subject.
    first, second = versioned("M1", 2, vote="YES"), versioned("M2", 3, vote="NO")
    first, second = first._replace(subject_ref="aa"), second._replace(subject_ref="aa")
    moved = versioned("K", 2, vote="YES")._replace(subject_ref="aa")
    store.apply([first, second, moved], {("t", 0): 3})
    store.apply([versioned("K", 4, vote="NO")._replace(subject_ref="bb")], {("t", 0): 4})
    store.apply([], {("t", 0): 5}, purges=[("party-members", "aa")])
    assert store.get("party-members", "M1") is None and store.get("party-members", "M2") is None
    # The current row of K is the other subject's, and stays; K's version under "aa" goes.
    assert store.get("party-members", "K") == {"key": "K", "fields": {"vote": "NO"}}
    assert store.get("party-members", "K", as_of=at(3)) is None
    assert store.version_count("party-members") == 1
    store.apply([], {("t", 0): 6}, purges=[("party-members", "bb")])
    assert store.count() == 0 and store.version_count("party-members") == 0


def test_a_row_filter_that_excludes_a_record_takes_that_record_and_its_versions_only(
    store: ReadModelStore,
) -> None:
    # Two records of one subject (a member's meetings): the filter no longer passes one of them.
    first, second = versioned("M1", 2, vote="YES"), versioned("M2", 3, vote="NO")
    first, second = first._replace(subject_ref="aa"), second._replace(subject_ref="aa")
    store.apply([first, second, versioned("M2", 4, vote="YES")._replace(subject_ref="aa")], {("t", 0): 3})
    store.apply([], {("t", 0): 4}, exclusions=[("party-members", "M2")])
    assert store.get("party-members", "M2") is None
    assert store.get("party-members", "M2", as_of=at(3)) is None
    assert store.get("party-members", "M1") == {"key": "M1", "fields": {"vote": "YES"}}
    assert store.version_count("party-members") == 1
    store.apply([], {("t", 0): 5}, purges=[("party-members", "aa")])  # the pair of M2 finds nothing now
    assert store.count() == 0 and store.version_count("party-members") == 0


def _pairs(store: ReadModelStore) -> list[tuple[str, str]]:
    prefix = "" if store.embedded else f'"{schema_name(store.consumer)}".'
    with store.engine.connect() as conn:
        found = conn.exec_driver_sql(f"SELECT subject_ref, record_key FROM {prefix}subject_records")
        return sorted((s, k) for s, k in found)


def test_a_pair_is_written_when_a_record_meets_a_subject_and_not_for_each_later_version(
    store: ReadModelStore,
) -> None:
    store.apply([versioned("K", 2, vote="YES")._replace(subject_ref="aa")], {("t", 0): 1})
    store.apply([versioned("K", 3, vote="NO")._replace(subject_ref="aa")], {("t", 0): 2})
    assert _pairs(store) == [("aa", "K")]
    # In one batch: a version under another subject, and one under the first again.
    store.apply(
        [
            versioned("K", 4, vote="NO")._replace(subject_ref="bb"),
            versioned("K", 5)._replace(subject_ref="aa"),
        ],
        {("t", 0): 4},
    )
    assert _pairs(store) == [("aa", "K"), ("aa", "K"), ("bb", "K")]
    store.apply([], {("t", 0): 5}, purges=[("party-members", "aa")])
    assert _pairs(store) == [("bb", "K")] and store.count() == 0
    store.apply([], {("t", 0): 6}, purges=[("party-members", "bb")])
    assert store.version_count("party-members") == 0


def made_before_record_history(store: ReadModelStore) -> None:
    """Turn ``store`` into a read model as made before ``record_history``: ``record_versions`` held every
    version, the current one too, in the order applied."""
    prefix = "" if store.embedded else f'"{schema_name(store.consumer)}".'
    key = "INTEGER PRIMARY KEY AUTOINCREMENT" if store.embedded else "BIGSERIAL PRIMARY KEY"
    moment = "DATETIME" if store.embedded else "TIMESTAMP WITH TIME ZONE"
    columns = "dataset, record_key, subject_ref, fields, occurred_at"
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {prefix}record_versions (id {key}, dataset VARCHAR(64) NOT NULL, "
            "record_key VARCHAR(256) NOT NULL, subject_ref VARCHAR(64) NOT NULL, fields JSON NOT NULL, "
            f"occurred_at {moment} NOT NULL)"
        )
        for table in ("record_history", "records"):
            conn.exec_driver_sql(
                f"INSERT INTO {prefix}record_versions ({columns}) SELECT {columns} FROM {prefix}{table}"
                + (" ORDER BY id" if table == "record_history" else "")
            )
        conn.exec_driver_sql(f"DROP TABLE {prefix}record_history")


def test_a_read_model_made_before_record_history_keeps_each_past_version_once(url_template: str) -> None:
    made = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    made.create()
    try:
        made.apply(
            [versioned("A", 2, status="PROBATIONARY"), versioned("B", 2, status="OFFICIAL")], {("t", 0): 2}
        )
        made.apply([versioned("A", 3, status="OFFICIAL")], {("t", 0): 3})
        made_before_record_history(made)
        made.close()
        reopened = ReadModelStore(url_template, made.consumer)
        reopened.create()
        schema = None if reopened.embedded else schema_name(reopened.consumer)
        with reopened.engine.connect() as conn:
            assert not inspect(conn).has_table("record_versions", schema=schema)
            past = conn.execute(select(record_history.c.record_key, record_history.c.fields)).all()
        assert past == [("A", {"status": "PROBATIONARY"})], "the past version alone; current ones once"
        assert reopened.get("party-members", "A", as_of=at(2)) == {
            "key": "A",
            "fields": {"status": "PROBATIONARY"},
        }
        assert reopened.get("party-members", "A", as_of=at(4)) == {
            "key": "A",
            "fields": {"status": "OFFICIAL"},
        }
        assert reopened.version_count("party-members") == 3
        reopened.create()  # a second start finds it made, and changes nothing
        assert reopened.version_count("party-members") == 3
        reopened.apply([versioned("B", 5, status="EXPELLED")], {("t", 0): 4})
        assert reopened.get("party-members", "B", as_of=at(4)) == {
            "key": "B",
            "fields": {"status": "OFFICIAL"},
        }
        reopened.close()
    finally:
        made.drop()
        made.close()


def test_the_current_version_is_kept_once_and_moves_to_the_history_when_superseded(
    store: ReadModelStore,
) -> None:
    store.apply([versioned("A", 2, v=1), versioned("A", 3, v=2), versioned("B", 2, v=1)], {("t", 0): 3})
    with store.engine.connect() as conn:
        assert conn.execute(select(record_history.c.record_key, record_history.c.fields)).all() == [
            ("A", {"v": 1})
        ]
    store.apply([versioned("A", 4, v=3), versioned("B", 4, v=2)], {("t", 0): 5})
    with store.engine.connect() as conn:
        past = conn.execute(
            select(record_history.c.record_key, record_history.c.fields).order_by(record_history.c.id)
        )
        assert past.all() == [("A", {"v": 1}), ("A", {"v": 2}), ("B", {"v": 1})]
    assert store.version_count("party-members") == 5
    assert [store.get("party-members", "A", as_of=at(d))["fields"]["v"] for d in (2, 3, 4)] == [1, 2, 3]  # type: ignore[index]


#: How a read model made before ``subject_records`` found a subject's rows.
_EARLIER_LAYOUTS = {
    # pairs in a table ordered by pseudonym
    "record_subjects": [
        "CREATE TABLE {p}record_subjects (dataset VARCHAR(64), subject_ref VARCHAR(64), "
        "record_key VARCHAR(256), PRIMARY KEY (dataset, subject_ref, record_key))",
        "INSERT INTO {p}record_subjects SELECT dataset, subject_ref, record_key FROM {p}records",
    ],
    # subject_ref indexed in records and in record_versions
    "indexes": [
        "CREATE INDEX ix_records_subject_ref ON {p}records (subject_ref)",
        "CREATE INDEX ix_record_versions_subject ON {p}record_versions (dataset, subject_ref)",
    ],
}


@pytest.mark.parametrize("layout", sorted(_EARLIER_LAYOUTS))
def test_a_read_model_made_before_subject_records_gets_its_pairs_and_purges_as_before(
    url_template: str, layout: str
) -> None:
    made = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    made.create()
    try:
        made.apply(
            [versioned("A", 2, status="OFFICIAL"), versioned("B", 2, status="OFFICIAL")], {("t", 0): 2}
        )
        made.apply([versioned("A", 3, status="EXPELLED")], {("t", 0): 3})
        made_before_record_history(made)  # as every read model made before subject_records was
        prefix = "" if made.embedded else f'"{schema_name(made.consumer)}".'
        with made.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {prefix}subject_records")
            for statement in _EARLIER_LAYOUTS[layout]:
                conn.exec_driver_sql(statement.format(p=prefix))
        made.close()
        reopened = ReadModelStore(url_template, made.consumer)
        reopened.create()
        schema = None if reopened.embedded else schema_name(reopened.consumer)
        with reopened.engine.connect() as conn:
            found = inspect(conn)
            names = {
                i["name"] for t in ("records", "record_history") for i in found.get_indexes(t, schema=schema)
            }
            assert not found.has_table("record_subjects", schema=schema)
        assert not names & {"ix_records_subject_ref", "ix_record_versions_subject"}
        reopened.apply([], {("t", 0): 4}, purges=[("party-members", b"A".hex())])
        assert reopened.get("party-members", "A") is None
        assert reopened.get("party-members", "A", as_of=at(2)) is None
        assert reopened.version_count("party-members") == 1
        assert reopened.get("party-members", "B") == {"key": "B", "fields": {"status": "OFFICIAL"}}
        reopened.create()  # a second start finds it made, and changes nothing
        assert reopened.count() == 1
        reopened.close()
    finally:
        made.drop()
        made.close()


def test_erasures_exclusions_and_new_pairs_find_their_rows_by_index_not_by_reading_the_whole_read_model(
    tmp_path: Path,
) -> None:
    store = ReadModelStore(sqlite_url(tmp_path), "c")
    store.create()
    given = {
        "dataset": "party-members",
        "bucket": 7,
        "written_us": 1,
        "subject_ref": "aa",
        "record_key": "K",
        "excluded_dataset": "party-members",
        "excluded_key": "K",
        "keys": '["K", "L"]',
    }
    upserts = store._upserts
    with store.engine.connect() as conn:
        for stmt in [upserts.pairs_of, *upserts.purges, *upserts.exclusions, upserts.held_subjects]:
            compiled = stmt.compile(dialect=store.engine.dialect)
            values = tuple(given[name] for name in compiled.positiontup or [])
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values).all()
            scans = [detail for *_, detail in plan if detail.startswith("SCAN") and "json_each" not in detail]
            assert scans == [], plan
    store.close()


def test_pruned_history_still_answers_every_read_as_of_the_horizon_or_later(store: ReadModelStore) -> None:
    store.apply(
        [
            versioned("A", 2, status="PROBATIONARY"),
            versioned("A", 4, status="OFFICIAL"),
            versioned("B", 3, status="OFFICIAL"),
            versioned("C", 7, status="PROBATIONARY"),
        ],
        {("t", 0): 4},
    )
    store.apply([versioned("A", 6, status="EXPELLED"), versioned("B", 9, status="EXPELLED")], {("t", 0): 6})

    def answers() -> list[list[dict[str, object]]]:
        return [store.page("party-members", limit=10, as_of=at(day)) for day in range(5, 11)]

    before = answers()
    day_5, day_10 = {"party-members": at(5)}, {"party-members": at(10)}
    assert store.prune_history(day_5) == 1, "A's version of day 2 is the only one no read from day 5 needs"
    assert answers() == before
    assert store.version_count("party-members") == 5
    assert store.get("party-members", "A", as_of=at(5))["fields"] == {"status": "OFFICIAL"}  # type: ignore[index]
    assert store.prune_history(day_5) == 0, "pruning again at the same horizon changes nothing"
    assert store.prune_history(day_10) == 2, "from day 10 on, only each record's latest version is read"
    assert answers()[-1] == before[-1]
    assert store.version_count("party-members") == 3
    assert store.count("party-members") == 3, "the current rows are never touched"


def test_each_dataset_is_pruned_by_its_own_horizon_and_current_rows_stay(store: ReadModelStore) -> None:
    """Two datasets of different retention, and one without: each keeps, per record, its latest version at
    or before its own horizon and every later one; a current row older than every horizon stays."""

    def of(dataset: str, key: str, day: int, status: str) -> Row:
        return versioned(key, day, status=status)._replace(dataset=dataset)

    history = [
        (dataset, key, day, f"{key}-{day}")
        for dataset in ("party-members", "documents", "resolution-tasks")
        for key, days in (("A", (2, 4, 6, 8)), ("B", (1, 3)))
        for day in days
    ]
    store.apply([of(*version) for version in history], {("t", 0): len(history)})
    horizons = {"party-members": at(5), "documents": at(7)}  # resolution-tasks: no bound, keeps every version

    before = {d: [store.page(d, limit=10, as_of=at(day)) for day in range(1, 10)] for d in horizons}
    assert store.prune_history(horizons) == 5, "party-members: A-2, B-1; documents: A-2, A-4, B-1"

    assert store.version_count("party-members") == 4, "A-4 (latest at day 5), A-6, A-8; B-3 (latest, current)"
    assert store.version_count("documents") == 3, "A-6 (latest at day 7), A-8; B-3"
    assert store.version_count("resolution-tasks") == 6
    for dataset, horizon in horizons.items():
        from_horizon = [store.page(dataset, limit=10, as_of=at(day)) for day in range(horizon.day, 10)]
        assert from_horizon == before[dataset][horizon.day - 1 :], f"{dataset}: reads from its horizon on"
    assert store.get("party-members", "A", as_of=at(5))["fields"] == {"status": "A-4"}  # type: ignore[index]
    assert store.get("documents", "A", as_of=at(7))["fields"] == {"status": "A-6"}  # type: ignore[index]
    assert store.get("documents", "A", as_of=at(5)) is None, "before its horizon, nothing is kept for it"
    assert store.get("resolution-tasks", "A", as_of=at(2))["fields"] == {"status": "A-2"}  # type: ignore[index]
    # B's one current row dates from day 3, before both horizons: retention bounds history, not the present.
    for dataset in ("party-members", "documents", "resolution-tasks"):
        assert store.count(dataset) == 2
        assert store.get(dataset, "B") == {"key": "B", "fields": {"status": "B-3"}}
        assert store.get(dataset, "A") == {"key": "A", "fields": {"status": "A-8"}}
    assert store.prune_history(horizons) == 0, "pruning again at the same horizons changes nothing"
    assert store.prune_history({}) == 0, "no dataset named: nothing goes"
