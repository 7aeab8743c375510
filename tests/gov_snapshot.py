"""Everything a governance change may touch, captured so that a refused one can be shown to touch nothing:
the governance log's bytes, the key store's contents byte for byte (every row, each blob in full), and the
broker's topics (with the retention of each), ACLs and SCRAM principals.

The key store's files are not compared as files: SQLite moves pages from the write-ahead log into the
database file whenever a process closes the last connection it holds, which changes the files' bytes and
nothing they hold."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from services.broker_in_force import grants_of, login_known
from services.hub import Hub
from sharehub.kafka import client_config


@dataclass(frozen=True)
class Snapshot:
    log: tuple[bytes, ...]
    key_rows: tuple[str, ...]
    #: Each topic of the hub's namespace, with how long it keeps a record.
    topics: tuple[tuple[str, str], ...]
    acls: tuple[str, ...]
    principals: tuple[str, ...]


_ADMINS: dict[str, AdminClient] = {}
#: Agencies a refused request could try to bring into being (register-agency): their grants are looked for
#: too. (A registration that got through would show in the log and the principals anyway.)
_SPARE_NAMES = ["x", "ghost"]


def snapshot(hub: Hub) -> Snapshot:
    prefix = hub.anchors.topic_prefix
    # One admin client per broker for the whole run: each one keeps threads and connections of its own.
    admin = _ADMINS.get(hub.settings.bootstrap)
    if admin is None:
        admin = _ADMINS[hub.settings.bootstrap] = AdminClient(client_config(hub.kafka_admin))
    # Each principal of this hub (and any other named in its namespace) asked for at once: the broker holds
    # the grants of every test hub, and this one's are what a change here could touch.
    principals = [f"User:{prefix}.{name}" for name in ["hub", *hub.governance.agencies_, *_SPARE_NAMES]]
    acls = grants_of(admin, principals)
    users = admin.describe_user_scram_credentials([p.removeprefix("User:") for p in principals])
    store = hub.home / "keys.db"
    reader = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = tuple(reader.iterdump())
    finally:
        reader.close()
    return Snapshot(
        log=tuple(hub.log.read_all()),
        key_rows=rows,
        topics=_topics(admin, prefix),
        acls=tuple(sorted(str(a) for a in acls)),
        principals=tuple(sorted(u for u, found in users.items() if login_known(found))),
    )


def _topics(admin: AdminClient, prefix: str) -> tuple[tuple[str, str], ...]:
    names = sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix))
    if not names:
        return ()
    asked = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in names])
    retention = {r.name: f.result(timeout=10)["retention.ms"].value for r, f in asked.items()}
    return tuple((name, retention[name]) for name in names)
