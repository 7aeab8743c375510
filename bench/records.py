"""The party-members records every scenario uses, and the owner's keys to seal them with.

Sealing follows the publisher's path: each record encoded and encrypted on its own (``seal_unsigned``,
the personal fields under the member's own subject key), then signed in batches of
:data:`SIGN_BATCH` with one signature over the batch's Merkle root (``sign_batch``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bench.environment import DATASET, OWNER
from connectors.synthetic import generate_party_members
from services.hub import Hub
from sharehub.avro import RecordSchema, record_from_json
from sharehub.envelope import ZERO_HASH, ChainPosition, Envelope, Sealed, pseudonym, seal_unsigned, sign_batch
from sharehub.keys import SecretBytes, SigningKey, subject_key_id

#: Fixed, so every run seals the same events; the signing keys, added when a bench hub is set up, are
#: valid from then on, so this lies after any run and before the agreements end (2030-12-31).
OCCURRED_AT = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
#: Events per signature, as the publisher batches them.
SIGN_BATCH = 256


def members(count: int, seed: int, start_index: int = 0) -> list[dict[str, Any]]:
    """``count`` synthetic party members as JSON records (what ``sharehub publish`` reads)."""
    return list(generate_party_members(count, seed, start_index))


class CachedKeys:
    """The hub's keys, each fetched from the key store once: the envelope's cost without the store's."""

    def __init__(self, hub: Hub) -> None:
        self._keys = hub.keys
        self._cache: dict[tuple[str, str], SecretBytes] = {}

    def data_key(self, key_id: str) -> SecretBytes:
        if ("data", key_id) not in self._cache:
            self._cache["data", key_id] = self._keys.data_key(key_id)
        return self._cache["data", key_id]

    def subject_key(self, key_id: str) -> SecretBytes:
        if ("subject", key_id) not in self._cache:
            self._cache["subject", key_id] = self._keys.subject_key(key_id)
        return self._cache["subject", key_id]


@dataclass(frozen=True)
class Sealer:
    """Everything sealing needs to act as the dataset's owner, read from the hub once."""

    schema: RecordSchema
    key_field: str
    signing_key: SigningKey
    data_key_id: str
    data_key: SecretBytes
    routing_key: SecretBytes
    keys: CachedKeys

    @classmethod
    def of(cls, hub: Hub) -> Sealer:
        data_key_id = hub.keys.current_data_key_id(DATASET)
        return cls(
            hub.governance.current_schema(DATASET),
            hub.governance.dataset(DATASET).key_field,
            hub.keys.signing_key(OWNER),
            data_key_id,
            hub.keys.data_key(data_key_id),
            hub.keys.routing_key(DATASET),
            CachedKeys(hub),
        )

    def datums(self, hub: Hub, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records as Avro data, their subjects' keys created (as the publisher does first) and cached."""
        datums = [record_from_json(self.schema, r) for r in records]
        refs = [self.ref(d) for d in datums]
        hub.keys.ensure_subject_keys(DATASET, refs)
        for ref in refs:
            self.keys.subject_key(subject_key_id(DATASET, ref))
        return datums

    def ref(self, datum: dict[str, Any]) -> bytes:
        return pseudonym(self.routing_key, str(datum[self.key_field]))

    def seal_one(self, datum: dict[str, Any], sequence: int, prev_hash: bytes) -> Sealed:
        key_id = subject_key_id(DATASET, self.ref(datum))
        return seal_unsigned(
            schema=self.schema,
            record=datum,
            producer=OWNER,
            dataset=DATASET,
            event_type="UPSERTED",
            position=ChainPosition(0, sequence, prev_hash),
            signing_key_id=self.signing_key.key_id,
            data_key_id=self.data_key_id,
            data_key=self.data_key,
            subject_key_id=key_id,
            subject_key=self.keys.subject_key(key_id),
            occurred_at=OCCURRED_AT,
        )

    def seal_chain(self, datums: list[dict[str, Any]], batch: int = SIGN_BATCH) -> list[Envelope]:
        """Seal ``datums`` as one chain on lane 0, signed ``batch`` events at a time."""
        out: list[Envelope] = []
        waiting: list[Sealed] = []
        prev = ZERO_HASH
        for sequence, datum in enumerate(datums, start=1):
            event = self.seal_one(datum, sequence, prev)
            prev = event.hash
            waiting.append(event)
            if len(waiting) == batch:
                out += sign_batch(waiting, self.signing_key)
                waiting = []
        return out + sign_batch(waiting, self.signing_key)
