"""Access: an operator gives a provider API keys and a Kafka principal; every change is
audited and announced, a secret is shown once; a caller without a valid key is refused and
the refusal says which key was tried and why."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from microcred_assessment.access import authn
from microcred_assessment.access import handlers as access
from microcred_assessment.access.domain import Principal, username_for
from microcred_assessment.access.kafka_admin import KafkaAdminError
from microcred_shared.auth import KeyVerifier
from microcred_shared.contract import topics
from microcred_shared.problems import Problem


async def test_a_new_api_key_authenticates_its_provider_and_is_announced_by_digest(kit):
    out = await access.create_api_key(kit.engine, "lakeshore-college", "operator")
    assert out["api_key"].startswith("mcp_")
    assert await KeyVerifier(kit.engine).provider_for(out["api_key"]) == "lakeshore-college"
    [announced] = await kit.outbox(topics.PROVIDER_API_KEYS)
    assert announced.body["key_id"] == out["key_id"]
    assert out["api_key"].split(".", 1)[1] not in str(announced.body)  # never the secret
    [entry] = await kit.audit("api-key.create")
    assert entry["details"] == {"subject": out["key_id"]}


async def test_no_key_is_minted_for_a_provider_not_in_the_catalogue(kit):
    with pytest.raises(Problem) as missing:
        await access.create_api_key(kit.engine, "nobody", "operator")
    assert missing.value.status == 404 and await kit.outbox() == []


async def test_a_rotated_key_stops_at_once_and_its_use_is_audited_as_revoked(kit):
    old = await access.create_api_key(kit.engine, "lakeshore-college", "operator")
    new = await access.rotate_api_key(kit.engine, "lakeshore-college", old["key_id"],
                                      "operator")
    assert new["revoked_key_id"] == old["key_id"]
    verifier = KeyVerifier(kit.engine)
    assert await verifier.provider_for(new["api_key"]) == "lakeshore-college"
    with pytest.raises(Problem) as refused:
        await authn.provider(kit.engine, verifier, old["api_key"], path="/v1/provider/profile")
    assert refused.value.status == 401
    [entry] = await kit.audit("auth.api-key")
    assert entry["provider_id"] == "lakeshore-college"
    assert f"API key {old['key_id']} was revoked at" in entry["reason"]
    assert entry["details"]["key_id"] == old["key_id"]
    with pytest.raises(Problem) as again:  # a key revoked once cannot be revoked again
        await access.revoke_api_key(kit.engine, "lakeshore-college", old["key_id"],
                                    "operator")
    assert again.value.status == 404


async def test_a_provider_key_on_an_operator_route_is_refused_and_names_the_provider(kit):
    key = await access.create_api_key(kit.engine, "lakeshore-college", "operator")
    with pytest.raises(Problem) as refused:
        await authn.operator(kit.engine, KeyVerifier(kit.engine), key["api_key"], "s3cret",
                             path="/v1/admin/providers", method="GET")
    assert refused.value.status == 401
    [entry] = await kit.audit("auth.operator")
    assert entry["actor"] == "provider:lakeshore-college"
    assert await authn.operator(kit.engine, KeyVerifier(kit.engine), "s3cret", "s3cret",
                                path="/", method="GET") == "operator"


class FakeBroker:
    """The broker side of KafkaAdmin: records what was asked, refuses when told to."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[str] = []
        self.refuse = refuse

    async def ensure_topics(self, provider_id: str) -> None:
        self.calls.append("topics")

    async def set_password(self, provider_id: str) -> Principal:
        if self.refuse:
            raise KafkaAdminError("SCRAM credentials refused")
        self.calls.append("password")
        return Principal(username_for(provider_id), "pw", topics.provider_results(provider_id))

    async def grant(self, provider_id: str) -> None:
        self.calls.append("grant")

    async def revoke_grants(self, provider_id: str) -> None:
        self.calls.append("revoke-grants")

    async def delete_user(self, provider_id: str) -> None:
        self.calls.append("delete-user")


async def test_a_kafka_principal_is_created_rotated_and_revoked_with_the_broker_first(kit):
    broker = FakeBroker()
    created = await access.change_principal(kit.engine, broker, "lakeshore-college",
                                            "operator", "create", bootstrap="kafka:9094")
    assert created["username"] == "provider-lakeshore-college"
    assert created["topic"] == topics.provider_results("lakeshore-college")
    assert created["bootstrap"] == "kafka:9094" and created["password"] == "pw"
    async with kit.engine.connect() as conn:
        shown = await access.credentials_of(conn, "lakeshore-college")
    assert shown["kafka_principal"]["username"] == "provider-lakeshore-college"
    assert "password" not in shown["kafka_principal"]
    await access.change_principal(kit.engine, broker, "lakeshore-college", "operator",
                                  "rotate", bootstrap=None)
    await access.change_principal(kit.engine, broker, "lakeshore-college", "operator",
                                  "revoke", bootstrap=None)
    assert broker.calls == ["topics", "password", "grant", "password", "revoke-grants",
                            "delete-user"]
    actions = [e["action"] for e in await kit.audit() if e["action"].startswith("kafka-")]
    assert actions == ["kafka-principal.create", "kafka-principal.rotate",
                       "kafka-principal.revoke"]
    async with kit.engine.connect() as conn:
        assert (await access.credentials_of(conn, "lakeshore-college"))[
            "kafka_principal"] is None


async def test_a_broker_refusal_records_nothing_and_is_a_502(kit):
    with pytest.raises(Problem) as refused:
        await access.change_principal(kit.engine, FakeBroker(refuse=True),
                                      "lakeshore-college", "operator", "create",
                                      bootstrap=None)
    assert refused.value.status == 502
    assert await kit.rows("SELECT * FROM kafka_principals") == []
    assert [e for e in await kit.audit() if e["action"].startswith("kafka-")] == []


class _KeyLookups:
    """The API-key lookups the engine's connections send to PostgreSQL."""

    def __init__(self, engine: Any) -> None:
        self.sent = 0
        sa.event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.sent += statement.startswith(
            "SELECT api_keys.provider_id, api_keys.secret_sha256")


async def test_requests_that_miss_the_key_cache_together_share_one_lookup(kit):
    """16 requests with one key arriving together at its first use, or at each expiry of
    its cached verdict, make one database lookup between them, not 16."""
    key = (await access.create_api_key(kit.engine, "lakeshore-college", "operator"))["api_key"]
    lookups = _KeyLookups(kit.engine)
    verifier = KeyVerifier(kit.engine, ttl=0.3)

    async def sixteen(token: str) -> list[str | None]:
        return list(await asyncio.gather(*(verifier.provider_for(token) for _ in range(16))))

    assert await sixteen(key) == ["lakeshore-college"] * 16
    assert lookups.sent == 1
    assert await sixteen(key) == ["lakeshore-college"] * 16  # cached
    assert lookups.sent == 1
    await asyncio.sleep(0.35)
    assert await sixteen(key) == ["lakeshore-college"] * 16  # expired: one lookup again
    assert lookups.sent == 2
    assert await sixteen(key + "x") == [None] * 16  # a wrong secret: refused, asked once
    assert lookups.sent == 3


async def test_a_failed_shared_key_lookup_fails_every_waiter_and_the_next_one_asks_again(kit):
    """The database out of reach during the lookup: every request waiting for it gets the
    error (each answers 503), nothing is cached, and the next request looks up anew."""
    key = (await access.create_api_key(kit.engine, "lakeshore-college", "operator"))["api_key"]
    attempts = 0

    class Down:
        def connect(self) -> Any:
            nonlocal attempts
            attempts += 1
            return self

        async def __aenter__(self) -> Any:
            await asyncio.sleep(0.01)
            raise ConnectionRefusedError("database down")

        async def __aexit__(self, *exc: Any) -> None:
            return None

    verifier = KeyVerifier(kit.engine)
    verifier._engine = Down()  # type: ignore[assignment]
    outcomes = await asyncio.gather(*(verifier.provider_for(key) for _ in range(16)),
                                    return_exceptions=True)
    assert all(isinstance(o, ConnectionRefusedError) for o in outcomes) and attempts == 1
    verifier._engine = kit.engine
    assert await verifier.provider_for(key) == "lakeshore-college"


async def test_a_key_forgotten_during_its_lookup_is_looked_up_again(kit):
    """This instance revoked a key while a lookup of it was in flight: the lookup read the
    key before the revocation, so its answer is not cached for later requests."""
    out = await access.create_api_key(kit.engine, "lakeshore-college", "operator")
    read = asyncio.Event()
    gate = asyncio.Event()

    class Stalling:
        """The real engine; a connection is given back only once the test opens `gate`."""

        def connect(self) -> Any:
            return self

        async def __aenter__(self) -> Any:
            self.cm = kit.engine.connect()
            return await self.cm.__aenter__()

        async def __aexit__(self, *exc: Any) -> None:
            await self.cm.__aexit__(*exc)
            read.set()
            await gate.wait()

    verifier = KeyVerifier(kit.engine)
    verifier._engine = Stalling()  # type: ignore[assignment]
    early = asyncio.ensure_future(verifier.provider_for(out["api_key"]))
    await read.wait()  # the key was read while still valid
    await access.revoke_api_key(kit.engine, "lakeshore-college", out["key_id"], "operator")
    verifier.forget()  # what the admin route does on this instance
    gate.set()
    assert await early == "lakeshore-college"  # asked before the revocation
    verifier._engine = kit.engine
    assert await verifier.provider_for(out["api_key"]) is None


async def test_made_up_keys_do_not_grow_the_key_cache_without_bound(kit, monkeypatch):
    """Refusals are cached too (a retried bad key costs no lookup), but a caller trying
    ever new keys cannot make the cache grow past its bound."""
    import microcred_shared.auth as auth

    monkeypatch.setattr(auth, "MAX_CACHED", 5)
    verifier = KeyVerifier(kit.engine)
    for n in range(12):
        assert await verifier.provider_for(f"mcp_{n:012x}.made-up") is None
        assert len(verifier._cache) <= 5
