"""The API contract is true (issue 13 item 6): schemathesis, the real OpenAPI fuzzer, runs
against every service of the running backbone with real credentials (operator, provider,
learner, employer) and finds no server error and no answer its OpenAPI does not document
(status code, content type, headers, body schema).

What the fuzzer could break for the tests that run after it on the same stack is confined
to resources made for this run: the operations that change a provider, a definition, an
employer, a delivery or a share are pinned (schemathesis `parameters`) to a provider, a
definition and employers created here, so no value read from another test's responses can
reach them; a learner's operations act on the fuzz learner's own credential. Learner
sign-out gets no credential (it would end the fuzz learner's session half-way through the
run). Values read from responses feed later cases (schemathesis' default), which is why
the pins matter: the operator's listings name every provider and employer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import eventually, learner, result
from microcred_testkit.providers import Admin, definition_doc, provider_doc

pytestmark = pytest.mark.integration

SERVICES = ("assessment", "issuance", "registry", "notify")
# The five response checks of `--checks all` that judge the contract, plus the 405 a
# method an operation does not have gets (with its Allow header).
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance",
          "unsupported_method", "allow_header_conformance")
# Bounded so the four runs stay within about two minutes on two cores.
# Addresses the services would reach out to stay on this machine: webhooks go to loopback
# (MICROCRED_WEBHOOKS_ALLOW_LOOPBACK_HTTP in the backbone), /v1/verify fetches our own URL.
LOOPBACK_HOOK = "http://127.0.0.1:9/fuzz-hook"
MAX_EXAMPLES = int(os.environ.get("MICROCRED_FUZZ_EXAMPLES", "20"))
SEED = int(os.environ.get("MICROCRED_FUZZ_SEED", "20260113"))


@dataclass
class Credentials:
    operator: str
    provider_key: str  # the fuzz provider's API key
    provider: str  # the fuzz provider: it issues the fuzz learner's credential
    target_provider: str  # what the operator's provider operations are pinned to
    target_definition: str
    learner_token: str  # mcl_...
    credential_id: str
    employer_key: str  # mce_... of an approved employer made for this run
    employer: str
    target_employer: str  # what the operator's employer operations are pinned to


async def make_credentials(bb: Any) -> Credentials:
    tag = uuid.uuid4().hex[:6]
    provider, target = f"fuzz-provider-{tag}", f"fuzz-target-{tag}"
    definition, target_definition = f"fuzz-def-{tag}", f"fuzz-target-def-{tag}"
    async with Admin(bb.url("assessment"), bb.operator_token) as admin:
        key = await admin.onboard(provider)
        await admin.call("POST", "/v1/admin/definitions", definition_doc(definition, provider),
                         201)
        await admin.call("POST", "/v1/admin/providers", provider_doc(target), 201)
        await admin.call("POST", "/v1/admin/definitions",
                         definition_doc(target_definition, target), 201)

    who = learner(f"fuzz-{tag}")
    async with bb.http("assessment", key) as client:
        r = await client.post("/v1/assessment-results", content=result(
            provider, definition, who=who, passed=True).model_dump_json(),
            headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text
    async with bb.http("registry", bb.operator_token) as registry:
        async def mine() -> list[dict[str, Any]]:
            got = await registry.get(f"/v1/learners/{learner_key(who.email)}/credentials")
            return list(got.json()["credentials"])
        creds = await eventually(mine, lambda c: len(c) >= 1, timeout=120)
    assert creds, "the fuzz learner's credential was not registered"

    async with bb.http("registry") as client:
        r = await client.post("/v1/learner/sign-in", json={"email": who.email})
        assert r.status_code == 202, r.text

        async def mails() -> list[Any]:
            return [m for m in bb.smtp.to(who.email) if "/learner/sign-in/" in m.get_content()]
        got = await eventually(mails, lambda m: len(m) >= 1)
        assert got, "no sign-in mail"
        link = next(w for w in got[-1].get_content().split() if "/learner/sign-in/" in w)
        r = await client.post("/learner/sign-in/" + link.rsplit("/", 1)[1],
                              headers={"accept": "application/json"})
        assert r.status_code == 200, r.text
        learner_token = r.json()["access_token"]

    employers = []
    async with bb.http("notify") as client:
        for name in (f"fuzz-employer-{tag}", f"fuzz-target-employer-{tag}"):
            r = await client.post("/v1/employers", json={
                "organisation": f"{name} Inc.", "contact_name": "Hiring Lead",
                "contact_email": f"hiring@{name}.example", "website": f"https://{name}.example"})
            assert r.status_code == 201, r.text
            employers.append(r.json()["id"])
    async with bb.http("notify", bb.operator_token) as client:
        r = await client.post(f"/v1/admin/employers/{employers[0]}/approve")
        assert r.status_code == 200, r.text
        employer_key = r.json()["api_key"]
    return Credentials(operator=bb.operator_token, provider_key=key, provider=provider,
                       target_provider=target, target_definition=target_definition,
                       learner_token=learner_token, credential_id=creds[0]["id"],
                       employer_key=employer_key, employer=employers[0],
                       target_employer=employers[1])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operations(service: str, c: Credentials, bb_url: str = "") -> list[dict[str, Any]]:
    """schemathesis `[[operations]]`: who calls each operation, and what is pinned."""
    operator, provider = _bearer(c.operator), _bearer(c.provider_key)
    nowhere = str(uuid.uuid4())  # a delivery that does not exist: replays stay 404s
    if service == "assessment":
        return [
            {"include-path-regex": "^/v1/admin/", "headers": operator,
             "parameters": {"path.provider_id": c.target_provider,
                            "path.definition_id": c.target_definition}},
            {"include-path": "/v1/admin/definitions", "include-method": "POST",
             "parameters": {"body.provider_id": c.target_provider}},
            {"include-path-regex": "^/v1/(provider/|assessment-results)", "headers": provider},
        ]
    if service == "issuance":
        return [
            {"include-path-regex": "^/v1/admin/", "headers": operator,
             "parameters": {"path.provider_id": c.target_provider}},
            {"include-path-regex": "^/(credentials/issue|v1/credentials/)",
             "headers": provider},
        ]
    if service == "registry":
        return [
            {"include-path-regex": "^/v1/(learners/|credentials/)", "headers": operator,
             "parameters": {"path.credential_id": c.credential_id}},
            {"include-path": "/v1/verify",
             "parameters": {"query.url": f"{bb_url}/v1/credentials/{c.credential_id}"}},
            {"include-path-regex": "^/v1/learner/(credentials|employers|profile)",
             "headers": _bearer(c.learner_token),
             "parameters": {"path.credential_id": c.credential_id,
                            "path.employer_id": c.employer}},
        ]
    if service == "notify":
        return [
            {"include-path-regex": "^/v1/admin/", "headers": operator,
             "parameters": {"path.employer_id": c.target_employer,
                            "path.delivery_id": nowhere,
                            "body.employer_id": c.target_employer}},
            {"include-path-regex": "^/v1/employer/", "headers": _bearer(c.employer_key),
             "parameters": {"body.webhook_url": LOOPBACK_HOOK}},
        ]
    raise ValueError(service)


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    return json.dumps(value)


def config_file(service: str, c: Credentials, where: Path, bb_url: str) -> Path:
    # No state kept between runs (each run is judged alone), no stateful phase (no links).
    lines = ["[cache]", "enabled = false", "", "[phases.stateful]", "enabled = false", ""]
    for op in operations(service, c, bb_url):
        lines.append("[[operations]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in op.items()]
        lines.append("")
    path = where / f"{service}.toml"
    path.write_text("\n".join(lines))
    return path


@dataclass
class Run:
    service: str
    cases: int
    failures: list[dict[str, Any]]
    output: str

    def count(self, *checks: str) -> int:
        return sum(1 for f in self.failures if f["check"] in checks)

    def summary(self) -> str:
        by = Counter(f"{f['check']}: {f['operation']} -> {f['status']}" for f in self.failures)
        return "\n".join(f"  {n} x {what}" for what, n in by.most_common())


def fuzz(bb: Any, service: str, c: Credentials, where: Path, *,
         max_examples: int = MAX_EXAMPLES) -> Run:
    report = where / f"{service}.ndjson"
    args = [sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(config_file(service, c, where, bb.url(service))), "run",
            bb.url(service) + "/openapi.json",
            "--checks", ",".join(CHECKS), "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(max_examples), "--seed", str(SEED),
            "--workers", "2", "--no-shrink", "--continue-on-failure",
            "--request-timeout", "20", "--tls-verify", str(bb.ca_file),
            "--generation-database", "none", "--suppress-health-check", "all",
            "--report", "ndjson", "--report-ndjson-path", str(report),
            "--output-truncate", "true"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_COLOR": "1"})
    cases, failures = read_report(report)
    if cases == 0:
        raise AssertionError(f"schemathesis ran no case on {service}:\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return Run(service, cases, failures, done.stdout)


def read_report(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """Cases run and failed checks (operation, check, status) from the ndjson report."""
    cases, failures = 0, []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        (kind, body), = event.items()
        if kind != "ScenarioFinished":
            continue
        recorder = body.get("recorder") or {}
        cases += len(recorder.get("cases", {}))
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                interaction = (recorder.get("interactions") or {}).get(case_id) or {}
                response = interaction.get("response") or {}
                request = interaction.get("request") or {}
                failures.append({
                    "operation": recorder.get("label"),
                    "check": check.get("name"),
                    "status": response.get("status_code"),
                    "request": f"{request.get('method')} {request.get('uri')}",
                    "body": _text(response.get("content"))[:300],
                    "message": ((check.get("failure_info") or {}).get("failure") or {})
                    .get("message", ""),
                })
    return cases, failures


def _text(content: Any) -> str:
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode("utf-8", "replace")
    return str(content or "")


async def test_every_service_answers_only_what_its_openapi_documents(backbone: Any,
                                                                    tmp_path: Path) -> None:
    c = await make_credentials(backbone)
    runs = [fuzz(backbone, service, c, tmp_path) for service in SERVICES]
    for run in runs:
        print(f"{run.service}: {run.cases} cases, "
              f"{run.count('not_a_server_error')} server errors, "
              f"{len(run.failures)} failed checks\n{run.summary()}")
    failed = [r for r in runs if r.failures]
    assert not failed, "\n".join(
        f"{r.service}: {len(r.failures)} failed checks in {r.cases} cases\n{r.summary()}\n"
        + "\n".join(f"    {f['request']} -> {f['status']} {f['body']}"
                    for f in r.failures[:10]) for r in failed)
    assert all(r.cases >= 5 * MAX_EXAMPLES for r in runs), [(r.service, r.cases) for r in runs]
