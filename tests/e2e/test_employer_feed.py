"""Employers subscribe to the credentials learners chose to show them: signed webhooks with
retries, dead letters, a disabled endpoint and replays; a pull feed that resumes from
cursors; and privacy — nothing reaches an employer that its holder did not make visible.

Credentials are issued through the real pipeline. Visibility changes are published onto
Kafka as the registry publishes them (CloudEvents binary mode), which is the contract
notify's consumer is held to. The webhook receiver is a real HTTP server on loopback that
verifies signatures with the independent `standardwebhooks` library."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from microcred_devstack import free_port
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events import learner_key
from microcred_shared.contract.events_learners import CredentialVisibilityChanged
from microcred_testkit.backbone import (
    approved_employer,
    eventually,
    issue_over_http,
    learner,
)

pytestmark = pytest.mark.integration
SAFETY = ("lakeshore-college", "lakeshore-workplace-safety")
FORESTRY = ("coast-mountain-university", "cmu-sustainable-forestry")
SIGN_IN_LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
PASSING = {SAFETY[1]: {"passed": True}, FORESTRY[1]: {"rubric_level": "proficient"}}


class Receiver:
    """An employer's endpoint: verifies each request's Standard Webhooks signature, answers
    500 to the first `fail_first` attempts of each webhook-id (every attempt while the path
    is `failing`), and handles each webhook-id once however often it comes."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.fail_first: dict[str, int] = {}
        self.failing: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.handled: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                code = receiver.receive(self.path, dict(self.headers.items()), body)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def endpoint(self, fail_first: int = 0, failing: bool = False) -> str:
        path = f"/hooks/{uuid.uuid4().hex[:10]}"
        self.fail_first[path] = fail_first
        if failing:
            self.failing.add(path)
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        try:
            payload = Webhook(self.secrets[path]).verify(body, headers)
        except (KeyError, WebhookVerificationError):
            self.requests.append({"path": path, "verified": False})
            return 401
        wid = headers.get("webhook-id") or headers["Webhook-Id"]
        with self._lock:
            tries = sum(1 for r in self.requests if r.get("webhook_id") == wid) + 1
            code = 500 if path in self.failing or tries <= self.fail_first[path] else 200
            self.requests.append({"path": path, "verified": True, "webhook_id": wid,
                                  "code": code, "type": payload["type"]})
            if code == 200:
                self.handled.setdefault((path, wid), payload)
        return code

    def events(self, url: str, credential_id: str | None = None) -> list[dict[str, Any]]:
        path = url.split(str(self.server.server_port), 1)[1]
        return [p for (at, _), p in list(self.handled.items()) if at == path and (
            credential_id is None or p["data"]["credential_id"] == credential_id)]

    def attempts(self, webhook_id: str) -> list[int]:
        return [r["code"] for r in self.requests if r.get("webhook_id") == webhook_id]


@pytest.fixture(scope="module")
def receiver() -> Any:
    r = Receiver()
    yield r
    r.server.shutdown()


async def subscribe(bb: Any, key: str, receiver: Receiver | None = None, url: str | None = None,
                    **filters: list[str]) -> dict[str, Any]:
    async with bb.http("notify", key) as client:
        r = await client.post("/v1/employer/subscriptions",
                              json={"filters": filters, "webhook_url": url})
    assert r.status_code == 201, r.text
    if receiver and url:
        receiver.secrets[url.split(str(receiver.server.server_port), 1)[1]] = r.json()["secret"]
    return r.json()


async def issued(bb: Any, what: tuple[str, str], who: Any) -> dict[str, Any]:
    """A credential issued through the whole pipeline, once the registry serves it."""
    cred = await issue_over_http(bb, *what, who, **PASSING[what[1]])
    return {**cred, "learner_key": learner_key(who.email), "provider": what[0],
            "definition": what[1]}


class Visibility:
    """Publishes CredentialVisibilityChanged as the registry does when a learner chooses: with
    the credential's definition and signed document when the choice lets some employer see
    it (ADR 10)."""

    def __init__(self, bb: Any) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bb.bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=5)
        self.clock = datetime.now(UTC)

    async def __aenter__(self) -> Visibility:
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def change(self, cred: dict[str, Any], visibility: str, shared_with: tuple = (),
                     *, wait: bool = True) -> Any:
        self.clock += timedelta(milliseconds=1)  # each choice later than the one before
        exposed = visibility in ("employers", "public") or bool(shared_with)
        event = CredentialVisibilityChanged(
            credential_id=cred["id"], learner_key=cred["learner_key"],
            provider_id=cred["provider"], visibility=visibility,
            shared_with=list(shared_with), changed_at=self.clock,
            definition_id=cred["definition"] if exposed else None,
            credential=cred["credential"] if exposed else None)
        headers = new_envelope(event, "/microcred/registry").headers()
        future = await self.producer.send(topics.CREDENTIAL_VISIBILITY, encode(event),
                                          key=event.key(), headers=headers)
        return await future if wait else future


async def issuer_changes(bb: Any, cred: dict[str, Any], action: str) -> None:
    async with bb.http("issuance", bb.api_keys[cred["provider"]]) as client:
        r = await client.post(f"/v1/credentials/{cred['id']}/status",
                              json={"action": action, "reason": "issued in error"})
    assert r.status_code == 200, r.text


async def audit(bb: Any, **query: str) -> dict[str, Any]:
    async with bb.http("notify", bb.operator_token) as client:
        r = await client.get("/v1/admin/deliveries", params=query)
    assert r.status_code == 200, r.text
    return r.json()


async def feed_page(bb: Any, key: str, cursor: str | None, limit: int) -> dict[str, Any]:
    async with bb.http("notify", key) as client:
        while True:
            r = await client.get("/v1/employer/feed", params={"limit": limit, **(
                {"cursor": cursor} if cursor else {})})
            if r.status_code != 429:  # a well-behaved client waits as told
                assert r.status_code == 200, r.text
                return r.json()
            await asyncio.sleep(float(r.headers["retry-after"]))


async def whole_feed(bb: Any, key: str) -> list[dict[str, Any]]:
    entries, cursor = [], None
    while True:
        page = await feed_page(bb, key, cursor, 500)
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return entries


async def test_a_subscriber_gets_a_shared_credential_signed_after_retries_and_then_its_revocation(
        backbone: Any, receiver: Receiver) -> None:
    employer_id, key = await approved_employer(backbone, "acme-retry Inc.")
    url = receiver.endpoint(fail_first=2)
    await subscribe(backbone, key, receiver, url, definition_ids=[SAFETY[1]])
    cred = await issued(backbone, SAFETY, learner("emp-retry"))
    async with Visibility(backbone) as vis:
        await vis.change(cred, "employers")
    got = await eventually(lambda: _async(receiver.events(url, cred["id"])), lambda e: e)
    assert [e["type"] for e in got] == ["credential.shared"]
    assert got[0]["data"]["credential"] == cred["credential"]  # the signed document itself
    assert got[0]["data"]["jurisdiction"] == "CA-ON"

    await issuer_changes(backbone, cred, "revoke")
    got = await eventually(lambda: _async(receiver.events(url, cred["id"])),
                           lambda e: len(e) >= 2)
    assert [e["type"] for e in got] == ["credential.shared", "credential.status.changed"]
    assert got[1]["data"]["status"] == "revoked" and "credential" not in got[1]["data"]

    record = await audit(backbone, employer=employer_id, credential=cred["id"])
    shared = next(d for d in record["deliveries"] if d["event_type"] == "credential.shared")
    assert shared["status"] == "delivered" and shared["attempts"] == 3
    assert [a["status_code"] for a in shared["attempt_log"]] == [500, 500, 200]
    # Three requests carried the same webhook-id; the receiver handled it once.
    assert receiver.attempts(shared["webhook_id"]) == [500, 500, 200]
    assert Counter(w for (_, w) in receiver.handled)[shared["webhook_id"]] == 1
    assert all(r["verified"] for r in receiver.requests if r.get("webhook_id"))


async def _async(value: Any) -> Any:
    return value


async def test_a_private_credential_never_reaches_any_employer(backbone: Any,
                                                                receiver: Receiver) -> None:
    employer_id, key = await approved_employer(backbone, "acme-privacy Inc.")
    url = receiver.endpoint()
    await subscribe(backbone, key, receiver, url)  # no filter: everything it may see
    holder = learner("emp-private")
    private = await issued(backbone, FORESTRY, holder)
    marker = await issued(backbone, SAFETY, holder)
    async with Visibility(backbone) as vis:
        await vis.change(private, "link")  # anyone with the link: not employers
        await vis.change(private, "private")
        await vis.change(marker, "public")  # same learner, same partition: applied after
    await eventually(lambda: _async(receiver.events(url, marker["id"])), lambda e: e)
    # Revocations: these definitions are not suspendable (ADR 8).
    await issuer_changes(backbone, private, "revoke")
    await issuer_changes(backbone, marker, "revoke")
    await eventually(lambda: _async(receiver.events(url, marker["id"])), lambda e: len(e) >= 2)

    assert receiver.events(url, private["id"]) == []
    assert not [e for e in await whole_feed(backbone, key)
                if e["data"]["credential_id"] == private["id"]]
    trail = await audit(backbone, credential=private["id"])
    assert trail["deliveries"] == [] and trail["feed"] == []


async def test_notify_keeps_no_document_of_a_private_credential_until_its_holder_shares_it(
        backbone: Any, receiver: Receiver) -> None:
    """Through the real registry: a new credential is private, notify holds no copy of its
    document; the holder shares it with an employer on the wallet and that employer's
    webhook gets `credential.shared` with the signed document, exactly as issued."""
    employer_id, key = await approved_employer(backbone, "acme-wallet Inc.")
    url = receiver.endpoint()
    await subscribe(backbone, key, receiver, url, jurisdictions=["CA-QC"])  # a direct share
    holder = learner(f"emp-wallet-{uuid.uuid4().hex[:6]}")                 # ignores filters
    cred = await issued(backbone, SAFETY, holder)
    # notify has applied the issue by now if it ever will: the registry serves it and the
    # same credential's mail went out (both after credentials.issued was published).
    await eventually(lambda: _async(backbone.smtp.to(holder.email)), lambda m: m)
    documents = await backbone.scalar(
        "notify", "SELECT count(*) FROM employer_credential_view WHERE credential_id = $1 "
        "AND document IS NOT NULL", uuid.UUID(cred["id"]))
    assert documents == 0

    token = await session_token(backbone, holder)
    async with backbone.http("registry", token) as client:
        await eventually(lambda: client.get("/v1/learner/employers"),
                         lambda r: employer_id in {e["id"] for e in r.json()["employers"]})
        r = await client.put(f"/v1/learner/credentials/{cred['id']}/employers/{employer_id}")
        assert r.status_code == 200 and r.json()["shared_with"] == [employer_id], r.text
    got = await eventually(lambda: _async(receiver.events(url, cred["id"])), lambda e: e)
    assert [e["type"] for e in got] == ["credential.shared"]
    assert got[0]["data"]["credential"] == cred["credential"]  # the signed document itself
    assert (got[0]["data"]["definition_id"], got[0]["data"]["jurisdiction"]) == (
        SAFETY[1], "CA-ON")


async def session_token(bb: Any, who: Any) -> str:
    """The learner signs in on the registry with the link notify mails: a bearer session."""
    async with bb.http("registry") as client:
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        mails = await eventually(lambda: _async([
            m for m in bb.smtp.to(who.email) if "/learner/sign-in/" in m.get_content()]),
            lambda m: m)
        link = SIGN_IN_LINK.search(mails[-1].get_content())
        assert link, mails[-1].get_content()
        r = await client.post(link.group(0).split(bb.url("registry"), 1)[1],
                              headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_unsharing_sends_a_notice_without_the_document_and_stops_later_deliveries(
        backbone: Any, receiver: Receiver) -> None:
    employer_id, key = await approved_employer(backbone, "acme-unshare Inc.")
    url = receiver.endpoint()
    await subscribe(backbone, key, receiver, url, jurisdictions=["CA-QC"])  # a direct share
    holder = learner("emp-unshare")                                        # ignores filters
    cred = await issued(backbone, SAFETY, holder)
    still = await issued(backbone, FORESTRY, holder)
    async with Visibility(backbone) as vis:
        await vis.change(cred, "private", [employer_id])
        await vis.change(still, "private", [employer_id])
        await eventually(lambda: _async(receiver.events(url)), lambda e: len(e) >= 2)
        await vis.change(cred, "private", [])
    notice = await eventually(lambda: _async(receiver.events(url, cred["id"])),
                              lambda e: len(e) >= 2)
    assert [e["type"] for e in notice] == ["credential.shared", "credential.unshared"]
    assert set(notice[1]["data"]) == {"credential_id", "credential_url", "unshared_at"}

    await issuer_changes(backbone, cred, "revoke")
    await issuer_changes(backbone, still, "revoke")  # same partition, after the first one
    await eventually(lambda: _async(receiver.events(url, still["id"])), lambda e: len(e) >= 2)
    assert [e["type"] for e in receiver.events(url, cred["id"])] == [
        "credential.shared", "credential.unshared"]
    feed = [e for e in await whole_feed(backbone, key) if e["data"]["credential_id"] == cred["id"]]
    assert [e["type"] for e in feed] == ["credential.shared", "credential.unshared"]
    assert feed[0].get("redacted") and "credential" not in feed[0]["data"]
    trail = await audit(backbone, employer=employer_id, credential=cred["id"])
    assert sorted((d["event_type"], d["status"]) for d in trail["deliveries"]) == [
        ("credential.shared", "delivered"), ("credential.unshared", "delivered")]


async def test_a_failing_endpoint_is_dead_lettered_disabled_and_replayed_by_an_operator(
        backbone: Any, receiver: Receiver) -> None:
    employer_id, key = await approved_employer(backbone, "acme-down Inc.")
    url = receiver.endpoint(failing=True)
    sub = await subscribe(backbone, key, receiver, url)
    holder = learner("emp-down")
    creds = [await issued(backbone, SAFETY, holder), await issued(backbone, FORESTRY, holder)]
    since = datetime.now(UTC)
    async with Visibility(backbone) as vis:
        for cred in creds:
            await vis.change(cred, "private", [employer_id])

    async def outcomes() -> list[str]:
        return [d["status"] for d in (await audit(backbone, employer=employer_id))["deliveries"]]
    assert await eventually(outcomes, lambda s: s == ["failed", "failed"]) == ["failed", "failed"]
    async with backbone.http("notify", key) as client:
        state = (await client.get(f"/v1/employer/subscriptions/{sub['id']}")).json()
    assert state["status"] == "disabled" and "in a row" in state["disabled_reason"]
    failed = (await audit(backbone, employer=employer_id))["deliveries"]
    assert all(d["attempts"] == 4 for d in failed)
    letters = await dead_letters({d["webhook_id"] for d in failed}, backbone.bootstrap)
    assert letters == {d["webhook_id"] for d in failed}

    receiver.failing.discard(url.split(str(receiver.server.server_port), 1)[1])
    async with backbone.http("notify", key) as client:
        assert (await client.post(f"/v1/employer/subscriptions/{sub['id']}/enable")
                ).json()["status"] == "active"
    async with backbone.http("notify", backbone.operator_token) as client:
        r = await client.post("/v1/admin/deliveries/replay", json={
            "employer_id": employer_id, "since": since.isoformat(),
            "until": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()})
        assert r.status_code == 202 and len(r.json()["replayed"]) == 2
    await eventually(lambda: _async(receiver.events(url)), lambda e: len(e) >= 2)
    async with backbone.http("notify", backbone.operator_token) as client:
        again = await client.post(f"/v1/admin/deliveries/{r.json()['replayed'][0]}/replay")
        assert again.status_code == 202
    ids = {d["webhook_id"] for d in failed}
    await eventually(lambda: _async(sum(receiver.attempts(w).count(200) for w in ids)),
                     lambda n: n >= 3)
    assert {w for (_, w) in receiver.handled if w in ids} == ids  # each handled once


async def dead_letters(webhook_ids: set[str], bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(topics.dlq(topics.NOTIFICATIONS), bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: set[str] = set()
    try:
        async def poll() -> set[str]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for rec in records:
                    wid = dict(rec.headers).get("webhook-id", b"").decode()
                    if wid in webhook_ids and json.loads(rec.value)["type"]:
                        found.add(wid)
            return found
        return await eventually(poll, lambda f: f >= webhook_ids)
    finally:
        await consumer.stop()


async def test_the_pull_feed_of_a_thousand_events_resumes_from_cursors_without_gap_or_repeat(
        backbone: Any) -> None:
    employer_id, key = await approved_employer(backbone, "acme-feed Inc.")
    await subscribe(backbone, key)  # pull feed only
    creds = [await issued(backbone, what, learner(f"emp-feed-{n}"))
             for n, what in enumerate((SAFETY, FORESTRY, SAFETY, FORESTRY))]
    toggles = [(cred, n) for n in range(250) for cred in creds]  # 1,000 changes, in order
    mine = {c["id"] for c in creds}
    seen: list[dict[str, Any]] = []
    cursor: str | None = None

    async def read_until(count: int) -> None:
        nonlocal cursor
        while len([e for e in seen if e["data"]["credential_id"] in mine]) < count:
            page = await feed_page(backbone, key, cursor, 97)
            seen.extend(page["entries"])
            cursor = page["next_cursor"]
            if not page["has_more"]:
                await asyncio.sleep(0.2)  # caught up with the writers: poll again

    async def publish(vis: Visibility, batch: list[tuple[dict[str, Any], int]]) -> None:
        futures = [await vis.change(c, "private", [employer_id] if n % 2 == 0 else [],
                                    wait=False) for c, n in batch]
        await asyncio.gather(*futures)

    async with Visibility(backbone) as vis:
        await publish(vis, toggles[:600])
        await read_until(250)  # stop mid-way, keep only the cursor
        await asyncio.gather(publish(vis, toggles[600:]), read_until(1000))

    ours = [e for e in seen if e["data"]["credential_id"] in mine]
    assert len(ours) == 1000 and len({e["id"] for e in seen}) == len(seen)
    for cred in creds:
        kinds = [e["type"] for e in ours if e["data"]["credential_id"] == cred["id"]]
        assert kinds == ["credential.shared", "credential.unshared"] * 125
    # One pass from the start gives the same entries in the same order.
    assert [e["id"] for e in await whole_feed(backbone, key)
            if e["data"]["credential_id"] in mine] == [e["id"] for e in ours]


async def test_the_feed_answers_429_with_retry_after_when_an_employer_exceeds_its_rate(
        backbone: Any) -> None:
    _, key = await approved_employer(backbone, "acme-greedy Inc.")
    async with backbone.http("notify", key) as client:
        answers = await asyncio.gather(*(client.get("/v1/employer/feed") for _ in range(80)))
    limited = [r for r in answers if r.status_code == 429]
    assert limited and any(r.status_code == 200 for r in answers)
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].headers["content-type"] == "application/problem+json"


async def test_only_an_approved_employer_may_subscribe_and_only_to_https_endpoints(
        backbone: Any) -> None:
    employer_id, key = await approved_employer(backbone, "acme-gate Inc.")
    for bad in ("http://jobs.example/hook", "https://10.1.2.3/hook", "https://localhost/x"):
        async with backbone.http("notify", key) as client:
            r = await client.post("/v1/employer/subscriptions", json={"webhook_url": bad})
        assert r.status_code == 422, bad
    async with backbone.http("notify", backbone.operator_token) as client:
        assert (await client.post(f"/v1/admin/employers/{employer_id}/suspend")).status_code == 200
    async with backbone.http("notify", key) as client:
        r = await eventually(lambda: client.get("/v1/employer/feed"),
                             lambda r: r.status_code == 401)
    assert r.status_code == 401
    async with backbone.http("notify") as client:
        assert (await client.get("/v1/admin/deliveries")).status_code == 401
