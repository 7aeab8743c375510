"""Everything a governance change may touch, captured so that a refused one can be shown to touch nothing:
the governance log's bytes, the key store's contents byte for byte (every row, each blob in full), and the
broker's topics, ACLs and SCRAM principals.

The key store's files are not compared as files: SQLite moves pages from the write-ahead log into the
database file whenever a process closes the last connection it holds, which changes the files' bytes and
nothing they hold."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from services.hub import Hub
from sharehub.kafka import client_config


@dataclass(frozen=True)
class Snapshot:
    log: tuple[bytes, ...]
    key_rows: tuple[str, ...]
    topics: tuple[str, ...]
    acls: tuple[str, ...]
    principals: tuple[str, ...]


def snapshot(hub: Hub) -> Snapshot:
    prefix = hub.anchors.topic_prefix
    admin = AdminClient(client_config(hub.kafka_admin))
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    acls = admin.describe_acls(everything).result()
    users = admin.describe_user_scram_credentials().result()
    store = hub.home / "keys.db"
    reader = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = tuple(reader.iterdump())
    finally:
        reader.close()
    return Snapshot(
        log=tuple(hub.log.read_all()),
        key_rows=rows,
        topics=tuple(sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix))),
        acls=tuple(sorted(str(a) for a in acls if prefix in str(a))),
        principals=tuple(sorted(u for u in users if u.startswith(prefix))),
    )
