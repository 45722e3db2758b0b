"""`python -m microcred_devstack demo`: publish a realistic batch of assessment results to the
running backbone (`up` first) and show what happened.

Four providers of different kinds in three provinces publish over HTTP and Kafka (one as its
own SCRAM principal, which also tries a wrong password and a write outside its ACLs: both
refused by the broker and shown from the audit log): passing and failing results, one
resubmission, three kinds of bad input, and the two components of a stack that spans two
providers (issuance then awards the stacked credential). The demo waits for the
credentials, then prints them with their live verification, the learner mail, what was
refused and why, and one whole trace.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from microcred_shared.catalog import load_catalog
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentResultSubmitted, Learner, learner_key
from microcred_testkit.backbone import ProviderPublisher, provider_headers, result
from microcred_testkit.providers import SaslPublisher

from . import wallet_verifier
from .refusals import Refusal, expect_refusal
from .traces import read_trace, tree_lines

# Wide enough for URLs when the output is a pipe or a CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)


def _learner(tag: str, given: str, family: str, lang: str = "en") -> Learner:
    return Learner(id=f"{given.lower()}-{tag}", email=f"{given.lower()}.{family.lower()}+{tag}"
                   "@learners.example", given_name=given, family_name=family,
                   language=lang)  # type: ignore[arg-type]


def batch(tag: str) -> list[tuple[str, AssessmentResultSubmitted, str]]:
    """(channel, result, what we expect) — a morning's worth of results."""
    amara = _learner(tag, "Amara", "Okafor")
    liam = _learner(tag, "Liam", "Tremblay", "fr")
    chloe = _learner(tag, "Chloé", "Gagnon", "fr")
    wei = _learner(tag, "Wei", "Chen")
    noah = _learner(tag, "Noah", "Whitehorse")
    priya = _learner(tag, "Priya", "Singh")
    da, ws = "lakeshore-data-analytics-fundamentals", "lakeshore-workplace-safety"
    return [
        ("http", result("lakeshore-college", da, who=amara, score=91), "credential"),
        ("http", result("lakeshore-college", ws, who=amara, passed=True), "credential"),
        ("http", result("lakeshore-college", da, who=priya, score=64), "not achieved"),
        ("kafka", result("coast-mountain-university", "cmu-sustainable-forestry", who=wei,
                         rubric_level="exemplary"), "credential"),
        ("kafka", result("coast-mountain-university", "cmu-sustainable-forestry", who=noah,
                         rubric_level="developing"), "not achieved"),
        ("http", result("cegep-riviere-du-nord", "cegep-soins-premiers-secours", who=liam,
                        score=88), "credential"),
        ("http", result("cegep-riviere-du-nord", "cegep-soins-premiers-secours", who=chloe,
                        score=97), "credential"),
        ("sasl", result("ontario-construction-sector-council", "ocsc-site-supervisor-readiness",
                        who=noah, passed=True), "credential"),
        # Noah's second component, from another provider: the stack below is awarded.
        ("http", result("lakeshore-college", da, who=noah, score=85), "credential"),
    ]


# A stack across two providers (deploy/seed): awarded by issuance, never submitted.
STACK = "ocsc-digital-skills-construction-supervisors"


SASL_PROVIDER = "ontario-construction-sector-council"  # publishes as its own SCRAM user


async def _principal(assessment: str, env: dict[str, str], provider: str,
                     manifest: dict[str, Any]) -> dict[str, Any]:
    """The operator gives the provider a Kafka principal (a new password each run)."""
    async with httpx.AsyncClient(base_url=assessment, timeout=60, headers={
            "authorization": f"Bearer {env['MICROCRED_OPERATOR_TOKEN']}"}) as http:
        r = await http.post(f"/v1/admin/providers/{provider}/kafka-principal")
        r.raise_for_status()
    return {**r.json(), "bootstrap": manifest["kafka"]["sasl_bootstrap"]}


async def _publish_sasl(p: dict[str, Any], res: AssessmentResultSubmitted) -> list[Refusal]:
    """The provider's own publish, then two attempts the broker must refuse: a write to the
    shared results topic, which its ACLs do not allow, and a login with a wrong password.
    Each refusal is one explained line, not the Kafka client's error log."""
    user = p["username"]
    async with SaslPublisher(p["bootstrap"], user, p["password"], p["topic"]) as k:
        await k.publish(res)

    async def outside_acls() -> None:
        async with SaslPublisher(p["bootstrap"], user, p["password"], p["topic"]) as k:
            await k.publish(res, topic=topics.RESULTS)

    async def old_password() -> None:
        async with SaslPublisher(p["bootstrap"], user, "an-old-password", p["topic"]):
            pass

    return [await expect_refusal(f"{user} writing to {topics.RESULTS}, outside its ACLs",
                                 outside_acls),
            await expect_refusal(f"{user} logging in with an old password", old_password)]


async def _broker_refusals(assessment: str, env: dict[str, str], p: dict[str, Any],
                           since: datetime) -> list[tuple[str, str, str]]:
    """The broker's refusals, as the operator audit log has them (ADR 13)."""
    params = {"provider": SASL_PROVIDER, "since": since.isoformat(), "outcome": "refused"}
    entries: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=assessment, timeout=10, headers={
            "authorization": f"Bearer {env['MICROCRED_OPERATOR_TOKEN']}"}) as http:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            entries = [e for e in (await http.get("/v1/admin/audit", params=params)).json()
                       ["entries"] if e["action"].startswith("kafka.")]
            if {e["action"] for e in entries} >= {"kafka.authentication", "kafka.acl-denied"}:
                break
            await asyncio.sleep(0.5)
    firsts: dict[str, dict[str, Any]] = {}
    for e in sorted(entries, key=lambda e: e["recorded_at"]):
        firsts.setdefault(e["action"], e)
    return [(f"kafka sasl ({p['username']})", f"broker: {e['action']}", e["reason"])
            for e in firsts.values()]


def mint_key(env: dict[str, str], provider: str) -> str:
    out = subprocess.run([sys.executable, "-m", "microcred_assessment", "keys", "create",
                          provider], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


async def run(state_dir: Path) -> int:
    manifest = json.loads((state_dir / "stack.json").read_text())
    env: dict[str, str] = manifest["env"]
    urls = {n: s["url"] for n, s in manifest["services"].items()}
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    catalog = load_catalog(env["MICROCRED_SEED_FILE"])
    tag = uuid.uuid4().hex[:6]
    items = batch(tag)
    providers = sorted({r.provider_id for _, r, _ in items})
    keys = {p: mint_key(env, p) for p in providers}
    await asyncio.sleep(1.0)  # the new keys reach the other services' projections
    mail_index = state_dir / "mail" / "index.jsonl"
    mail_before = _lines(mail_index)
    refused: list[tuple[str, str, str]] = []
    deliberate: list[Refusal] = []
    trace_id = None

    console.rule(f"[bold]microcred demo[/] — batch {tag}")
    started = datetime.now(UTC)
    sasl = await _principal(urls["assessment"], env, SASL_PROVIDER, manifest)
    async with httpx.AsyncClient(timeout=30) as http, ProviderPublisher(bootstrap) as kafka:
        for channel, res, _ in items:
            if channel == "sasl":
                deliberate += await _publish_sasl(sasl, res)
            elif channel == "http":
                r = await http.post(f"{urls['assessment']}/v1/assessment-results",
                                    content=res.model_dump_json(), headers={
                                        "authorization": f"Bearer {keys[res.provider_id]}",
                                        "content-type": "application/json"})
                r.raise_for_status()
                trace_id = trace_id or r.json()["trace_id"]
            else:
                await kafka.publish(res)
        # A provider retries a result it already sent: one credential, not two.
        channel, dup, _ = items[0]
        auth = {"authorization": f"Bearer {keys[dup.provider_id]}"}
        await http.post(f"{urls['assessment']}/v1/assessment-results",
                        content=dup.model_dump_json(),
                        headers={**auth, "content-type": "application/json"})
        # Bad input over HTTP: refused at once with problem details.
        bad = items[0][1].model_copy(update={"score": 140, "result_id": f"bad-{tag}"})
        r = await http.post(f"{urls['assessment']}/v1/assessment-results",
                            content=bad.model_dump_json(), headers={
                                "authorization": f"Bearer {keys[bad.provider_id]}",
                                "content-type": "application/json"})
        refused.append(("http", f"{r.status_code} {r.json()['title']}", r.json()["detail"]))
        # Bad input over Kafka: dead-lettered with the reason; the stream goes on.
        await kafka.publish_raw(b'{"provider_id": "lakeshore-college", "score": ',
                                provider_headers(items[0][1]), key=f"demo-{tag}".encode())
        forged = items[5][1].model_copy(update={"result_id": f"forged-{tag}"})
        await kafka.publish(forged, source="/providers/lakeshore-college")

    _show_deliberate(deliberate)
    expected = [r for _, r, outcome in items if outcome == "credential"]
    expected.append(SimpleNamespace(learner=items[-1][1].learner, definition_id=STACK))
    console.print(f"published {len(items) + 3} results from {len(providers)} providers "
                  f"in {len({catalog.provider(p).jurisdiction for p in providers})} provinces; "
                  "waiting for the backbone...")
    # The registry is https with this stack's own CA (did:web, ADR 22): trusted explicitly.
    trust = ssl.create_default_context(cafile=manifest["tls"]["ca"])
    creds = await _wait_for_credentials(urls["registry"], env["MICROCRED_OPERATOR_TOKEN"],
                                        expected, trust)
    await _change_statuses(urls, keys, env["MICROCRED_OPERATOR_TOKEN"], creds, trust)
    await _show_credentials(urls["registry"], env["MICROCRED_OPERATOR_TOKEN"], creds, catalog,
                            trust, ca_file=manifest["tls"]["ca"])
    for c in creds:
        if c["credential"].get("components"):
            console.print(f"Stacked credential [bold]{c['title']}[/] for "
                          f"{c['credential']['credentialSubject']['name']}, issued by "
                          f"{c['credential']['issuer']['name']} from "
                          f"{len(c['credential']['components'])} components of two providers.")
    async with httpx.AsyncClient(timeout=10, headers=auth) as http:
        seen = (await http.get(f"{urls['assessment']}/v1/assessment-results/"
                               f"{dup.result_id}")).json()
    twins = [c for c in creds if c["credential"]["credentialSubject"]["name"] ==
             dup.learner.full_name and c["title"] == catalog.definition(dup.definition_id)
             .title.en]
    console.print(f"Resubmitted result {dup.result_id}: submitted {seen.get('submissions')} "
                  f"times, {len(twins)} credential.")
    _show_decisions(items)
    await asyncio.sleep(1.5)
    _show_mail(_lines(mail_index)[len(mail_before):], mail_index.parent)
    refused += await _dead_letters(bootstrap, tag)
    refused += await _broker_refusals(urls["assessment"], env, sasl, started)
    _show_refused(refused)
    _show_trace(state_dir, trace_id)
    ok = len(creds) == len(expected) and all(r.refused for r in deliberate)
    console.rule("[green]done[/]" if ok else "[red]some credentials are missing[/]")
    return 0 if ok else 1


async def _wait_for_credentials(registry: str, token: str, expected: list[Any],
                                trust: ssl.SSLContext,
                                timeout: float = 90) -> list[dict[str, Any]]:  # noqa: ASYNC109
    wanted = {(r.learner.email, r.definition_id) for r in expected}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=registry, timeout=10, verify=trust,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for email in {e for e, _ in wanted}:
                body = (await client.get(f"/v1/learners/{learner_key(email)}/credentials")).json()
                for c in body["credentials"]:
                    ach = c["credential"]["credentialSubject"]["achievement"]["id"]
                    for e, d in wanted:
                        if e == email and f"/achievements/{d}/" in ach:
                            found[(e, d)] = c
            await asyncio.sleep(0.5)
    return list(found.values())


async def _change_statuses(urls: dict[str, str], keys: dict[str, str], token: str,
                           creds: list[dict[str, Any]], trust: ssl.SSLContext) -> None:
    """Amara's provider revokes her safety credential and the sector council suspends
    Noah's site supervisor credential (a suspendable definition, ADR 8: his stack made of it
    is suspended with it), so both verifiers are seen on more than valid credentials; waits
    until the registry serves the new lists (they reach it through Kafka). A suspension of
    a credential whose definition is not suspendable is refused: shown too."""
    changes = {("Amara Okafor", "Workplace Health and Safety Awareness"): "revoke",
               ("Noah Whitehorse", "Construction Site Supervisor Readiness"): "suspend"}
    picked = [(c, changes[(c["credential"]["credentialSubject"]["name"], c["title"])])
              for c in creds
              if (c["credential"]["credentialSubject"]["name"], c["title"]) in changes]
    async with httpx.AsyncClient(base_url=urls["issuance"], timeout=30) as http:
        for c, action in picked:
            r = await http.post(f"/v1/credentials/{c['id']}/status",
                                json={"action": action, "reason": "demo"},
                                headers={"authorization": f"Bearer {keys[c['provider']]}"})
            r.raise_for_status()
        plain = next((c for c in creds if c["title"] == "First Aid in Care Settings"), None)
        if plain is not None:
            r = await http.post(f"/v1/credentials/{plain['id']}/status",
                                json={"action": "suspend", "reason": "demo"},
                                headers={"authorization": f"Bearer {keys[plain['provider']]}"})
            console.print(f"{plain['provider']} tries to suspend {plain['title']} of "
                          f"{plain['credential']['credentialSubject']['name']}: "
                          f"{r.status_code} {r.json().get('detail', '')}")
    wanted = {c["id"]: "revoked" if a == "revoke" else "suspended" for c, a in picked}
    async with httpx.AsyncClient(base_url=urls["registry"], timeout=10, verify=trust,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        deadline = time.monotonic() + 30
        while wanted and time.monotonic() < deadline:
            for cid, status in list(wanted.items()):
                v = (await client.get(f"/v1/credentials/{cid}/verification")).json()
                if v.get("status") == status:
                    del wanted[cid]
            await asyncio.sleep(0.5)
    for c, action in picked:
        console.print(f"{c['provider']} {action}s {c['title']} of "
                      f"{c['credential']['credentialSubject']['name']}.")


async def _show_credentials(registry: str, token: str, creds: list[dict[str, Any]],
                            catalog: Any, trust: ssl.SSLContext, *, ca_file: str) -> None:
    table = Table(title="Credentials issued, signed and registered")
    for col in ("learner", "credential", "awarding body", "province", "verification", "URL"):
        table.add_column(col, overflow="fold")
    ours: list[str] = []
    # New credentials are private (ADR 9): the operator reads them.
    async with httpx.AsyncClient(base_url=registry, timeout=10, verify=trust,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        for c in creds:
            doc = c["credential"]
            v = (await client.get(f"/v1/credentials/{c['id']}/verification")).json()
            verdict = "[green]valid[/]" if v["verified"] else f"[red]{v['status']}[/]"
            ours.append(verdict)
            table.add_row(doc["credentialSubject"]["name"], c["title"], doc["issuer"]["name"],
                          doc["issuer"]["address"]["addressRegion"],
                          f"{verdict} ({doc['proof'][0]['cryptosuite']})", c["url"])
        # The wallets name our trust list this way (ADR 26).
        registries = (await client.get("/trust/known-registries.json")).json()
    console.print(table)
    documents = [c["credential"] for c in creds]
    theirs, note = await asyncio.to_thread(
        wallet_verifier.verdicts, documents, ca_file=ca_file, registries=registries)
    console.print(wallet_verifier.side_by_side([
        wallet_verifier.Row(d["credentialSubject"]["name"], c["title"],
                            wallet_verifier.suite_of(d), mine, core)
        for c, d, mine, core in zip(creds, documents, ours, theirs, strict=True)], note))


def _show_decisions(items: list[tuple[str, AssessmentResultSubmitted, str]]) -> None:
    table = Table(title="Results that did not achieve the credential (decided, nothing issued)")
    for col in ("learner", "provider", "definition", "result"):
        table.add_column(col)
    for _, r, outcome in items:
        if outcome == "not achieved":
            table.add_row(r.learner.full_name, r.provider_id, r.definition_id,
                          str(r.score if r.score is not None else r.rubric_level))
    console.print(table)


def _show_mail(lines: list[str], folder: Path) -> None:
    table = Table(title=f"Learner e-mail sent (kept in {folder})")
    table.add_column("to")
    table.add_column("subject")
    for line in lines:
        mail = json.loads(line)
        table.add_row(", ".join(mail["to"]), mail["subject"])
    console.print(table)


async def _dead_letters(bootstrap: str, tag: str) -> list[tuple[str, str, str]]:
    consumer = AIOKafkaConsumer(topics.dlq(topics.RESULTS), bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(out) < 2:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in records:
                    value, key = rec.value or b"", rec.key or b""
                    if tag.encode() in value or tag.encode() in key:
                        headers = {k: v.decode(errors="replace") for k, v in rec.headers}
                        out.append(("kafka", f"dead letter on {rec.topic}",
                                    headers.get("dlq_reason", "?")))
    finally:
        await consumer.stop()
    return out


def _show_deliberate(attempts: list[Refusal]) -> None:
    console.print("The provider on Kafka also tried two things the broker must refuse:")
    for r in attempts:
        console.print(f"  [green]{r.line}[/]" if r.refused else f"  [red]{r.line}[/]",
                      highlight=False)


def _show_refused(rows: list[tuple[str, str, str]]) -> None:
    table = Table(title="Refused input (nothing else lost)")
    for col in ("channel", "outcome", "reason"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _show_trace(state_dir: Path, trace_id: str | None) -> None:
    if not trace_id:
        return
    spans = read_trace(state_dir / "traces.jsonl", trace_id)
    services = sorted({s["service"] for s in spans})
    console.print(f"\n[bold]One trace for the first result[/]: {trace_id} — {len(spans)} spans "
                  f"across {', '.join(services) or 'no service yet'}")
    for line in tree_lines(spans)[:40]:
        console.print("  " + line, highlight=False)
    console.print(f"  (again: uv run python -m microcred_devstack trace {trace_id})")


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
