"""The Compose broker's configuration, run on the real broker (no Docker engine here): the
server.properties docker-compose.yml gives the broker, with the paths and ports of this
machine, plus what kafka-certs, start-broker.sh and kafka-init do around it. Shows that the
TLS key store and its password provider load, that kafka-init creates the services' users
and ACLs over SASL_SSL, and that a service then works as its own principal on the services'
listener while a provider may log in only to act on its own listener (ADR 19, ADR 21)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from microcred_devstack import free_port
from microcred_devstack.kafka_jars import ensure_kafka_jars, java_cmd
from microcred_devstack.kafka_plugin import ensure_audit_plugin
from microcred_devstack.processes import port_open
from microcred_shared import kafka_acls, kafka_scram
from microcred_shared.contract import topics
from microcred_shared.settings import KafkaClientSettings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
TLS_DIR = "/etc/microcred/kafka-tls"  # where compose mounts kafka-certs' broker files


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "compose" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_properties(tmp: Path, tls: Path, ports: dict[str, int]) -> str:
    """Compose's server.properties with this machine's folders and free ports."""
    text = yaml.safe_load(COMPOSE.read_text())["configs"]["kafka-server-properties"]["content"]
    text = text.replace("$$", "$").replace(TLS_DIR, str(tls))
    text = text.replace("log.dirs=/var/lib/kafka/data", f"log.dirs={tmp / 'data'}")
    text = text.replace("://0.0.0.0:", "://127.0.0.1:").replace("://kafka:", "://127.0.0.1:")
    for name, port in ports.items():  # each listener's (and the quorum's) port
        text = re.sub(rf"({name}://[^:,]+):\d+", rf"\g<1>:{port}", text)
    return text.replace("1@127.0.0.1:29093", f"1@127.0.0.1:{ports['CONTROLLER']}")


def login(monkeypatch: pytest.MonkeyPatch, user: str, password: str, cafile: Path) -> dict:
    monkeypatch.setenv("MICROCRED_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MICROCRED_KAFKA_SASL_USERNAME", user)
    monkeypatch.setenv("MICROCRED_KAFKA_SASL_PASSWORD", password)
    monkeypatch.setenv("MICROCRED_KAFKA_SSL_CAFILE", str(cafile))
    return KafkaClientSettings().kafka_client_options()


async def logged_in(bootstrap: str, options: dict[str, Any]) -> None:
    """Wait until a freshly made SCRAM user can log in: the broker learns credentials from
    the metadata log a moment after the controller has accepted them."""
    for _ in range(100):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
        try:
            await admin.start()
            return
        except KafkaConnectionError:  # refused as unknown, for now
            await asyncio.sleep(0.3)
        finally:
            await admin.close()
    raise AssertionError(f"{options.get('sasl_plain_username')} never logged in")


async def test_the_compose_broker_config_runs_scram_over_tls_with_the_acls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, tls = tmp_path / "ca", tmp_path / "tls"
    assert _script("kafka_certs").main([str(ca), str(tls)]) == 0  # what kafka-certs runs
    ports = {n: free_port() for n in ("BROKER", "CONTROLLER", "SERVICES", "PROVIDERS")}
    config = tmp_path / "server.properties"
    config.write_text(compose_properties(tmp_path, tls, ports))
    lib = ensure_kafka_jars()
    admin_password = uuid.uuid4().hex
    # What start-broker.sh does: format with the admin's SCRAM credential, then run.
    fmt = java_cmd(lib, "kafka.tools.StorageTool", "format",
                   "--cluster-id=HR8i_GegSQCW210ZR63NOA", "--config", str(config), "--add-scram",
                   f"SCRAM-SHA-512=[name=admin,password={admin_password}]", log_dir=tmp_path)
    await asyncio.to_thread(subprocess.run, fmt, check=True, capture_output=True, timeout=120)
    log = (tmp_path / "kafka.out").open("w")
    run = java_cmd(lib, "kafka.Kafka", str(config), log_dir=tmp_path,
                   extra_jars=(ensure_audit_plugin(lib),))
    broker = await asyncio.to_thread(subprocess.Popen, run, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if port_open(ports["SERVICES"]) or broker.poll() is not None:
                break
            await asyncio.sleep(0.3)
        assert broker.poll() is None, (tmp_path / "kafka.out").read_text()[-3000:]
        services = f"127.0.0.1:{ports['SERVICES']}"
        providers = f"127.0.0.1:{ports['PROVIDERS']}"
        cafile = ca / "ca.crt"

        passwords = {s: uuid.uuid4().hex for s in topics.SERVICE_TOPICS}
        init = _script("kafka_init")
        env = {"KAFKA_BOOTSTRAP_SERVERS": services,
               **{init.password_variable(s): p for s, p in passwords.items()}}
        login(monkeypatch, "admin", admin_password, cafile)
        await init.main(env)  # kafka-init, as admin over SASL_SSL
        await init.main(env)  # and again: idempotent

        registry = login(monkeypatch, "svc-registry", passwords["registry"], cafile)
        await logged_in(services, registry)
        producer = AIOKafkaProducer(bootstrap_servers=services, acks="all", **registry)
        await producer.start()
        try:
            await producer.send_and_wait(topics.CREDENTIALS_REGISTERED, b"{}")  # its own
            with pytest.raises(TopicAuthorizationFailedError):  # issuance's to sign
                await producer.send_and_wait(topics.CREDENTIALS_ISSUED, b"{}")
        finally:
            await producer.stop()

        # A provider's principal (as assessment makes one) acts on its own listener only.
        admin_login = login(monkeypatch, "admin", admin_password, cafile)
        admin = AIOKafkaAdminClient(bootstrap_servers=services, **admin_login)
        await admin.start()
        try:
            await kafka_scram.alter(admin, [], [kafka_scram.upsertion("acme", "acme-pw")])
            await kafka_acls.create_acls(admin, "User:acme", [kafka_acls.Acl(
                kafka_acls.Resource.TOPIC, topics.RESULTS, kafka_acls.Pattern.LITERAL,
                kafka_acls.Operation.WRITE)])
        finally:
            await admin.close()
        acme = login(monkeypatch, "acme", "acme-pw", cafile)
        await logged_in(providers, acme)
        for bootstrap, allowed in ((providers, True), (services, False)):
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **acme)
            await producer.start()
            try:
                if allowed:
                    await producer.send_and_wait(topics.RESULTS, b"{}")
                else:
                    with pytest.raises(TopicAuthorizationFailedError):
                        await producer.send_and_wait(topics.RESULTS, b"{}")
            finally:
                await producer.stop()
    finally:
        broker.terminate()
        try:
            await asyncio.to_thread(broker.wait, 30)
        except subprocess.TimeoutExpired:
            broker.kill()
        log.close()
