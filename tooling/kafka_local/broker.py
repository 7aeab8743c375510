"""A single-node Apache Kafka broker for development and tests, managed from Python.

``LocalKafka(home, cache_dir, port)`` starts, stops and reports on one KRaft broker whose state lives
under ``home/kafka/`` (data, logs, the generated ``server.properties``, ``broker.pid``, ``cluster.id``).
It backs ``sharehub kafka start|stop|status`` and the test suite's shared broker.

Why Kafka 3.9.1: it is the last Kafka line that still accepts all the older protocol request versions.
Kafka 4.0 removed many of them (KIP-896), and the two clients sharehub uses, aiokafka (under
faust-streaming) and librdkafka (under confluent-kafka), still send some of those; 3.9.1 talks to both.
It also runs in KRaft mode, so there is no ZooKeeper to manage: one JVM is both broker and controller.
The jars come from Maven Central (see ``jars.py``), the one place this machine can fetch them from.

Security is on from the first start. Every client listener speaks TLS with a certificate the hub CA issued
(``home/tls``, see :mod:`sharehub.pki`; the broker's own is ``home/kafka/broker.pem``, issued anew when near
its end): on ``port`` SASL/SCRAM-SHA-512 over TLS (SASL_SSL), on ``port + 2`` mutual TLS (SSL, a client
certificate required), where a certificate's ``CN=<principal>`` is the principal. No plaintext listener
is left for clients. Kafka's StandardAuthorizer denies whatever no ACL allows, and the one super user,
``admin``, is created while the storage is formatted (``--add-scram``), with a random password in
``home/kafka/admin.password`` (owner-only).
Governance uses it to create the agencies' principals and ACLs. The controller listener is loopback-only
and authenticated too (SASL/PLAIN, its own random password), so nothing talks to this broker anonymously.
A data directory formatted before security was on is refused with a clear error.

The broker runs detached in its own session so that it outlives the command that started it and can be
stopped as a process group. Every wait is a polling loop with a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from sharehub import pki
from sharehub.errors import BrokerStartError, BrokerStopError, PortInUseError
from sharehub.kafka import SASL_MECHANISM, KafkaAccess, KafkaTls
from sharehub.keys import SecretBytes, write_private
from tooling.kafka_local.jars import KAFKA_VERSION, ensure_jars
from tooling.kafka_local.layout import NodePlace

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "BrokerStatus",
    "BrokerStopError",
    "LocalKafka",
    "PortInUseError",
    "broker_answers",
]

LOG4J_CONFIG = Path(__file__).with_name("log4j.properties")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
#: After SIGKILL the kernel needs only a moment; anything longer means something is badly wrong.
KILL_TIMEOUT_S = 10.0
POLL_S = 0.25
LOG_TAIL_LINES = 30
JVM_HEAP = ("-Xms256m", "-Xmx768m")
#: The collector settings Kafka's own start script uses (KAFKA_JVM_PERFORMANCE_OPTS): short G1 pauses. The
#: JVM's default pause goal (200 ms) let single collections hold every acks=all write for up to 60 ms.
JVM_GC = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)

# librdkafka reports every refused connection as an error; while we poll a broker that is still
# starting (or check one that is down) that is expected, so its log goes nowhere.
_quiet = logging.getLogger("sharehub.kafka_local.librdkafka")
#: Every broker process this interpreter started, by pid, until it is seen to have exited. A broker object
#: replaced or dropped while its process still runs (another object stopped it, or a killed node was started
#: again before it was reaped) would otherwise leave its ``Popen`` to be collected unpolled: Python warns
#: "subprocess ... is still running" then, which a test run counts as an error.
_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}
#: Held while ``_LAUNCHED`` is read or changed: a cluster stops its nodes from threads of its own, each of
#: which reaps every broker that exited.
_LAUNCHED_LOCK = threading.Lock()
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class BrokerStatus:
    """What ``LocalKafka.status()`` found. ``running`` means our process is alive and answering."""

    running: bool
    pid: int | None
    bootstrap: str
    detail: str


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request within ``timeout`` (with the
    login ``bootstrap`` carries, if it is a :class:`KafkaAccess`)."""
    security = bootstrap.security_config() if isinstance(bootstrap, KafkaAccess) else {}
    admin = AdminClient(
        {"bootstrap.servers": str(bootstrap), "log.connection.close": False, **security}, logger=_quiet
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


class LocalKafka:
    """One local KRaft node (broker and controller): ``start()``, ``stop()``, ``status()``; state under
    ``home/kafka`` for a lone broker, ``home/kafka/node-<id>`` for a node of a cluster (see
    :mod:`tooling.kafka_local.cluster`), each node with its own certificate from the one hub CA."""

    def __init__(
        self,
        home: Path,
        cache_dir: Path,
        port: int,
        node: NodePlace | None = None,
        *,
        netns: str | None = None,
    ) -> None:
        self.home = home.expanduser().resolve()
        self.cache_dir = cache_dir.expanduser().resolve()
        #: Where this node sits in its cluster; a lone broker is node 1 of 1.
        self.node = node or NodePlace(1, 1)
        #: The address its listeners bind to, and the network namespace it runs in (None: this one's).
        self.host = self.node.host
        self.netns = netns
        self.base_port = port
        self.port = self.node.client_port(port)
        self.controller_port = self.port + 1
        self.mtls_port = self.port + 2
        #: What the nodes of one cluster share (its id, the super user's and the controller's passwords).
        self.shared_dir = self.home / "kafka"
        self.state_dir = self.shared_dir if self.node.count == 1 else self.shared_dir / f"node-{self.node.id}"
        self.data_dir = self.state_dir / "data"
        self.logs_dir = self.state_dir / "logs"
        self.config_file = self.state_dir / "server.properties"
        self.pid_file = self.state_dir / "broker.pid"
        self.cluster_id_file = self.shared_dir / "cluster.id"
        self.stdout_file = self.logs_dir / "kafka.out"
        self.admin_password_file = self.shared_dir / "admin.password"
        self.controller_password_file = self.shared_dir / "controller.password"
        self.secured_marker = self.data_dir / "sharehub-secured"
        #: The hub CA (shared with the hub's HTTPS APIs) and the broker's certificate from it.
        self.tls_dir = pki.tls_dir(self.home)
        self.ca_file = pki.HubCA.paths(self.tls_dir)[0]
        self.certificate = pki.ServerCertificate(self.state_dir / "broker.pem", self.state_dir / "broker.key")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The SASL_SSL listener: principals that log in with SCRAM."""
        return f"{self.host}:{self.port}"

    @property
    def mtls_bootstrap(self) -> str:
        """The mutual-TLS listener: principals known by their client certificate."""
        return f"{self.host}:{self.mtls_port}"

    # ------------------------------------------------------------------ public API

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Make sure the broker runs and answers; return its bootstrap address. Idempotent."""
        with self._locked():
            pid = self._our_pid()
            if pid is not None:
                if broker_answers(self.admin_access(), timeout=5.0):
                    return self.bootstrap
                # Ours but silent: perhaps still starting (launched by another command).
                self._wait_until_ready(pid, timeout)
                return self.bootstrap
            pid = self._launch_locked()
            try:
                self._wait_until_ready(pid, timeout)
            except BaseException:
                # Also on Ctrl-C: a half-started broker that nobody waits for must not linger.
                self._stop_locked()
                raise
            return self.bootstrap

    def launch(self) -> int | None:
        """Start the node's process without waiting for it to answer (a cluster's nodes can only answer
        once a quorum of them runs); return its pid, or None when it was already running."""
        with self._locked():
            if self._our_pid() is not None:
                return None
            return self._launch_locked()

    def wait_until_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the node answers; a node that exits or stays silent is stopped and reported."""
        pid = self._our_pid()
        if pid is None:
            raise BrokerStartError(f"the Kafka node in {self.state_dir} is not running. {self._log_tail()}")
        with self._locked():
            self._wait_until_ready(pid, timeout)

    def pid(self) -> int | None:
        """The pid of this node's live process, if any."""
        return self._our_pid()

    def _launch_locked(self) -> int:
        self._remove_pid_file()
        self._check_ports_free()
        libs = ensure_jars(self.cache_dir)
        java = _java()
        self._prepare_state()
        self._format_if_needed(java, libs)
        return self._launch(java, libs)

    def stop(self) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after 30 s). Return whether one was running."""
        with self._locked():
            return self._stop_locked()

    def status(self) -> BrokerStatus:
        """Report truthfully; a pid file whose process is gone or is not this broker is removed."""
        pid = self._our_pid()
        if pid is None:
            stale = self._read_pid_file()
            if stale is not None:
                # Only clean up when no start/stop holds the lock: a start may be mid-launch.
                with self._locked(blocking=False) as got:
                    if got and self._our_pid() is None:
                        self._remove_pid_file()
                cleanup = "removed the stale pid file" if got else "a start or stop is in progress"
                detail = (
                    f"not running: the pid file named process {stale}, which is not this broker "
                    f"(gone, or the pid was reused); {cleanup}"
                )
            else:
                detail = f"not running (state in {self.state_dir})"
            return BrokerStatus(False, None, self.bootstrap, detail)
        if broker_answers(self.admin_access(), timeout=3.0):
            return BrokerStatus(
                True, pid, self.bootstrap, f"running, pid {pid}, answering on {self.bootstrap}"
            )
        return BrokerStatus(
            False,
            pid,
            self.bootstrap,
            f"process {pid} is up but not answering on {self.bootstrap} (still starting, or hung; "
            f"see {self.logs_dir / 'server.log'})",
        )

    # ------------------------------------------------------------------ processes

    def _our_pid(self) -> int | None:
        """The pid of this broker if one is alive: from the pid file, else found in /proc."""
        pid = self._read_pid_file()
        if pid is not None and self._is_ours(pid):
            return pid
        # A broker whose pid file was lost (deleted by hand, or written by a start that was killed)
        # must still be seen, or a second start would collide with it on the port.
        found = self._find_our_processes()
        if found:
            self.pid_file.write_text(f"{found[0]}\n")
            return found[0]
        return None

    def _is_ours(self, pid: int) -> bool:
        args = _cmdline(pid)
        return "kafka.Kafka" in args and str(self.config_file) in args

    def _find_our_processes(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name)):
                pids.append(int(entry.name))
        return sorted(pids)

    def _read_pid_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _remove_pid_file(self) -> None:
        self.pid_file.unlink(missing_ok=True)

    def _stop_locked(self) -> bool:
        if self._proc is not None:
            self._proc.poll()  # our child killed from outside (a cluster's node in a test): reap it
        pids = set(self._find_our_processes())
        pid = self._read_pid_file()
        if pid is not None and self._is_ours(pid):
            pids.add(pid)
        if not pids:
            self._remove_pid_file()
            return False
        for p in pids:
            _signal_group(p, signal.SIGTERM)
        if not self._wait_gone(pids, STOP_TIMEOUT_S):
            for p in pids:
                _signal_group(p, signal.SIGKILL)
            self._wait_gone(pids, KILL_TIMEOUT_S)
        self._remove_pid_file()
        survivors = self._find_our_processes()
        if survivors:
            raise BrokerStopError(
                f"the Kafka broker in {self.state_dir} survived SIGTERM and SIGKILL: process(es) "
                f"{', '.join(map(str, survivors))} still run; kill them by hand."
            )
        return True

    def _wait_gone(self, pids: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._reap(pids)
            if not any(_alive(p) for p in pids):
                self._reap(pids)  # one that exited since the last reap is a zombie until reaped
                # Our own child is gone once reaped: the JVM's leader is a zombie while its other threads
                # still exit, and until then it cannot be reaped and stays in /proc.
                child = self._proc
                if child is None or child.pid not in pids or child.returncode is not None:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)

    def _reap(self, pids: set[int]) -> None:
        # A broker started by this very process is our child (it is in _LAUNCHED): unless reaped it lingers
        # as a zombie (still in /proc). Brokers started by another command were reparented and are reaped
        # there.
        with _LAUNCHED_LOCK:
            for pid, launched in list(_LAUNCHED.items()):
                if launched.poll() is not None:
                    del _LAUNCHED[pid]
        for p in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(p, os.WNOHANG)

    # ------------------------------------------------------------------ starting

    def _check_ports_free(self) -> None:
        if self.netns is not None:
            return  # a namespace of its own: nothing else listens there
        ports = ((self.port, "client"), (self.controller_port, "controller"), (self.mtls_port, "mutual-TLS"))
        for port, role in ports:
            if _port_free(port):
                continue
            what = (
                "a Kafka broker that is not the one whose state is in this directory (another sharehub "
                "home, or one started by hand)"
                if role == "client" and broker_answers(f"127.0.0.1:{port}", timeout=2.0)
                else "another process"
            )
            raise PortInUseError(
                f"cannot start the local Kafka broker of {self.state_dir}: 127.0.0.1:{port} (its {role} "
                f"port) is already in use by {what}. Stop that process (`ss -ltnp 'sport = :{port}'` "
                f"shows it), choose other ports with SHAREHUB_LOCAL_KAFKA_PORT, or point "
                f"SHAREHUB_KAFKA_BOOTSTRAP at that broker."
            )

    def _prepare_state(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "meta.properties").exists() and not self.secured_marker.exists():
            raise BrokerStartError(
                f"{self.data_dir} was formatted without authentication; remove {self.state_dir} "
                "(its topics are lost) and start again"
            )
        # The CA is made on first use; the broker's certificate is issued anew when missing or near its end.
        ca = pki.HubCA.open(self.tls_dir)
        self.certificate = pki.server_certificate(ca, self.state_dir, "broker", [self.host])
        # Regenerated on every start so the file always matches the code and the configured port. It holds
        # the broker's own passwords and its TLS key, so it is owner-only like them.
        _write_private(self.config_file, self._server_properties())

    def _password(self, path: Path) -> str:
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(32))
        return path.read_text().strip()

    def admin_access(self) -> KafkaAccess:
        """The bootstrap address with the super user's login (governance's)."""
        return KafkaAccess(
            self.bootstrap,
            "admin",
            SecretBytes(self._password(self.admin_password_file).encode()),
            KafkaTls(self.ca_file),
        )

    def _server_properties(self) -> str:
        admin = self._password(self.admin_password_file)
        controller = self._password(self.controller_password_file)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node.id),
            "controller.quorum.voters": self.node.quorum_voters(self.base_port),
            "listeners": (
                f"CLIENTS://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port},"
                f"AGENCIES://{self.host}:{self.mtls_port}"
            ),
            "advertised.listeners": f"CLIENTS://{self.host}:{self.port},AGENCIES://{self.host}:{self.mtls_port}",
            # Clients speak TLS on both their listeners; the controller's stays on loopback (SASL/PLAIN).
            "listener.security.protocol.map": "CLIENTS:SASL_SSL,CONTROLLER:SASL_PLAINTEXT,AGENCIES:SSL",
            # The broker's certificate and key, and the CA it trusts (for itself as its own client, and
            # for the client certificates of the mutual-TLS listener), inline as PEM.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": _pem_value(self.certificate.cert_file.read_bytes()),
            "ssl.keystore.key": _pem_value(self.certificate.key_file.read_bytes()),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.certificates": _pem_value(self.ca_file.read_bytes()),
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
            # The mutual-TLS listener takes only clients with a certificate of the hub CA; a certificate
            # whose subject is exactly CN=<principal> is that principal (``User:<prefix>.<agency>``, whom
            # the ACLs name), any other subject its whole DN, to which no ACL grants anything.
            "listener.name.agencies.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "inter.broker.listener.name": "CLIENTS",
            "controller.listener.names": "CONTROLLER",
            # Clients (and the broker to itself) authenticate with SCRAM; the credentials live in the
            # cluster metadata, where governance creates them through the Admin API.
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            f"listener.name.clients.{SASL_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="admin" password="{admin}";'
            ),
            # The controller cannot use SCRAM (its credentials are in the metadata it serves): PLAIN.
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="controller" password="{controller}" user_controller="{controller}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin;User:controller",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.data_dir),
            # Topics exist only because governance created them, with their schema and policy.
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            # One node: every replication factor is 1, or internal topics could never be created. Three:
            # every topic (governance's use the default) and the internal ones on all three, an acks=all
            # write acknowledged once two hold it, and never a leader that missed acknowledged writes.
            **self.node.replication_properties(),
            # Nobody else will join a group on a dev broker; don't make every consumer wait 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # A dataset declared with a short retention loses its old segments within seconds, not within
            # Kafka's 5 minutes (a deployment's brokers keep their own setting).
            "log.retention.check.interval.ms": "5000",
        }
        header = "# Generated by tooling/kafka_local/broker.py on every start; edits are overwritten.\n"
        return header + "".join(f"{k}={v}\n" for k, v in props.items())

    def _cluster_id(self) -> str:
        try:
            existing = self.cluster_id_file.read_text().strip()
        except OSError:
            existing = ""
        if existing:
            return existing
        cluster_id = _new_cluster_id()
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _format_if_needed(self, java: str, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = [
            java,
            *JVM_HEAP,
            "-cp",
            f"{libs}/*",
            *self._log_props(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self._cluster_id(),
            "-c",
            str(self.config_file),
            "--add-scram",
            f"{SASL_MECHANISM}=[name=admin,password={self._password(self.admin_password_file)}]",
        ]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=START_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"formatting the Kafka storage in {self.data_dir} timed out after {START_TIMEOUT_S:.0f} s"
            ) from exc
        if proc.returncode != 0:
            shown = " ".join(cmd[:-1]) + " <redacted>"  # the last argument holds the admin password
            raise BrokerStartError(
                f"formatting the Kafka storage in {self.data_dir} failed (exit {proc.returncode}): "
                f"`{shown}`. Its output:\n{_tail_text(proc.stdout)}"
            )
        self.secured_marker.write_text("SASL/SCRAM and ACLs since format\n")

    def _log_props(self) -> list[str]:
        return [
            f"-Dlog4j.configuration={LOG4J_CONFIG.resolve().as_uri()}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]

    def _launch(self, java: str, libs: Path) -> int:
        cmd = [
            *(["ip", "netns", "exec", self.netns] if self.netns else []),  # exec'd: the pid stays the JVM's
            java,
            *JVM_HEAP,
            *JVM_GC,
            "-Djava.awt.headless=true",
            "-cp",
            f"{libs}/*",
            *self._log_props(),
            "kafka.Kafka",
            str(self.config_file),
        ]
        if self._proc is not None:
            self._proc.poll()  # a node of ours that was killed and is started again: reap the old process
        with open(self.stdout_file, "wb") as out:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with _LAUNCHED_LOCK:
            _LAUNCHED[self._proc.pid] = self._proc
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return self._proc.pid

    def _wait_until_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._reap({pid})
            if not _alive(pid):
                tail = self._log_tail()
                self._stop_locked()  # a process the JVM forked could outlive it; leave nothing behind
                raise BrokerStartError(f"the Kafka broker (pid {pid}) exited during startup. {tail}")
            # Asking for metadata only once the port accepts connections keeps each probe short.
            if _port_accepts(self.host, self.port) and broker_answers(self.admin_access(), timeout=2.0):
                return
            if time.monotonic() >= deadline:
                # The log's tail is taken before stopping: afterwards it only shows the shutdown.
                tail = self._log_tail()
                self._stop_locked()
                raise BrokerStartError(
                    f"the Kafka broker (pid {pid}) did not answer on {self.bootstrap} within "
                    f"{timeout:g} s and was stopped. {tail}"
                )
            time.sleep(POLL_S)

    def _log_tail(self) -> str:
        parts = []
        for path in (self.logs_dir / "server.log", self.stdout_file):
            text = _read_tail(path, LOG_TAIL_LINES)
            if text:
                parts.append(f"Last lines of {path}:\n{text}")
        return "\n".join(parts) if parts else f"(no broker log found in {self.logs_dir})"

    @contextlib.contextmanager
    def _locked(self, blocking: bool = True) -> Iterator[bool]:
        """Serialise start/stop of this broker across processes (the lock is a file in the state dir)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True


# ---------------------------------------------------------------------- helpers


def _new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them: a random 16-byte uuid, base64url, no padding (22 chars)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # A leading '-' would be read as an option by StorageTool's argument parser (Kafka's own
        # Uuid.randomUuid avoids it for the same reason).
        if not cluster_id.startswith("-"):
            return cluster_id


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(java_home) / "bin" / "java")] if java_home else []
    candidates.append(shutil.which("java") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerStartError(
        f"cannot start the local Kafka {KAFKA_VERSION} broker: no Java runtime found (JAVA_HOME/bin/java "
        "or 'java' on PATH). Install Java 17 or later (e.g. 'apt-get install openjdk-17-jre-headless')."
    )


def _cmdline(pid: int) -> list[str]:
    """The argument vector of ``pid``; empty when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself contain ')'.
    state = stat[stat.rfind(")") + 2 :][:1]
    return state not in ("Z", "X", "")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The broker leads its own session (start_new_session), so its group id is its pid; signalling
    # the group also reaches anything the JVM forked.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR, as the JVM uses: a port with only TIME_WAIT leftovers is free for the broker.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _read_tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            # The last 64 KiB hold far more than 30 lines of a Kafka log; no need to read it all.
            fh.seek(max(0, fh.tell() - 65536))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return _tail_text(text, lines)


def _tail_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _pem_value(pem: bytes) -> str:
    """PEM as one line of a properties file (``\\n`` is a newline there)."""
    return pem.decode().strip().replace("\n", "\\n")


def _write_private(path: Path, text: str) -> None:
    write_private(path, text.encode())
