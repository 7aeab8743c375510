"""What a scenario reports: its measurements, how to pair them into rows, and notes for the reader."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sharehub.kafka import KafkaAccess, KafkaTls
from sharehub.keys import SecretBytes


@dataclass(frozen=True)
class Config:
    """Sizes of one suite run. ``quick`` keeps everything tiny, to check the code still works."""

    quick: bool
    workdir: Path
    bootstrap: str | None = None
    seed: int = 384
    #: Requests per second the query scenario sends, the same to the API and to the database.
    query_rate: float = 500.0
    #: Processes ``sharehub serve`` runs in the query scenario (SHAREHUB_API_WORKERS).
    api_workers: int = 1

    @property
    def reps(self) -> int:
        return 2 if self.quick else 5

    @property
    def events(self) -> int:
        """Events per repetition in the throughput scenarios."""
        return 300 if self.quick else 20_000

    @property
    def requests(self) -> int:
        """Requests per repetition in the query scenario."""
        return 60 if self.quick else 5_000

    @property
    def request_rate(self) -> float:
        """Requests per second the query scenario sends (``--query-rate``): 500 by default, the rate every
        published suite run has used; #22's target is p99 <= 10 ms at 1,000."""
        return self.query_rate

    @property
    def read_model_rows(self) -> int:
        return 300 if self.quick else 20_000

    def to_json(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "workdir": str(self.workdir),
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "query_rate": self.query_rate,
            "api_workers": self.api_workers,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Config:
        """The config a scenario's own process runs with. The broker address comes back with the super
        user's login (its password never goes into the config file: it is read again from its file)."""
        bootstrap = raw["bootstrap"]
        password_file = os.environ.get("SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE")
        ca_file = os.environ.get("SHAREHUB_KAFKA_CA_FILE")
        if bootstrap and password_file:
            password = SecretBytes(Path(password_file).read_text().strip().encode())
            tls = KafkaTls(Path(ca_file)) if ca_file else None  # over TLS, verified with the broker's CA
            bootstrap = KafkaAccess(bootstrap, "admin", password, tls)
        return cls(
            raw["quick"], Path(raw["workdir"]), bootstrap, raw["seed"], raw.get("query_rate", 500.0),
            raw.get("api_workers", 1),
        )  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One line of a scenario's table: a hub measurement beside its baseline's."""

    metric: str
    kind: Literal["throughput", "latency"]
    hub_key: str
    baseline_key: str
    #: Events per repetition (throughput rows): the measurements are seconds for that many events.
    events: int = 0


@dataclass
class ScenarioResult:
    id: str
    title: str
    hub: str
    baseline: str
    reps: int
    rows: list[Row]
    #: side ("hub" or "baseline") -> measurement name -> one value per repetition.
    measurements: dict[str, dict[str, list[float]]]
    notes: list[str] = field(default_factory=list)
    #: Peak RSS of helper processes the scenario ran (e.g. the query API server), in KiB.
    helper_rss_kb: dict[str, int] = field(default_factory=dict)
    #: Set by the runner: peak RSS of the scenario's own process, in KiB, and its wall time.
    peak_rss_kb: int = 0
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScenarioResult:
        return cls(**{**raw, "rows": [Row(**r) for r in raw["rows"]]})


def save(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
