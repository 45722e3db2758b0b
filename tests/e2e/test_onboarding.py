"""Onboarding on the running backbone: an operator adds a provider and a definition through
the admin API or the CLI, and the provider's first result becomes a credential that
verifies; definition versions are recorded in the credentials issued under them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import eventually, learner, result
from microcred_testkit.providers import Admin, definition_doc, provider_doc

pytestmark = pytest.mark.integration


def tag() -> str:
    return uuid.uuid4().hex[:6]


async def submit(bb, key: str, res) -> object:
    async with bb.http("assessment", key) as client:
        return await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                 headers={"content-type": "application/json"})


async def credentials_of(bb, email: str, count: int = 1) -> list[dict]:
    async with bb.http("registry", bb.operator_token) as client:
        async def probe():
            return (await client.get(f"/v1/learners/{learner_key(email)}/credentials")).json()
        body = await eventually(probe, lambda b: b["count"] >= count)
    return body["credentials"]


async def test_an_operator_onboards_a_provider_whose_first_result_becomes_a_verifiable_credential(
        backbone):
    pid, did = f"yukon-trades-{tag()}", f"yt-welding-{tag()}"
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        key = await admin.onboard(pid, kind="industry_association", jurisdiction="CA-YT",
                                  name_fr="Métiers du Yukon")
        await admin.call("POST", "/v1/admin/definitions", definition_doc(did, pid), 201)
        shown = await admin.call("GET", f"/v1/admin/providers/{pid}", expect=200)
    assert shown["name"]["fr"] == "Métiers du Yukon" and shown["status"] == "active"
    assert shown["contact"]["email"] == f"registrar@{pid}.example"
    assert [k["revoked_at"] for k in shown["api_keys"]] == [None]

    who = learner(f"onboarded-{tag()}")
    r = await submit(backbone, key, result(pid, did, who=who, passed=True))
    assert r.status_code == 202, r.text
    (cred,) = await credentials_of(backbone, who.email)
    assert cred["provider"] == pid
    # New credentials are private (ADR 9): the operator reads its verification.
    async with backbone.http("registry", backbone.operator_token) as client:
        v = (await client.get(f"/v1/credentials/{cred['id']}/verification")).json()
        issuer = (await client.get(f"/issuers/{pid}")).json()
    assert v["verified"] is True, v["problems"]
    assert cred["credential"]["issuer"]["address"]["addressRegion"] == "CA-YT"
    assert json.dumps(issuer).count(pid) >= 1


async def test_a_result_decided_after_a_new_version_is_issued_under_it_and_old_ones_keep_theirs(
        backbone):
    pid, did = f"versions-{tag()}", f"ver-def-{tag()}"
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        key = await admin.onboard(pid)
        await admin.call("POST", "/v1/admin/definitions",
                         definition_doc(did, pid, title="Rigging v1"), 201)
        first = learner(f"v1-{tag()}")
        assert (await submit(backbone, key, result(pid, did, who=first, passed=True))
                ).status_code == 202
        (old,) = await credentials_of(backbone, first.email)
        v2 = await admin.call("PUT", f"/v1/admin/definitions/{did}",
                              definition_doc(did, pid, title="Rigging v2", min_score=60), 200)
    assert v2["version"] == 2
    second = learner(f"v2-{tag()}")
    r = await submit(backbone, key, result(pid, did, who=second, score=75))
    assert r.status_code == 202, r.text
    (new,) = await credentials_of(backbone, second.email)
    assert new["credential"]["definitionVersion"] == 2 and new["title"] == "Rigging v2"
    assert new["credential"]["credentialSubject"]["achievement"]["version"] == "2"
    (again,) = await credentials_of(backbone, first.email)
    assert again["credential"]["definitionVersion"] == 1 and again["title"] == "Rigging v1"
    assert again["id"] == old["id"]


async def test_a_retired_definition_takes_no_more_results(backbone):
    pid, did = f"retiring-{tag()}", f"ret-def-{tag()}"
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        key = await admin.onboard(pid)
        await admin.call("POST", "/v1/admin/definitions", definition_doc(did, pid), 201)
        await admin.call("POST", f"/v1/admin/definitions/{did}/retire",
                         {"reason": "replaced by a new program"}, 200)
    r = await submit(backbone, key, result(pid, did, passed=True))
    assert r.status_code == 422 and "retired" in r.json()["detail"]


def cli(bb, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MICROCRED_ASSESSMENT_URL": bb.url("assessment"),
           "MICROCRED_OPERATOR_TOKEN": bb.operator_token}
    return subprocess.run([sys.executable, "-m", "microcred_assessment", "admin", *args],
                          input=stdin, env=env, capture_output=True, text=True, timeout=60)


async def test_the_cli_onboards_suspends_and_reads_the_audit_log_of_the_running_stack(backbone):
    pid, did = f"cli-made-{tag()}", f"cli-def-{tag()}"
    run = lambda *a, stdin=None: asyncio.to_thread(cli, backbone, *a, stdin=stdin)  # noqa: E731
    made = await run("providers", "create", "-", stdin=json.dumps(
        provider_doc(pid, kind="indigenous_institute", jurisdiction="CA-MB")))
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["jurisdiction"] == "CA-MB"
    defined = await run("definitions", "create", "-", stdin=json.dumps(definition_doc(did, pid)))
    assert defined.returncode == 0, defined.stderr
    minted = await run("api-keys", "create", pid)
    key = json.loads(minted.stdout)["api_key"]
    assert key.startswith("mcp_")

    suspended = await run("providers", "suspend", pid, "--reason", "accreditation lapsed")
    assert json.loads(suspended.stdout)["status"] == "suspended"
    r = await submit(backbone, key, result(pid, did, passed=True))
    assert r.status_code == 403 and "accreditation lapsed" in r.json()["detail"]

    log = json.loads((await run("audit", "--provider", pid)).stdout)["entries"]
    actions = [e["action"] for e in log]
    assert {"provider.create", "definition.create", "api-key.create", "provider.suspend",
            "result.provider-suspended"} <= set(actions)
    assert all(key.split(".")[1] not in json.dumps(e) for e in log)  # never the secret
    again = await run("providers", "suspend", pid, "--reason", "twice")
    assert again.returncode != 0 and "already suspended" in again.stderr


async def test_the_cli_refuses_without_the_operator_token(backbone):
    env = {**os.environ, "MICROCRED_ASSESSMENT_URL": backbone.url("assessment"),
           "MICROCRED_OPERATOR_TOKEN": "not-the-token"}
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "microcred_assessment", "admin", "providers",
                         "list"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "operator token" in out.stderr
