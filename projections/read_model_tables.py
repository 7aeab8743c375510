"""The tables of a consumer's read model and the values its rows are made of: records and their past
versions, the subject pairs erasures find rows by, log positions and chain heads, and the terms (and
generations) each dataset's rows were projected under. :class:`projections.read_model.ReadModelStore` keeps
them; :mod:`projections.read_model_sql` holds the statements it runs over them.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql, sqlite

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("record_key", String(256), primary_key=True),
    #: The record's pseudonym (hex): what an erasure names, so the subject can be purged.
    Column("subject_ref", String(64), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("agreement_id", String(128), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    #: How many events have been applied to this record: exactly-once means one per event published.
    Column("version", BigInteger, nullable=False),
)

#: Every past version of every record, for reads "as of" a past time: each one as granted, stamped with the
#: time its event occurred. The current version is the record's row in ``records``, kept once: a version
#: comes here when a later event for its record supersedes it. A record that leaves the read model (erasure,
#: a row filter it no longer passes, an agreement that ends) takes its versions along: the past is no more
#: visible than the present.
record_history = Table(
    "record_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("record_key", String(256), nullable=False),
    Column("subject_ref", String(64), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_record_history_key_time", "dataset", "record_key", "occurred_at"),
)

#: Which records each subject has had: what an erasure finds its rows and versions by. A pair is written when
#: a record is applied under a subject it did not have in the read model (a later version under the same
#: subject adds nothing). Pseudonyms are random, so a table ordered by them takes each new pair at a random
#: page, and a batch of n rows wrote n pages, more as the read model grew. Here a pair is filed under one of
#: :data:`SUBJECT_BUCKETS` buckets (from its pseudonym) and the time of its batch: each batch appends at the
#: end of at most that many buckets, whatever the size of the read model, and an erasure reads its
#: subject's bucket, one contiguous range of 1/:data:`SUBJECT_BUCKETS` of the pairs. Pairs are a superset:
#: one whose record left (a row filter, pruned versions) finds nothing.
subject_records = Table(
    "subject_records",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    #: When the pair's batch was written, in microseconds since the epoch: later pairs go after earlier ones.
    Column("written_us", BigInteger, primary_key=True),
    Column("subject_ref", String(64), primary_key=True),
    Column("record_key", String(256), primary_key=True),
    sqlite_with_rowid=False,
)

#: How many buckets a read model's pairs are filed in (:func:`subject_bucket`).
SUBJECT_BUCKETS = 64

#: What a read model made before ``subject_records`` found a subject's rows by: its pairs move into
#: ``subject_records`` and these go (:meth:`ReadModelStore.create`). The indexes on ``subject_ref`` took a
#: random write per row in ``records`` and in ``record_versions``; ``record_subjects`` was ordered by
#: pseudonym.
SUPERSEDED_TABLES = ("record_subjects",)
SUPERSEDED_INDEXES = ("ix_records_subject_ref", "ix_record_versions_subject")
PAIR_COLUMNS = ("dataset", "subject_ref", "record_key")


def subject_bucket(subject_ref: str) -> int:
    """The bucket a subject's pairs are filed in: spread evenly whatever the pseudonym's form."""
    return zlib.crc32(subject_ref.encode()) % SUBJECT_BUCKETS


positions = Table(
    "positions",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    #: The offset of the next message to apply.
    Column("next_offset", BigInteger, nullable=False),
)

chain_heads = Table(
    "chain_heads",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("producer", String(64), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

#: Per dataset, the terms (sharehub.gov.views.terms_digest) the dataset's rows were projected under. Rows
#: of terms that are no longer the active ones are projected again from the dataset's start: beside the
#: rows served, when the new terms only widen what is granted (blue/green, :mod:`projections.generations`);
#: in their place otherwise.
grants = Table(
    "grants",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("terms", String(64), nullable=False),
    Column("agreement_id", String(128), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    #: What the terms grant (JSON: the fields a consumer sees and the row filter): what tells new terms that
    #: only widen it from those that narrow it. NULL: not recorded (a read model made before).
    Column("granted", Text, nullable=True),
    #: The storage name the served rows are kept under (:func:`other_storage`); NULL: the dataset's own.
    Column("stored_as", String(64), nullable=True),
    #: The storage name of the generation being built under the terms, while one is.
    Column("building_as", String(64), nullable=True),
    #: The storage name of a generation swapped out, while its rows are being deleted.
    Column("retired_as", String(64), nullable=True),
)

#: The columns of ``grants`` a read model made before generations lacks (:meth:`ReadModelStore.create`).
GENERATION_COLUMNS = ("granted", "stored_as", "building_as", "retired_as")

#: What ends a storage name that is not the dataset's own, and a building generation's positions' topic.
#: Dataset ids and topic names never hold it.
OTHER = "~"


def other_storage(name: str) -> str:
    """The storage name a new generation of the rows kept under ``name`` is built under: the two alternate."""
    return name[: -len(OTHER)] if name.endswith(OTHER) else name + OTHER


class Generations(NamedTuple):
    """Where a dataset's rows are kept in a read model: the generation served, and while new terms are
    projected beside it, the one being built; and one swapped out whose rows are still being deleted."""

    served: str
    building: str | None = None
    retired: str | None = None


TopicPartition = tuple[str, int]
#: (topic, partition, producer) → (sequence, hash) of the last event that continued that chain.
ChainHeads = dict[tuple[str, int, str], tuple[int, bytes]]


class Row(NamedTuple):
    """One granted record, as the consumer may see it."""

    dataset: str
    record_key: str
    subject_ref: str
    fields: dict[str, Any]
    event_id: str
    occurred_at: dt.datetime
    agreement_id: str


def insert_for(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def schema_name(consumer: str) -> str:
    """PostgreSQL schema that holds a consumer's read model."""
    return "rm_" + re.sub(r"[^a-z0-9_]", "_", consumer.lower())
