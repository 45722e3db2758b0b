"""A single-node Apache Kafka (KRaft combined broker+controller) for development and tests.

No Docker engine here: the broker runs straight from the cached Maven classpath
(see kafka_jars) with `java`, as a detached process whose files all live in one state dir.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from microcred_shared.contract.topics import PARTITIONS

from ._sync import run_sync
from .kafka_jars import KAFKA_VERSION, KafkaError, ensure_kafka_jars, java_cmd
from .kafka_plugin import ensure_audit_plugin
from .processes import (
    HOST,
    free_port,
    port_open,
    read_pid_file,
    spawn,
    stop_pid,
    tail,
    wait_port_closed,
    write_pid_file,
)

__all__ = [
    "KAFKA_VERSION",
    "KafkaError",
    "KafkaNode",
    "create_topics",
    "create_topics_sync",
    "ensure_kafka_jars",
    "new_cluster_id",
]

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


def new_cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, base64url without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaNode:
    """One KRaft node acting as both broker and controller, with its files in state_dir.

    The node is an independent OS process: it keeps running after the Python object is gone,
    and a new KafkaNode on the same state_dir finds it again through its pid file.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        sasl: bool = False,
        sasl_port: int | None = None,
        services_port: int | None = None,
        admin_user: str = "admin",
        admin_password: str = "admin-secret",
        log_dir: Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.sasl = sasl
        self.sasl_port = (sasl_port or free_port()) if sasl else None  # providers' listener
        self.services_port = (services_port or free_port()) if sasl else None  # ADR 21
        self.admin_user, self.admin_password = admin_user, admin_password
        self.data_dir = self.state_dir / "data"
        self.config_file = self.state_dir / "server.properties"
        self.log_dir = Path(log_dir).resolve() if log_dir else self.state_dir / "logs"
        self.log_file = self.log_dir / "kafka.out"
        self.pid_file = self.state_dir / "kafka.pid"

    @classmethod
    def from_config(cls, state_dir: Path, log_dir: Path | None = None) -> KafkaNode | None:
        """The node last configured in state_dir (same ports), or None if there is none.

        Lets a later `up`/`down` find a running broker's ports again, and keeps the ports
        stable across restarts so that URLs written down elsewhere stay valid.
        """
        config = Path(state_dir) / "server.properties"
        if not config.is_file():
            return None
        props = dict(
            line.split("=", 1)
            for line in config.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        ports = {
            name: int(addr.rsplit(":", 1)[1])
            for name, _, addr in (
                item.partition("://") for item in props.get("listeners", "").split(",") if item
            )
        }
        if "PLAINTEXT" not in ports or "CONTROLLER" not in ports:
            return None
        admins = [u[5:] for u in props.get("super.users", "").split(";") if u[5:] != "ANONYMOUS"]
        return cls(
            state_dir,
            ports["PLAINTEXT"],
            ports["CONTROLLER"],
            sasl="SASL_PLAINTEXT" in ports,
            sasl_port=ports.get("SASL_PLAINTEXT"),
            services_port=ports.get("SERVICES"),
            admin_user=admins[0] if admins else "admin",
            log_dir=log_dir,
        )

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"{HOST}:{self.sasl_port}" if self.sasl_port else None

    @property
    def services_bootstrap(self) -> str | None:
        """The services' own SCRAM listener (no re-authentication limit, ADR 21)."""
        return f"{HOST}:{self.services_port}" if self.services_port else None

    @property
    def pid(self) -> int | None:
        record = read_pid_file(self.pid_file)
        return record.pid if record and record.is_alive() else None

    def is_running(self) -> bool:
        return self.pid is not None

    def server_properties(self) -> dict[str, str]:
        listeners = [
            f"PLAINTEXT://{HOST}:{self.port}",
            f"CONTROLLER://{HOST}:{self.controller_port}",
        ]
        advertised = [f"PLAINTEXT://{HOST}:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Static voters: `storage format` then needs no --standalone and the node needs no
            # bootstrap dance; one node is its own quorum.
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(PARTITIONS),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",  # topics are a contract: create them on purpose
            # One node: every internal topic must fit on one replica, or groups and
            # transactions hang waiting for replicas that will never exist.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            # Tests start consumers and expect assignment now, not after the 3 s default.
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
            # The active controller appends a no-op record to the metadata log this often
            # (Kafka's default 500 ms) so that followers see the log advance; here the node
            # is its own quorum, and each no-op was a raft append, a commit and a metadata
            # publish twice a second with nothing changed (issue 12, wave 14: idle burn).
            "metadata.max.idle.interval.ms": "5000",
        }
        if self.sasl:
            from .kafka_sasl import SERVICES_LISTENER, sasl_properties

            listeners.append(f"SASL_PLAINTEXT://{HOST}:{self.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://{HOST}:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            listeners.append(f"{SERVICES_LISTENER}://{HOST}:{self.services_port}")
            advertised.append(f"{SERVICES_LISTENER}://{HOST}:{self.services_port}")
            protocols.append(f"{SERVICES_LISTENER}:SASL_PLAINTEXT")
            props.update(sasl_properties(self.admin_user, self.admin_password))
        props["listeners"] = ",".join(listeners)
        props["advertised.listeners"] = ",".join(advertised)
        props["listener.security.protocol.map"] = ",".join(protocols)
        return props

    def _format_storage(self, lib: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return  # formatted once; formatting again would need a matching cluster id
        # `--cluster-id=` form: a random id may start with "-", which argparse would take
        # for an option (seen: one format in 64 failed).
        args = ["format", f"--cluster-id={new_cluster_id()}", "-c", str(self.config_file)]
        if self.sasl:
            from .kafka_sasl import scram_format_args

            args += scram_format_args(self.admin_user, self.admin_password)
        cmd = java_cmd(lib, "kafka.tools.StorageTool", *args, log_dir=self.log_dir)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> KafkaNode:
        """Write the config, format storage on first use and launch the broker (detached)."""
        if self.is_running():
            return self
        lib = ensure_kafka_jars()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in sorted(self.server_properties().items()))
        self.config_file.write_text("# written by microcred_devstack.kafka\n" + text)
        self._format_storage(lib)
        for port in filter(None, (self.port, self.controller_port, self.sasl_port,
                                 self.services_port)):
            if port_open(port):
                raise KafkaError(f"port {port} is already in use; pick another Kafka port")
        plugins = (ensure_audit_plugin(lib),) if self.sasl else ()  # the authorizer's jar
        cmd = java_cmd(lib, "kafka.Kafka", str(self.config_file), log_dir=self.log_dir,
                       extra_jars=plugins)
        proc = spawn(cmd, self.log_file, cwd=self.state_dir)
        write_pid_file(self.pid_file, proc.pid)
        return self

    async def wait_ready_async(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Ready = the port accepts connections and the broker answers a metadata request."""
        deadline = time.monotonic() + timeout
        last: str = "port closed"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise KafkaError(f"Kafka exited during start:\n{self.log_tail()}")
            if port_open(self.port):
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=5000
                )
                try:
                    await admin.start()
                    meta = await admin.describe_cluster()
                    if meta.get("brokers"):
                        return
                except Exception as err:  # broker still booting: any client error means retry
                    last = repr(err)
                finally:
                    await admin.close()
            await asyncio.sleep(0.3)
        raise KafkaError(f"Kafka not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        run_sync(self.wait_ready_async(timeout))

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_file, lines) + "\n" + tail(self.log_dir / "kafka-server.log", lines)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Kafka shuts down cleanly), wait, SIGKILL fallback; then wait for the ports."""
        stop_pid(read_pid_file(self.pid_file), timeout)
        self.pid_file.unlink(missing_ok=True)
        for port in filter(None, (self.port, self.controller_port, self.sasl_port,
                                 self.services_port)):
            wait_port_closed(port, timeout=10)


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = PARTITIONS,
    compacted: Iterable[str] = (),
    **client_options: object,
) -> list[str]:
    """Create topics that do not exist yet; return the names actually created.

    Names in `compacted` (also created if not in `names`) get cleanup.policy=compact.
    client_options go to AIOKafkaAdminClient (e.g. SASL settings).
    """
    compacted_set = set(compacted)
    wanted = list(dict.fromkeys([*names, *compacted_set]))
    if not wanted:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    try:
        await admin.start()
        topics = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if name in compacted_set else {},
            )
            for name in wanted
        ]
        response = await admin.create_topics(topics)
    finally:
        await admin.close()
    created, failed = [], []
    for item in response.topic_errors:
        name, code = item[0], item[1]
        if code == 0:
            created.append(name)
        elif code != TOPIC_ALREADY_EXISTS:  # idempotent: an existing topic is fine
            failed.append(f"{name}: error {code} {item[2] if len(item) > 2 else ''}")
    if failed:
        raise KafkaError("creating topics failed: " + "; ".join(failed))
    return created


def create_topics_sync(
    bootstrap: str, names: Iterable[str], partitions: int = PARTITIONS,
    compacted: Iterable[str] = (),
) -> list[str]:
    return run_sync(create_topics(bootstrap, list(names), partitions, list(compacted)))
