"""The real backbone for end-to-end tests: Kafka and PostgreSQL started by the repo's own
devstack, the four services as separate processes, a real SMTP server and a real OTLP
receiver on loopback."""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from microcred_devstack import Stack, free_port
from microcred_testkit.backbone import OtlpCollector, SmtpRecorder

PROVIDERS = ("lakeshore-college", "coast-mountain-university", "cegep-riviere-du-nord",
             "ontario-construction-sector-council")
_SERVICES = ("assessment", "issuance", "registry", "notify")


@dataclass
class Backbone:
    stack: Stack
    smtp: SmtpRecorder
    otlp: OtlpCollector
    operator_token: str
    env: dict[str, str]
    api_keys: dict[str, str] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.stack.service_url(service)

    @property
    def bootstrap(self) -> str:
        return self.stack.bootstrap

    @property
    def sasl_bootstrap(self) -> str:
        assert self.stack.kafka is not None and self.stack.kafka.sasl_bootstrap
        return self.stack.kafka.sasl_bootstrap

    @property
    def services_bootstrap(self) -> str:
        """The services' own SCRAM listener (no re-authentication limit, ADR 21)."""
        assert self.stack.kafka is not None and self.stack.kafka.services_bootstrap
        return self.stack.kafka.services_bootstrap

    @property
    def ca_file(self) -> Path:
        """The devstack CA behind the registry's https (did:web, ADR 22)."""
        return self.stack.ca_file

    @property
    def public_base_url(self) -> str:
        """MICROCRED_PUBLIC_BASE_URL: the registry's https origin, signed into credentials."""
        return self.stack.stack_env()["MICROCRED_PUBLIC_BASE_URL"]

    def issuer_did(self, provider_id: str) -> str:
        from microcred_shared.vc.didweb import did_web

        return did_web(self.public_base_url, "issuers", provider_id)

    def http(self, service: str, token: str | None = None) -> httpx.AsyncClient:
        """A client of one service; the registry's https is trusted through the devstack's
        CA explicitly (never by turning verification off)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url(service), headers=headers, timeout=30,
                                 verify=ssl.create_default_context(cafile=str(self.ca_file)))

    async def db(self, service: str) -> asyncpg.Connection:
        server = self.stack.database_url
        return await asyncpg.connect(server.rsplit("/", 1)[0] + f"/microcred_{service}")

    async def scalar(self, service: str, sql: str, *args: Any) -> Any:
        conn = await self.db(service)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    def mint_key(self, provider_id: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "microcred_assessment", "keys", "create", provider_id],
            env={**os.environ, **self.stack.service_env("assessment", self.env)},
            capture_output=True, text=True, check=True, timeout=60)
        return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backbone]:
    state: Path = tmp_path_factory.mktemp("stack")
    # kafka_sasl: a SCRAM/ACL listener beside the open one the services use (issue 4 tests).
    stack = Stack(state, free_ports=True, kafka_sasl=True).start_infra()
    smtp = SmtpRecorder(free_port()).start()
    otlp = OtlpCollector(free_port()).start()
    token = secrets.token_urlsafe(24)
    env = {
        "MICROCRED_SMTP_PORT": str(smtp.controller.port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "MICROCRED_OPERATOR_TOKEN": token,
        "MICROCRED_NOTIFY_RETRY_BASE_SECONDS": "0.2",
        # Learner sign-in links expire quickly, so test_learners.py sees one expire.
        "MICROCRED_SIGNIN_TTL_SECONDS": "12",
        # Employer webhooks: a receiver on loopback http, retries in milliseconds, a short
        # way to the dead letter and to a disabled endpoint (test_employer_feed.py).
        "MICROCRED_WEBHOOKS_ALLOW_LOOPBACK_HTTP": "true",
        "MICROCRED_WEBHOOK_RETRY_BASE_SECONDS": "0.01",
        "MICROCRED_WEBHOOK_MAX_ATTEMPTS": "4",
        "MICROCRED_WEBHOOK_DISABLE_AFTER_FAILURES": "2",
    }
    bb = Backbone(stack, smtp, otlp, token, env)
    try:
        for name in _SERVICES:
            stack.start_service(name, env, wait=False)
        for name in _SERVICES:
            stack.service(name, env).wait_healthy(stack.service_url(name) + "/healthz", 120)
        bb.api_keys = {p: bb.mint_key(p) for p in PROVIDERS}
        yield bb
    finally:
        stack.down(purge=True)
        smtp.stop()
        otlp.stop()


def _tail(path: Path, keep: int, pick: tuple[str, ...] = ()) -> list[str]:
    """The last `keep` lines of a log (only those holding one of `pick`, when given)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 200_000))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    if pick:
        lines = [line for line in lines if any(word in line for word in pick)]
    return [line[:240] for line in lines[-keep:]]


def backbone_state(bb: Backbone) -> str:
    """What an on-call engineer looks at first when a test fails: which parts run, and the
    last warnings and errors of each (pytest drops the stack's files after a few runs)."""
    out = []
    for row in bb.stack.status():
        if row["name"] in ("kafka", "postgres", *_SERVICES):
            out.append(f"{row['name']}: {'running' if row['running'] else 'NOT RUNNING'}")
    logs = bb.stack.log_dir
    for name in _SERVICES:
        out += [f"  {name}| {line}" for line in _tail(
            logs / f"{name}.log", 6, ("ERROR", "WARNING", "Traceback", "Error:"))]
    out += [f"  kafka| {line}" for line in _tail(logs / "kafka-server.log", 4)]
    out += [f"  kafka-audit| {line}" for line in _tail(logs / "kafka-audit.jsonl", 2)]
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed end-to-end test's report carries the backbone's state at that moment."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    bb = getattr(item, "funcargs", {}).get("backbone")
    if report.failed and report.when == "call" and isinstance(bb, Backbone):
        try:
            report.sections.append(("backbone at failure", backbone_state(bb)))
        except Exception as exc:  # the report must not hide the failure itself
            report.sections.append(("backbone at failure", f"not readable: {exc!r}"))


@pytest.fixture
async def browser(tmp_path: Path, backbone: Backbone) -> AsyncIterator[Any]:
    """Debian chromium (microcred_testkit.browser) trusting exactly the registry's https
    certificate, by its key."""
    from microcred_devstack import tls
    from microcred_testkit.browser import chromium

    pin = tls.files(backbone.stack.state_dir).spki_pin()
    async with chromium(tmp_path / "profile", pin) as context:
        yield context
