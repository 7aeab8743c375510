"""One installation of the hub: settings, governance, keys, read-model stores, broker logins.

A process's composition root (a CLI command, the API's app factory, the projection worker) builds one hub,
hands each service the parts it uses (never the hub itself, see :mod:`services.parts` and
:class:`~services.governance_desk.GovernanceDesk`) and closes it.

Governance is the governance log folded into a :class:`~sharehub.gov.GovState`: read in full on first use,
then brought up to date with the events appended since, at most every ``governance_refresh_s`` seconds
(``refresh=True`` forces it). A long-running reader (the query API) calls :meth:`Hub.follow_governance`
instead: a background thread keeps the state current, so no request ever waits for the broker. Changes go
through :meth:`Hub.governing`, which holds a lock file so that two commands on one machine never extend the
chain at once, and signs with the operator key of the key store.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.publisher import Publisher
from projections.read_model import ReadModelStore
from services.governance_desk import GovernanceDesk
from sharehub.codec import DatasetCodec
from sharehub.errors import ConfigurationError, InputError, UnknownReferenceError
from sharehub.gov import GovernanceService, GovState, anchors
from sharehub.gov.acts import CustodySigner
from sharehub.gov.custody import in_custody
from sharehub.gov.log import EventLog, KafkaLog, Logged
from sharehub.kafka import KafkaAccess, KafkaTls
from sharehub.kek import load_kek
from sharehub.keys import LocalKeyStore, SecretBytes, Signer
from sharehub.settings import Settings

if TYPE_CHECKING:
    from services.broker_access import BrokerProvisioning

from services.principals import (
    GOVERNANCE_PRINCIPAL,
    HUB_PRINCIPAL,
    SERVICE_PRINCIPALS,
)

#: The follower reads the log on demand (:meth:`Hub.read_governance_soon`) at most this often.
FOLLOW_MIN_INTERVAL_S = 0.05

log = logging.getLogger(__name__)


class Hub:
    def __init__(
        self, settings: Settings | None = None, *, log: EventLog | None = None, service: str = HUB_PRINCIPAL
    ) -> None:
        """``service``: which of the hub's principals this process logs in to the broker as."""
        if service not in SERVICE_PRINCIPALS:
            raise ValueError(f"no hub service {service!r}; one of {', '.join(SERVICE_PRINCIPALS)}")
        self.settings = settings or Settings()
        self.service = service
        self._log = log
        self._anchors: anchors.Anchors | None = None
        self._state: GovState | None = None
        self._refreshed = 0.0
        self._lock = threading.RLock()
        self._stores: dict[str, ReadModelStore] = {}
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()
        #: What services made on this hub close with it (an API's access-log producer), newest first.
        self._on_close: list[Callable[[], None]] = []
        self._read_now = threading.Event()

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def anchors(self) -> anchors.Anchors:
        """The pinned trust, read from ``trust.json`` once it exists (pinning never changes it)."""
        if self._anchors is None:
            self._anchors = anchors.load(self.home)
        return self._anchors

    # --- who connects to Kafka as whom -------------------------------------------------------------------

    @property
    def kafka_admin(self) -> KafkaAccess:
        """The broker's super user: used once per hub, to create governance's own principal and the
        services' (:func:`services.broker_access.provision_services`); everyday governance logs in as
        :attr:`kafka_governance`."""
        settings = self.settings
        if settings.kafka_security == "plaintext":
            return KafkaAccess(settings.bootstrap)
        try:
            password = settings.admin_password_path.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"the Kafka admin password is unreadable ({exc}); start the local broker with "
                "'sharehub kafka start' or point SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE at it"
            ) from None
        return KafkaAccess(
            settings.bootstrap, settings.kafka_admin_user, SecretBytes(password.encode()), self.kafka_tls
        )

    @property
    def kafka_governance(self) -> KafkaAccess:
        """Governance's login: write the governance log; make topics, principals and ACLs in the hub's
        namespace (see :mod:`services.broker_access`)."""
        return self.kafka_as(GOVERNANCE_PRINCIPAL)

    @property
    def kafka_tls(self) -> KafkaTls | None:
        """TLS to the broker, verified against the hub CA (``SHAREHUB_KAFKA_CA_FILE``); None in plaintext."""
        if self.settings.kafka_security == "plaintext":
            return None
        return KafkaTls(self.settings.kafka_ca_path)

    def principal(self, name: str) -> str:
        """The broker principal of an agency (or of the hub's services, ``hub``) in this hub's namespace."""
        return f"{self.anchors.topic_prefix}.{name}"

    def kafka_as(self, name: str) -> KafkaAccess:
        """The login of one of the hub's services (``hub``, ``projector``, ``api``), or of an agency in the
        hub's custody (see :meth:`in_custody`); an agency that logs in from its own site has none here."""
        if self.settings.kafka_security == "plaintext":
            return KafkaAccess(self.settings.bootstrap)
        if name not in SERVICE_PRINCIPALS and not self.in_custody(name):
            raise InputError(
                f"this hub holds no broker login of {name!r}: the agency logs in from its own site (with its "
                "certificate, or a password only it keeps); publish from there, with SHAREHUB_HOME set to it"
            )
        principal = self.principal(name)
        return KafkaAccess(
            self.settings.bootstrap, principal, self.keys.broker_password(principal), self.kafka_tls
        )

    def in_custody(self, agency: str) -> bool:
        """Whether the hub acts for ``agency``: it holds one of the agency's signing keys that has not ended
        (the operator's, and those of the agencies a spec lists as ``custodial``). Only then does the hub keep
        the agency's broker login; every other agency makes its keys and logins at its own site."""
        record = self.governance_state().agencies_.get(agency)
        return in_custody(record, lambda key_id: self.keys.has(key_id, "signing"))

    def broker_provisioning(self) -> BrokerProvisioning:
        """What :mod:`services.broker_access` provisions with: this hub's namespace, key store and logins."""
        from services.broker_access import BrokerProvisioning

        return BrokerProvisioning(
            topic_prefix=self.anchors.topic_prefix,
            keys=self.keys,
            governance=lambda: self.kafka_governance,
            super_user=lambda: self.kafka_admin,
            plaintext=self.settings.kafka_security == "plaintext",
        )

    @property
    def kafka(self) -> KafkaAccess:
        """This process's login: the projection worker's, the query API's, or the operator tools'."""
        return self.kafka_as(self.service)

    @property
    def log(self) -> EventLog:
        if self._log is None:
            self._log = KafkaLog(self.kafka, self.anchors.topic_prefix, writer=lambda: self.kafka_governance)
        return self._log

    @property
    def governance(self) -> GovState:
        """The governance state: as the follower thread keeps it, if one runs; otherwise read from the log
        when older than ``governance_refresh_s``."""
        state = self._state
        if self._follower is not None and state is not None:
            return state
        return self.governance_state()

    def follow_governance(self) -> None:
        """Read the governance log now, then keep the state current from a daemon thread every
        ``governance_refresh_s`` seconds, so that :attr:`governance` never waits for the broker."""
        with self._lock:
            if self._follower is not None:
                return
            self.governance_state(refresh=True)
            self._stop_following.clear()
            self._follower = threading.Thread(target=self._follow, name="governance-follower", daemon=True)
            self._follower.start()

    @property
    def following(self) -> bool:
        """Whether a follower thread keeps the governance state current."""
        return self._follower is not None and self._follower.is_alive()

    def _follow(self) -> None:
        interval = max(self.settings.governance_refresh_s, 0.01)
        while True:
            self._read_now.wait(interval)
            if self._stop_following.is_set():
                return
            self._read_now.clear()
            try:
                self.governance_state(refresh=True)
            except Exception as exc:  # noqa: BLE001 - the broker is away: keep the last state, try again
                log.warning("governance not refreshed: %s", exc)
            self._stop_following.wait(FOLLOW_MIN_INTERVAL_S)  # asked again at once: not more often than this

    def read_governance_soon(self) -> None:
        """Have the follower thread read the log now rather than at its next interval (callers asking at
        once share one read); see :attr:`governance_read_at`."""
        self._read_now.set()

    @property
    def governance_read_at(self) -> float:
        """When (``time.monotonic()``) the last completed read of the log began: the state holds every event
        appended before then."""
        return self._refreshed

    def governance_state(self, *, refresh: bool = False) -> GovState:
        """The state as of the log's end at most ``governance_refresh_s`` seconds ago; ``refresh``: as of
        now."""
        with self._lock:
            now = time.monotonic()
            if self._state is None:
                pinned = self.anchors
                state = GovState(pinned.trust, pinned.topic_prefix)
                self._apply(state, self.log.entries_all())
                self._state, self._refreshed = state, now
            elif refresh or now - self._refreshed >= self.settings.governance_refresh_s:
                self._apply(self._state, self.log.entries_new())
                self._refreshed = now
            return self._state

    def governance_since(self, moment: float, *, min_interval: float) -> GovState:
        """The state as a read of the log that began at or after ``moment`` (``time.monotonic()``) left it:
        everything appended before ``moment`` is in it. Reads again if need be, but not more often than
        every ``min_interval`` seconds (callers wait instead), however many callers ask."""
        while True:
            with self._lock:
                state = self._state
                if state is not None and self._refreshed >= moment:
                    return state
                wait = self._refreshed + min_interval - time.monotonic()
                if state is None or wait <= 0:
                    return self.governance_state(refresh=True)
            time.sleep(wait)

    @staticmethod
    def _apply(state: GovState, entries: list[Logged]) -> None:
        for entry in entries:
            state.take(entry)  # a record that cannot be applied is noted, with a warning, and skipped

    @contextmanager
    def governing(self) -> Iterator[GovernanceService]:
        """The governance service over the current state, for changes; one at a time per home."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "governance.lock", "a") as lock_file, self._lock:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                state = self.governance_state(refresh=True)
                operator_key = self.keys.signing_key(state.operator)
                yield GovernanceService(state, operator_key, self.log, signers=CustodySigner(self.keys))
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def governance_desk(self) -> GovernanceDesk:
        """What changing governance takes: this hub's log and key store, its settings, and the broker's
        provisioning (:mod:`services.broker_access`, which works on the hub's logins)."""
        from services import broker_access  # it builds on this module

        return GovernanceDesk(
            governance=self,
            settings=self.settings,
            provision=lambda: broker_access.provision(
                self.broker_provisioning(), self.governance_state(refresh=True)
            ),
            provision_services=lambda: broker_access.provision_services(self.broker_provisioning()),
        )

    @cached_property
    def keys(self) -> LocalKeyStore:
        return LocalKeyStore(self.home / "keys.db", load_kek(self.settings, self.home))

    def publisher(self, agency: str, dataset: str, *, signer: Signer | None = None) -> Publisher:
        """A publisher of ``dataset`` acting as ``agency`` (its broker login), under governance as the log
        has it now, signing with ``signer``: the key of the agency's own site (see
        :class:`connectors.site.AgencySite`); without one, a key of ``agency`` in this hub's key store."""
        if signer is None:
            try:
                signer = self.keys.signing_key(agency)
            except UnknownReferenceError:
                raise InputError(
                    f"this hub holds no signing key of {agency!r} (the hub never holds an agency's private "
                    "key): publish from the agency's own site, with SHAREHUB_HOME set to it"
                ) from None
        return Publisher(
            bootstrap=self.kafka_as(agency),
            governance=self.governance_state(refresh=True),
            keys=self.keys,
            signer=signer,
            agency=agency,
            dataset=dataset,
        )

    def ca_bundle(self) -> bytes:
        """The certificates an agency's site must trust: the CA of the hub's APIs and the one of its broker
        (one CA in a hub; two when the broker is shared, as in the tests), each once; a CA not made yet is
        left out."""
        paths = dict.fromkeys([self.settings.ca_file, self.settings.kafka_ca_path])
        return b"".join(p.read_bytes() for p in paths if p.exists())

    def codec(self, dataset: str) -> DatasetCodec:
        """``dataset``'s codec with this hub's keys, to open its events or name its records (pseudonyms)."""
        ds = self.governance.dataset(dataset)
        return DatasetCodec(ds.id, ds.key_field, self.governance, self.keys)

    def consumers(self) -> list[str]:
        """Every agency that holds an agreement, whatever its state: each has a read model."""
        return sorted({a.consumer for a in self.governance.agreements()})

    def store(self, consumer: str) -> ReadModelStore:
        """The consumer's read model (created if new), one per consumer for the life of this hub."""
        if consumer not in self._stores:
            store = ReadModelStore(
                self.settings.read_model_url_template,
                consumer,
                password_file=self.settings.read_model_password_file,
            )
            store.create()
            self._stores[consumer] = store
        return self._stores[consumer]

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def on_close(self, close: Callable[[], None]) -> None:
        """Have ``close`` called when this hub closes (before its own parts)."""
        self._on_close.append(close)

    def close(self) -> None:
        while self._on_close:
            self._on_close.pop()()
        if self._follower is not None:
            self._stop_following.set()
            self._read_now.set()
            self._follower.join()
            self._follower = None
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        if self._log is not None:
            self._log.close()
        if "keys" in self.__dict__:
            self.keys.close()
            del self.__dict__["keys"]
