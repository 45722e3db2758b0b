"""The whole local stack: Kafka + PostgreSQL + the four services, under one state dir.

`Stack` is both the engine of the CLI (`up`/`down`/`status`) and the Python API for test
fixtures, so that tests run exactly what developers run. All state lives in files under the
state dir (pid files, server.properties, postmaster.pid, stack.json): any later process can
find, reuse or stop what an earlier one started.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import tls, tools
from .config import (
    DEFAULT_HTTP_PORTS,
    DEFAULT_KAFKA_PORT,
    REPO_ROOT,
    SERVICES,
    database_name,
    default_state_dir,
    int_env,
    stack_settings,
    topic_lists,
)
from .kafka import KafkaNode, create_topics_sync
from .kafka_plugin import AUDIT_LOG
from .pg_embedded import remove_server
from .postgres import PgHandle, ensure_databases, find_embedded, start_embedded
from .processes import HOST, ServiceProcess, free_port, port_is_free, port_open, read_pid_file
from .service_principals import (
    ensure_service_principals_sync,
    service_kafka_env,
    wait_service_logins_sync,
)


class Stack:
    """Kafka, PostgreSQL and services rooted at state_dir.

    free_ports=True (tests) picks free ports for everything; otherwise the documented
    defaults are used (Kafka 9092 when free, services 8101..8104), overridable by the usual
    environment variables (MICROCRED_KAFKA_PORT, MICROCRED_<SERVICE>_HTTP_PORT).
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        free_ports: bool = False,
        kafka_port: int | None = None,
        http_ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        kafka_sasl: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir).resolve() if state_dir else default_state_dir()
        self.free_ports = free_ports
        self.base_env = dict(os.environ if env is None else env)
        self.log_dir = self.state_dir / "logs"
        self.pid_dir = self.state_dir / "pids"
        self.manifest_file = self.state_dir / "stack.json"
        self._kafka_port = kafka_port or int_env(self.base_env, "MICROCRED_KAFKA_PORT")
        self._database_url = database_url
        self.kafka_sasl = kafka_sasl  # adds the SCRAM/ACL listener (see kafka_sasl)
        self.http_ports = self._pick_http_ports(http_ports or {})
        self.kafka: KafkaNode | None = None
        self.pg: PgHandle | None = None

    # --- infrastructure ------------------------------------------------------------------

    def _pick_http_ports(self, given: Mapping[str, int]) -> dict[str, int]:
        previous = self._manifest().get("services", {})
        ports = {}
        for name in SERVICES:
            env_port = int_env(self.base_env, f"MICROCRED_{name.upper()}_HTTP_PORT")
            port = given.get(name) or env_port
            if port is None and name in previous and _service_alive(self, name):
                port = int(previous[name]["port"])  # keep a running service's port
            if port is None:
                port = free_port() if self.free_ports else DEFAULT_HTTP_PORTS[name]
            ports[name] = port
        return ports

    def start_kafka(self, timeout: float = 90.0) -> KafkaNode:
        kafka_dir = self.state_dir / "kafka"
        node = KafkaNode.from_config(kafka_dir, log_dir=self.log_dir)
        if node is not None and node.is_running():
            if self._kafka_port and node.port != self._kafka_port:
                raise RuntimeError(
                    f"Kafka already runs on port {node.port}, not {self._kafka_port}: run down"
                )
        else:
            port = self._kafka_port
            if port is None and node is not None and port_is_free(node.port):
                port = node.port  # same port as last time
            if port is None and not self.free_ports and port_is_free(DEFAULT_KAFKA_PORT):
                port = DEFAULT_KAFKA_PORT
            controller = None
            if node is not None and port_is_free(node.controller_port):
                controller = node.controller_port
            sasl_port = services_port = None
            if node is not None and node.sasl_port and port_is_free(node.sasl_port):
                sasl_port = node.sasl_port
            if node is not None and node.services_port and port_is_free(node.services_port):
                services_port = node.services_port
            node = KafkaNode(
                kafka_dir, port, controller, sasl=self.kafka_sasl, sasl_port=sasl_port,
                services_port=services_port, log_dir=self.log_dir,
            ).start()  # fmt: skip
        node.wait_ready(timeout)
        if node.sasl:
            # The services log in as their own principals (ADR 19). Kept in the metadata
            # log, so a restart should find them; they are set again (idempotent) on every
            # start all the same, and ready means each of them can log in: a broker that
            # came back without them (seen once after a SIGKILL in CI) would otherwise leave
            # every service refused at login while the broker itself looks healthy.
            ensure_service_principals_sync(node.bootstrap, self.state_dir)
            assert node.services_bootstrap is not None
            wait_service_logins_sync(node.services_bootstrap, self.state_dir, timeout)
        self.kafka = node
        return node

    def start_postgres(self) -> PgHandle:
        """The server from DATABASE_URL (argument or env) when given, else the embedded one."""
        url = self._database_url or self.base_env.get("DATABASE_URL")
        self.pg = PgHandle(url, embedded=False) if url else start_embedded(self.state_dir)
        return self.pg

    def start_infra(self, topics: bool = True) -> Stack:
        """Kafka + PostgreSQL + the service databases + the topics (all idempotent)."""
        with self._lock():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            kafka = self.start_kafka()
            pg = self.start_postgres()
            ensure_databases(pg.url, [database_name(s) for s in SERVICES])
            if topics:
                names, compacted = topic_lists()
                create_topics_sync(kafka.bootstrap, names, compacted=compacted)
            self.write_manifest()
        return self

    @property
    def bootstrap(self) -> str:
        assert self.kafka is not None, "start_infra() first"
        return self.kafka.bootstrap

    @property
    def database_url(self) -> str:
        assert self.pg is not None, "start_infra() first"
        return self.pg.url

    # --- services ------------------------------------------------------------------------

    def stack_env(self) -> dict[str, str]:
        """The settings (docs/architecture.md) that the stack gives every service."""
        env = stack_settings(
            self.bootstrap, self.database_url, self.http_ports, self.state_dir, self.base_env
        )
        env.update(tools.env(self.state_dir))  # mail sink and trace collector, when running
        return env

    def start_tools(self) -> dict[str, int]:
        """The local mail sink and trace collector (`up` starts them; tests bring their own)."""
        return tools.start(self.state_dir, self.base_env)

    def service_env(self, name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {**self.base_env, **self.stack_env(), "PYTHONUNBUFFERED": "1"}
        if name == "assessment" and self.kafka is not None and self.kafka.sasl:
            # The broker is local: assessment ships its audit plugin's log itself (ADR 13).
            env["MICROCRED_BROKER_AUDIT_LOG"] = str(self.kafka.log_dir / AUDIT_LOG)
            env["MICROCRED_KAFKA_PROVIDER_BOOTSTRAP"] = self.kafka.sasl_bootstrap or ""
        if self.kafka is not None and self.kafka.sasl and self.kafka.services_bootstrap:
            # The services' own listener, without the providers' re-authentication cut (ADR 21).
            env.update(service_kafka_env(self.state_dir, name, self.kafka.services_bootstrap))
        env.update(extra or {})
        return env

    # The registry serves its public origin over https (did:web, ADR 22), with a CA the
    # stack makes per state dir; the other services stay on loopback http.
    TLS_SERVICES = frozenset({"registry"})

    def service_url(self, name: str) -> str:
        scheme = "https" if name in self.TLS_SERVICES else "http"
        return f"{scheme}://{HOST}:{self.http_ports[name]}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the registry's certificate: trust it explicitly (httpx
        `verify=`, `SSL_CERT_FILE`, `curl --cacert`, `NODE_EXTRA_CA_CERTS`)."""
        return tls.ensure(self.state_dir).ca_cert

    def service(self, name: str, extra_env: Mapping[str, str] | None = None) -> ServiceProcess:
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        # Without started infra there is no env to give: such a handle can only be stopped.
        env = self.service_env(name, extra_env) if self.kafka and self.pg else {}
        return ServiceProcess(
            name,
            [sys.executable, "-m", f"microcred_{name}"],
            env,
            self.log_dir / f"{name}.log",
            self.pid_dir / f"{name}.pid",
            cwd=REPO_ROOT,
            cafile=tls.files(self.state_dir).ca_cert if name in self.TLS_SERVICES else None,
        )

    def start_service(
        self,
        name: str,
        env: Mapping[str, str] | None = None,
        *,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> ServiceProcess:
        """Start one service with the stack env plus `env`, then wait for its /healthz.

        A service that is already alive is reused as it is (its env is not changed): use
        restart_service() to apply a new env.
        """
        if self.kafka is None or self.pg is None:
            raise RuntimeError("start_infra() before starting services")
        proc = self.service(name, env)
        if not proc.is_alive():
            port = self.http_ports[name]
            if not port_is_free(port):
                raise RuntimeError(
                    f"port {port} for {name} is taken by another process; set "
                    f"MICROCRED_{name.upper()}_HTTP_PORT"
                )
            proc.start()
        if wait:
            proc.wait_healthy(self.service_url(name) + "/healthz", timeout)
        return proc

    def start_services(self, names: Iterable[str] = SERVICES, timeout: float = 60.0) -> None:
        procs = [self.start_service(n, wait=False) for n in names]  # boot in parallel
        try:
            for proc in procs:
                proc.wait_healthy(self.service_url(proc.name) + "/healthz", timeout)
        finally:
            self.write_manifest()

    # --- more instances of a service (scale-out: ADR 2) --------------------------------

    def instance(self, name: str, number: int,
                 extra_env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Instance `number` (2, 3, ...) of a service: the same settings as the first (its
        consumer groups, its database, its outbox shared by shard), its own HTTP port, log
        and pid file. Instance 1 is `service(name)`."""
        if number == 1:
            return self.service(name, extra_env)
        base = self.service(name, extra_env)
        port_file = self.pid_dir / f"{name}-{number}.port"
        env = dict(base.env)
        if env:
            port = int(port_file.read_text()) if port_file.exists() else free_port()
            env[f"MICROCRED_{name.upper()}_HTTP_PORT"] = str(port)
        return ServiceProcess(f"{name}-{number}", base.argv, env,
                              self.log_dir / f"{name}-{number}.log",
                              self.pid_dir / f"{name}-{number}.pid", cwd=REPO_ROOT,
                              cafile=base.cafile)

    def instance_url(self, name: str, number: int) -> str:
        if number == 1:
            return self.service_url(name)
        scheme = "https" if name in self.TLS_SERVICES else "http"
        port = (self.pid_dir / f"{name}-{number}.port").read_text().strip()
        return f"{scheme}://{HOST}:{port}"

    def start_instance(self, name: str, number: int, env: Mapping[str, str] | None = None,
                       *, wait: bool = True, timeout: float = 60.0) -> ServiceProcess:
        """Start another instance of a service beside the running one (on a free port)."""
        if self.kafka is None or self.pg is None:
            raise RuntimeError("start_infra() before starting services")
        if number != 1:
            port_file = self.pid_dir / f"{name}-{number}.port"
            if not (port_file.exists() and self.instance(name, number).is_alive()):
                port_file.parent.mkdir(parents=True, exist_ok=True)
                port_file.write_text(str(free_port()))
        proc = self.instance(name, number, env)
        proc.start()
        if wait:
            proc.wait_healthy(self.instance_url(name, number) + "/healthz", timeout)
        return proc

    def extra_instances(self, name: str) -> list[int]:
        """The numbers of the instances beyond the first that have a pid file."""
        found = []
        for path in self.pid_dir.glob(f"{name}-*.pid"):
            suffix = path.stem.removeprefix(f"{name}-")
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def kill_service(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        self.service(name).kill(sig)

    def stop_service(self, name: str) -> None:
        self.service(name).terminate()

    def restart_service(
        self, name: str, env: Mapping[str, str] | None = None, *, timeout: float = 60.0
    ) -> ServiceProcess:
        self.stop_service(name)
        return self.start_service(name, env, timeout=timeout)

    # --- whole stack ---------------------------------------------------------------------

    def up(self, services: bool = True, timeout: float = 60.0) -> dict[str, Any]:
        self.start_infra()
        if services:
            self.start_tools()
            self.start_services(timeout=timeout)
        return self.write_manifest()

    def down(self, purge: bool = False) -> list[str]:
        """Stop services, then Kafka, then embedded PostgreSQL; return what was stopped.

        purge=True also deletes the Kafka and PostgreSQL data (tests: an embedded server's
        files may live outside the state dir, see pg_embedded).
        """
        stopped = []
        with self._lock():
            for name in SERVICES:
                for number in self.extra_instances(name):
                    extra = self.instance(name, number)
                    if extra.is_alive():
                        stopped.append(extra.name)
                    extra.terminate()
                proc = self.service(name)
                if proc.is_alive():
                    stopped.append(name)
                proc.terminate()
            stopped += tools.stop(self.state_dir)
            node = self.kafka or KafkaNode.from_config(self.state_dir / "kafka", self.log_dir)
            if node is not None and node.is_running():
                stopped.append("kafka")
                node.stop()
            pg = self.pg if self.pg and self.pg.embedded else find_embedded(self.state_dir)
            if pg is not None and pg.is_running():
                stopped.append("postgres")
                pg.stop()
            self.manifest_file.unlink(missing_ok=True)
            if purge:
                remove_server(self.state_dir)
                shutil.rmtree(self.state_dir / "kafka", ignore_errors=True)
        return stopped

    def status(self) -> list[dict[str, Any]]:
        """One row per component: name, running, pid, address, log (from the files alone)."""
        node = self.kafka or KafkaNode.from_config(self.state_dir / "kafka", self.log_dir)
        pg = self.pg if self.pg and self.pg.embedded else find_embedded(self.state_dir)
        pg_url = self.pg.url if self.pg else self._manifest().get("postgres", {}).get("url")
        rows = [
            _row("kafka", node.pid if node else None, node.bootstrap if node else "",
                 self.log_dir / "kafka.out"),
            _row("postgres", pg.pid if pg else None, pg_url or (pg.url if pg else ""),
                 self.log_dir / "postgres.log"),
        ]  # fmt: skip
        external = self._database_url or self.base_env.get("DATABASE_URL")
        if external and not rows[1]["running"]:  # DATABASE_URL: not ours, show where it is
            url = urlsplit(external)
            up = bool(url.hostname) and port_open(url.port or 5432, url.hostname or HOST)
            rows[1].update(running=up, address=external, log="external (DATABASE_URL)")
        for name in SERVICES:
            proc = self.service(name)
            rows.append(_row(name, proc.pid, self.service_url(name), proc.log_file))
        return rows + tools.rows(self.state_dir)

    def write_manifest(self) -> dict[str, Any]:
        """stack.json: what runs where, for people and for tools (e.g. the e2e tests)."""
        rows = {row["name"]: row for row in self.status()}
        data: dict[str, Any] = {
            "state_dir": str(self.state_dir),
            "written_at": time.time(),
            "kafka": {**rows["kafka"], "bootstrap": rows["kafka"]["address"],
                      "sasl_bootstrap": self.kafka.sasl_bootstrap if self.kafka else None,
                      "services_bootstrap":
                          self.kafka.services_bootstrap if self.kafka else None},
            "postgres": {**rows["postgres"], "url": rows["postgres"]["address"],
                         "embedded": bool(self.pg is None or self.pg.embedded)},
            "services": {n: {**rows[n], "url": rows[n]["address"], "port": self.http_ports[n]}
                         for n in SERVICES},
            "tls": {"ca": str(tls.files(self.state_dir).ca_cert)},
        }  # fmt: skip
        if self.kafka and self.pg:
            data["env"] = self.stack_env()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.manifest_file)
        return data

    def _manifest(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.manifest_file.read_text()))
        except (OSError, ValueError):
            return {}

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two `up`s (or an `up` and a `down`) at once would race on ports and pid files.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()  # keeps the data: pass through down(purge=True) yourself to drop it


def _service_alive(stack: Stack, name: str) -> bool:
    record = read_pid_file(stack.pid_dir / f"{name}.pid")
    return bool(record and record.is_alive())


def _row(name: str, pid: int | None, address: str, log: Path | str) -> dict[str, Any]:
    return {"name": name, "running": pid is not None, "pid": pid, "address": address,
            "log": str(log)}  # fmt: skip
