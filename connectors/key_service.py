"""The hub's key service as an agency site sees it: :class:`sharehub.codec.DatasetKeys` over HTTP.

What it receives stays in this process's memory, never on the site's disk: the current data key and the
routing key of each dataset it seals (one request per dataset), and subjects' keys, asked for in batches
before the events that need them are sealed (the hub creates them durably before it answers). A subject
the hub answers with ``null`` was erased: :meth:`subject_key` then raises ``SubjectErased``, and the
publisher refuses the record. A publisher asks for the next chunk's subjects ahead of need
(:meth:`KeyServiceClient.ensure_subject_keys_ahead`, on one thread of the client): the hub answers while the
publisher seals the chunk before it, and the keys are still made, durably, before any event that needs them.

A hub that does not answer (no connection, a timeout, a 5xx or 429) is asked again, after a pause that
doubles from ``FIRST_PAUSE_S`` to ``LONGEST_PAUSE_S``, for up to ``patience_s`` (``PATIENCE_S`` by
default): a key service restarted or briefly unreachable only delays the publisher. Past its patience the
client raises ``KeyServiceUnavailable``. Either way nothing is sealed with a key the hub did not give: a
key is only ever one the service answered with (asking again for subjects' keys is safe: the service
creates only those that do not exist yet, and answers the same keys again).
"""

from __future__ import annotations

import base64
import ssl
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from sharehub.errors import (
    Forbidden,
    InputError,
    KeyServiceUnavailable,
    NotAuthenticated,
    SubjectErased,
    UnknownDataKey,
    UnknownReferenceError,
)
from sharehub.keys import SecretBytes, subject_key_id

#: Subjects asked for per request (the service's own limit is larger).
BATCH = 512
TIMEOUT_S = 30.0
#: How long a call waits for a key service that does not answer before it gives up.
PATIENCE_S = 300.0
FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 5.0


class KeyServiceClient:
    def __init__(
        self,
        url: str,
        credential: str,
        *,
        verify: ssl.SSLContext | bool = True,
        patience_s: float = PATIENCE_S,
    ) -> None:
        self.patience_s = patience_s
        #: Set on close: a call waiting to ask again (on the asking-ahead thread, perhaps) gives up at once.
        self._closing = threading.Event()
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=TIMEOUT_S,
            verify=verify,
        )
        self._current: dict[str, str] = {}
        self._data: dict[str, SecretBytes] = {}
        self._routing: dict[str, SecretBytes] = {}
        #: key id -> key, or None: erased
        self._subjects: dict[str, SecretBytes | None] = {}
        #: Subjects' keys asked for ahead of need (:meth:`ensure_subject_keys_ahead`), and who asks.
        self._ahead: Future[None] | None = None
        self._asker: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"KeyServiceClient(url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._closing.set()
        if self._asker is not None:
            self._asker.shutdown(wait=True)
            self._asker = None
        self._http.close()

    # --- DatasetKeys -------------------------------------------------------------------------------

    def current_data_key_id(self, dataset: str) -> str:
        if dataset not in self._current:
            self._dataset_keys(dataset)
        return self._current[dataset]

    def data_key(self, key_id: str) -> SecretBytes:
        if key_id not in self._data:
            dataset = key_id.split("/data/", 1)[0]
            found = self._call("GET", f"/v1/keys/{dataset}/data/{key_id}", UnknownDataKey)
            self._data[key_id] = _key(found["data_key"])
        return self._data[key_id]

    def routing_key(self, dataset: str) -> SecretBytes:
        if dataset not in self._routing:
            self._dataset_keys(dataset)
        return self._routing[dataset]

    def ensure_subject_keys(self, dataset: str, subject_refs: Iterable[bytes]) -> None:
        wanted = self._missing(dataset, subject_refs)
        if wanted and self._ahead is not None:  # asked for already, perhaps: its answer (or error) first
            ahead, self._ahead = self._ahead, None
            ahead.result()
            wanted = self._missing(dataset, wanted)
        self._ask(dataset, wanted, create=True)

    def ensure_subject_keys_ahead(self, dataset: str, subject_refs: Iterable[bytes]) -> None:
        """Start asking for these subjects' keys (made if new) on a thread of this client, and return: the
        hub answers while the caller seals what it has. :meth:`ensure_subject_keys` for any of them waits
        for that answer, and raises what asking raised."""
        wanted = self._missing(dataset, subject_refs)
        if not wanted:
            return
        if self._ahead is not None:
            wait([self._ahead])  # one request ahead at a time; an error is raised when its keys are needed
        if self._asker is None:
            self._asker = ThreadPoolExecutor(1, thread_name_prefix="key-service")
        self._ahead = self._asker.submit(self._ask, dataset, wanted, create=True)

    def _missing(self, dataset: str, subject_refs: Iterable[bytes]) -> list[bytes]:
        return [r for r in dict.fromkeys(subject_refs) if subject_key_id(dataset, r) not in self._subjects]

    def subject_key(self, key_id: str) -> SecretBytes:
        if key_id not in self._subjects:
            dataset, _, ref = key_id.partition("/subject/")
            self._ask(dataset, [bytes.fromhex(ref)], create=False)
        found = self._subjects.get(key_id)
        if found is None:
            raise SubjectErased(f"the subject of {key_id!r} was erased (or has no key)")
        return found

    def prefetch_subject_keys(self, key_ids: Iterable[str]) -> None:
        by_dataset: dict[str, list[bytes]] = {}
        for key_id in key_ids:
            if key_id not in self._subjects:
                dataset, _, ref = key_id.partition("/subject/")
                by_dataset.setdefault(dataset, []).append(bytes.fromhex(ref))
        for dataset, refs in by_dataset.items():
            self._ask(dataset, refs, create=False)

    def forget_cached(self, key_id: str) -> None:
        self._subjects.pop(key_id, None)

    # --- the site's own broker login ------------------------------------------------------------

    def set_broker_password(self, password: SecretBytes) -> None:
        """Have the hub set the agency's SCRAM password on the broker (``POST /v1/site/broker-password``):
        sent once, over HTTPS; the hub passes it to the broker and keeps nothing."""
        body = {"password": password.reveal().decode()}
        self._call("POST", "/v1/site/broker-password", UnknownReferenceError, json=body)

    # --- the wire ----------------------------------------------------------------------------------

    def _dataset_keys(self, dataset: str) -> None:
        found = self._call("GET", f"/v1/keys/{dataset}", UnknownReferenceError)
        key_id = found["data_key_id"]
        self._current[dataset] = key_id
        self._data[key_id] = _key(found["data_key"])
        self._routing[dataset] = _key(found["routing_key"])

    def _ask(self, dataset: str, refs: list[bytes], *, create: bool) -> None:
        for start in range(0, len(refs), BATCH):
            body = {"refs": [r.hex() for r in refs[start : start + BATCH]], "create": create}
            found = self._call("POST", f"/v1/keys/{dataset}/subjects", UnknownReferenceError, json=body)
            for key_id, value in found["keys"].items():
                self._subjects[key_id] = None if value is None else _key(value)

    def _call(self, method: str, path: str, missing: type[Exception], **kwargs: Any) -> dict[str, Any]:
        """The service's answer to one request, asked again while it does not answer (see the module)."""
        deadline = time.monotonic() + self.patience_s
        pause = FIRST_PAUSE_S
        while True:
            try:
                return self._call_once(method, path, missing, **kwargs)
            except KeyServiceUnavailable as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = f" (asked again for {self.patience_s:g} s)" if self.patience_s > 0 else ""
                    raise KeyServiceUnavailable(f"{exc}{waited}") from None
                if self._closing.wait(min(pause, left)):
                    raise KeyServiceUnavailable(f"{exc} (the client was closed meanwhile)") from None
                pause = min(pause * 2, LONGEST_PAUSE_S)

    def _call_once(self, method: str, path: str, missing: type[Exception], **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KeyServiceUnavailable(
                f"the key service at {self._http.base_url} did not answer: {exc}"
            ) from None
        if answer.status_code == 204:
            return {}
        if answer.status_code == 200:
            body: dict[str, Any] = answer.json()
            return body
        detail = _detail(answer)
        if answer.status_code == 401:
            raise NotAuthenticated(f"the key service refused the site's credential: {detail}")
        if answer.status_code == 403:
            raise Forbidden(detail)
        if answer.status_code == 404:
            raise missing(detail)
        if answer.status_code < 500 and answer.status_code != 429:
            raise InputError(f"the key service refused the request ({answer.status_code}): {detail}")
        raise KeyServiceUnavailable(f"the key service answered {answer.status_code}: {detail}")


def _key(text: str) -> SecretBytes:
    return SecretBytes(base64.b64decode(text, validate=True))


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", answer.text))
    except ValueError:
        return answer.text[:200]
