"""Runtime settings, read from ``SHAREHUB_*`` environment variables (pydantic-settings).

Implementations are chosen here, never by patching: the broker address, where local state lives, which
database holds the read models.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_KAFKA_PORT = 29092
LOCAL_CONTROLLER_PORT = 29093


class Settings(BaseSettings):
    """All knobs of one sharehub installation."""

    model_config = SettingsConfigDict(env_prefix="SHAREHUB_", extra="ignore")

    #: Local state: keystore, governance state, local broker data, SQLite read models.
    home: Path = Field(default=Path(".sharehub"))
    #: Where downloaded artefacts (Kafka's jars) are cached; outside the repository.
    cache_dir: Path = Field(default=Path.home() / ".cache" / "sharehub")
    #: An external broker; when unset, the local KRaft broker started by ``sharehub kafka start``.
    kafka_bootstrap: str | None = None
    #: How clients reach Kafka: SASL/SCRAM over TLS (the local broker's client listener), or neither login
    #: nor TLS for an external broker without security (then the broker cannot enforce ownership and the
    #: wire is readable: see security.md).
    kafka_security: Literal["sasl-ssl", "plaintext"] = "sasl-ssl"
    #: The CA (PEM) the broker's certificate must chain to; default ``home/tls/ca.pem``, the hub CA (which
    #: also issues the local broker's certificate).
    kafka_ca_file: Path | None = None
    #: An external broker's listener for clients known by their certificate (mutual TLS); default the local
    #: broker's, ``127.0.0.1:<local_kafka_port + 2>``.
    kafka_mtls_bootstrap: str | None = None
    #: The broker's bootstrap super user, which governance uses to create topics, principals and ACLs.
    kafka_admin_user: str = "admin"
    #: File holding that user's password; default ``home/kafka/admin.password`` (made by the local broker).
    kafka_admin_password_file: Path | None = None
    #: Port of the local broker's client listener (SASL_SSL); the next one is its controller's, the one after
    #: its mutual-TLS listener's.
    local_kafka_port: int = LOCAL_KAFKA_PORT
    #: SQLAlchemy URL of the read-model database; ``{consumer}`` is replaced by the consumer agency id.
    #: Default: one SQLite file per consumer under ``home/readmodels``. For PostgreSQL give a URL
    #: without ``{consumer}``: each consumer then gets its own schema in that database.
    read_model_url: str | None = None
    #: File holding the read-model database password (e.g. a Docker secret), so it is in no URL or env.
    read_model_password_file: Path | None = None
    #: Days of past versions each read model keeps for reads ``as_of`` a past time; unset: every version
    #: since the dataset's first event. A dataset whose declared retention (``retention_ms``) is shorter
    #: keeps only that (:mod:`sharehub.history`). The projection worker forgets older ones hourly
    #: (``sharehub project prune-history`` does it at once), and the query API refuses an ``as_of`` before
    #: that horizon.
    history_days: float | None = Field(default=None, gt=0)
    #: Base64 of the 32-byte master key that wraps every key at rest; when unset, ``home/master.key``.
    master_key: str | None = Field(default=None, repr=False)
    #: File holding that master key (base64, owner-only); default ``home/master.key``.
    master_key_file: Path | None = None
    #: The key-encryption key that wraps every key at rest: the master key (``file``), or an AES key inside
    #: a PKCS#11 token (``pkcs11``) that never leaves it. ``sharehub keys rewrap`` moves a store between them.
    kek: Literal["file", "pkcs11"] = "file"
    #: The PKCS#11 library of the token (an HSM vendor's, or SoftHSM2's).
    pkcs11_module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    #: The label of the token that holds the key-encryption key.
    pkcs11_token: str | None = None
    #: Owner-only file holding the token's user PIN (never the PIN itself in the environment).
    pkcs11_pin_file: Path | None = None
    #: The label of the key-encryption key inside the token.
    pkcs11_key_label: str = "sharehub-kek"
    #: How often (seconds) a running service looks for new governance events on the log. A look that finds
    #: nothing costs one watermark request; every API instance refuses a revoked credential within this
    #: plus one read (at 0.5 s, 0.6 s was measured on a loaded machine: too close to the promised second).
    governance_refresh_s: float = Field(default=0.2, ge=0.0)
    api_host: str = "127.0.0.1"
    api_port: int = 8384
    #: The HTTPS APIs' certificate chain and key (PEM). Default: ``home/tls/api.pem`` and ``api.key``, issued
    #: by the hub CA when missing or near their end (for 127.0.0.1, localhost and ``api_host``).
    api_tls_cert_file: Path | None = None
    api_tls_key_file: Path | None = None
    #: Processes serving the query API (``sharehub serve``); each holds its own hub and access-log producer.
    api_workers: int = Field(default=1, ge=1, le=64)
    #: Each query API instance states its access-log lane's head (a signed checkpoint) once this many records
    #: were written since the last, ...
    access_checkpoint_every: int = Field(default=100, ge=1)
    #: ... or this many seconds after its last checkpoint (or its start) when it wrote records since (0: not
    #: by time), and when it closes. Records after its last checkpoint are what a crash can lose unnoticed.
    access_checkpoint_seconds: float = Field(default=10.0, ge=0.0)
    #: Bytes of a request body the query API takes at most (governance requests, subject-key batches);
    #: a larger one is 413 on its Content-Length, or as soon as a chunked body passes it.
    api_max_body: int = Field(default=1024 * 1024, ge=1024)
    #: Seconds a web console session lasts after its login (``/console``); then the agency logs in again.
    console_session_s: int = Field(default=1800, ge=60, le=24 * 3600)
    #: The web console's language until a visitor picks one: ``vi`` (Vietnamese) or ``en`` (English).
    console_language: Literal["vi", "en"] = "vi"
    #: The command line's language for the sentence it puts before a failure's detail (``error: bad input
    #: — …`` or ``error: dữ liệu vào không hợp lệ — …``): ``en`` (English, the default) or ``vi``. The
    #: APIs follow each request's Accept-Language instead.
    language: Literal["en", "vi"] = "en"
    #: Every HTTPS server's limits against slow and oversized requests (:mod:`services.api.guarded_http`):
    #: seconds for a TLS handshake, for a request's headers to arrive once its connection is open or its
    #: first byte came, for the whole request once its headers came; seconds an idle keep-alive connection
    #: stays open; bytes of a request's line and headers; connections held at once (when full, the one
    #: waiting longest for its request's headers is closed for a new one).
    http_tls_handshake_timeout_s: float = Field(default=10.0, gt=0)
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=60.0, gt=0)
    http_keep_alive_s: int = Field(default=5, ge=1)
    http_max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    http_max_connections: int = Field(default=1000, ge=8)
    #: The projection worker's /healthz and /readyz (:mod:`projections.health`): plain HTTP on this port
    #: when set (``sharehub project --health-port``), on ``worker_health_host``.
    worker_health_port: int | None = Field(default=None, ge=1, le=65535)
    worker_health_host: str = "127.0.0.1"
    #: Seconds the broker waits for a projection worker that stopped heartbeating before it gives the
    #: worker's partitions to the others in its group: after a worker is killed, its partitions wait this long
    #: (faust's default, 60 s). Heartbeats go every 3 s from the worker's event loop, which the projection
    #: engine (a process of its own) never blocks; the broker accepts 6 s to 30 min (its group.min/max).
    worker_session_timeout_s: float = Field(default=60.0, ge=6.0, le=1800.0)

    def history_horizon(self, now: dt.datetime) -> dt.datetime | None:
        """The earliest time a read ``as_of`` may ask for at ``now`` by the hub's bound alone (None: any,
        also when the days reach before the first representable time). A dataset's own retention may set a
        later one: see :func:`sharehub.history.history_horizon`."""
        if self.history_days is None:
            return None
        try:
            return now - dt.timedelta(days=self.history_days)
        except OverflowError:
            return None

    @property
    def admin_password_path(self) -> Path:
        return self.kafka_admin_password_file or self.home / "kafka" / "admin.password"

    @property
    def tls_dir(self) -> Path:
        """Where the hub CA and the certificates it issued to this hub's servers live."""
        return self.home / "tls"

    @property
    def ca_file(self) -> Path:
        """The hub CA's certificate: what HTTPS clients of this hub's APIs verify against."""
        return self.tls_dir / "ca.pem"

    @property
    def kafka_ca_path(self) -> Path:
        return self.kafka_ca_file or self.ca_file

    @property
    def mtls_bootstrap(self) -> str:
        """The broker's listener for clients with certificates (mutual TLS)."""
        return self.kafka_mtls_bootstrap or f"127.0.0.1:{self.local_kafka_port + 2}"

    @cached_property
    def bootstrap(self) -> str:
        """The broker every component talks to."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def read_model_url_template(self) -> str:
        if self.read_model_url:
            return self.read_model_url
        return f"sqlite:///{(self.home / 'readmodels').resolve()}/{{consumer}}.db"
