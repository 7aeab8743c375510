"""The party-members records every scenario uses, and the owner's keys to seal them with.

Sealing follows the publisher's path, through the dataset's codec: each record encoded and encrypted on its
own (the personal fields under the member's own subject key), then signed in batches of
:data:`~sharehub.codec.SIGN_BATCH` with one signature over the batch's Merkle root.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.environment import DATASET, OWNER
from services.hub import Hub
from sharehub.avro import RecordSchema, record_from_json
from sharehub.codec import SIGN_BATCH, DatasetCodec, Producing
from sharehub.envelope import Envelope
from sharehub.keys import SecretBytes, subject_key_id
from tooling.synthetic import generate_party_members

#: Fixed, so every run seals the same events; the signing keys, added when a bench hub is set up, are
#: valid from then on, so this lies after any run and before the agreements end (2030-12-31).
OCCURRED_AT = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)


def members(count: int, seed: int, start_index: int = 0) -> list[dict[str, Any]]:
    """``count`` synthetic party members as JSON records (what ``sharehub publish`` reads)."""
    return list(generate_party_members(count, seed, start_index))


class CachedKeys:
    """The hub's keys, each fetched from the key store once, and subjects' keys made once: the envelope's
    cost without the store's. Implements :class:`sharehub.codec.DatasetKeys`."""

    def __init__(self, hub: Hub) -> None:
        self._keys = hub.keys
        self._cache: dict[tuple[str, str], SecretBytes] = {}
        self._made: set[bytes] = set()

    def current_data_key_id(self, dataset: str) -> str:
        return self._keys.current_data_key_id(dataset)

    def data_key(self, key_id: str) -> SecretBytes:
        if ("data", key_id) not in self._cache:
            self._cache["data", key_id] = self._keys.data_key(key_id)
        return self._cache["data", key_id]

    def routing_key(self, dataset: str) -> SecretBytes:
        if ("routing", dataset) not in self._cache:
            self._cache["routing", dataset] = self._keys.routing_key(dataset)
        return self._cache["routing", dataset]

    def ensure_subject_keys(self, dataset: str, subject_refs: Iterable[bytes]) -> None:
        new = [ref for ref in subject_refs if ref not in self._made]
        if new:
            self._keys.ensure_subject_keys(dataset, new)
            self._made.update(new)

    def subject_key(self, key_id: str) -> SecretBytes:
        if ("subject", key_id) not in self._cache:
            self._cache["subject", key_id] = self._keys.subject_key(key_id)
        return self._cache["subject", key_id]

    def prefetch_subject_keys(self, key_ids: Iterable[str]) -> None:
        pass  # every key is cached on first use

    def forget_cached(self, key_id: str) -> None:
        self._cache.pop(("subject", key_id), None)


@dataclass(frozen=True)
class Sealer:
    """The dataset's codec acting as its owner, with the hub's keys read once: every event on lane 0."""

    schema: RecordSchema
    codec: DatasetCodec
    keys: CachedKeys

    @classmethod
    def of(cls, hub: Hub, *, batch: int = SIGN_BATCH) -> Sealer:
        keys = CachedKeys(hub)
        governance = hub.governance
        producing = Producing(OWNER, hub.keys.signing_key(OWNER), lanes=1, batch=batch)
        key_field = governance.dataset(DATASET).key_field
        codec = DatasetCodec(DATASET, key_field, governance, keys, producing=producing)
        return cls(governance.current_schema(DATASET), codec, keys)

    def datums(self, hub: Hub, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records as Avro data, their subjects' keys created (as the publisher does first) and cached."""
        datums = [record_from_json(self.schema, r) for r in records]
        refs = [self.codec.pseudonym(str(d[self.codec.key_field])) for d in datums]
        self.keys.ensure_subject_keys(DATASET, refs)
        for ref in refs:
            self.keys.subject_key(subject_key_id(DATASET, ref))
        return datums

    def seal_chain(self, datums: list[dict[str, Any]]) -> list[Envelope]:
        """Seal ``datums`` as one new chain on lane 0, signed in batches."""
        assert self.codec.producing is not None
        self.codec.producing.heads.clear()
        sealed = self.codec.seal_many(datums, occurred_at=OCCURRED_AT)
        return [s.envelope for s in sealed if not isinstance(s, Exception)]
