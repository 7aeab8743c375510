"""One installation of the hub as the services see it: settings, governance, keys, read-model stores."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from projections.read_model import ReadModelStore
from sharehub.governance import GovernanceState
from sharehub.keys import LocalKeyStore, load_master_key
from sharehub.settings import Settings


class Hub:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._governance: tuple[int, GovernanceState] | None = None
        self._stores: dict[str, ReadModelStore] = {}

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def governance_path(self) -> Path:
        return self.home / "governance.json"

    @property
    def governance(self) -> GovernanceState:
        """The current governance state, re-read whenever its file changes (e.g. a credential is issued)."""
        try:
            changed = self.governance_path.stat().st_mtime_ns
        except FileNotFoundError:
            changed = -1
        if self._governance is None or self._governance[0] != changed:
            self._governance = (changed, GovernanceState.load(self.governance_path))
        return self._governance[1]

    @cached_property
    def keys(self) -> LocalKeyStore:
        return LocalKeyStore(self.home / "keys.db", load_master_key(self.home, self.settings.master_key))

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

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        if "keys" in self.__dict__:
            self.keys.close()
            del self.__dict__["keys"]
