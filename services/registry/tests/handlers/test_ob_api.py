"""The Open Badges 3.0 API's use cases on a real database (ADR 30): registration, the
authorization code with PKCE and its refusals (wrong verifier, wrong redirect URI, a code
expired, replayed or another client's), refresh-token rotation and reuse, revocation,
scopes, paging, the backpack (a credential from elsewhere verified before it is kept, ours
only for its holder) and the profile."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from microcred_registry.ob_api import domain
from microcred_registry.ob_api.domain import ApiError, OAuthError
from microcred_registry.ob_api.handlers import Lifetimes, ObApi, UnknownClient
from microcred_registry.verification.handlers import verify_document
from microcred_shared.contract.events import CredentialIssued, learner_key
from microcred_shared.vc import keys, proofs
from microcred_testkit.vc_examples import example_credential

BASE = "https://registry.test"
ADA, BOB = learner_key("ada@learners.example"), learner_key("bob@learners.example")
CALLBACK = "https://host.example/ob/callback"
ALL = " ".join([*domain.SCOPES, domain.OFFLINE])
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
LIFETIMES = Lifetimes(code=timedelta(minutes=2), access=timedelta(hours=1),
                      refresh=timedelta(days=30))


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def basic(client: dict[str, Any]) -> str:
    pair = f"{client['client_id']}:{client['client_secret']}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def foreign_credential(n: int = 1) -> dict[str, Any]:
    """An Open Badge from another issuer (a did:key: verifiable with no network)."""
    key = keys.private_key_from_seed(bytes([n]) * 32)
    issuer = keys.did_key(key.public_key())
    doc = example_credential(issuer_id=issuer, credential_id=f"urn:uuid:{uuid.UUID(int=1000 + n)}")
    doc["credentialSubject"]["achievement"]["id"] = "https://elsewhere.example/achievements/1"
    return proofs.sign(doc, key, keys.did_key_verification_method(key.public_key()))


@pytest.fixture
async def svc(db: Any) -> ObApi:
    for n, who in ((1, ADA), (2, BOB)):
        cid = uuid.UUID(int=n)
        await db.register(CredentialIssued(
            credential_id=cid, provider_id="lakeshore", learner_key=who,
            title=f"Course {n}", issued_at=T0, credential={
                "id": f"urn:uuid:{cid}", "name": f"Course {n}",
                "type": ["VerifiableCredential", "OpenBadgeCredential"],
                "credentialSubject": {"type": ["AchievementSubject"], "name": "Ada"},
                "proof": [{"type": "DataIntegrityProof"}]}))
    return ObApi(db.engine, BASE, LIFETIMES)


async def registered(svc: ObApi, **extra: Any) -> dict[str, Any]:
    return await svc.register({"client_name": "Host", "client_uri": "https://host.example/",
                               "redirect_uris": [CALLBACK], "scope": ALL,
                               "grant_types": ["authorization_code", "refresh_token"],
                               **extra})


async def code_for(svc: ObApi, client: dict[str, Any], learner: str = ADA,
                   scope: str = ALL) -> tuple[str, str]:
    verifier, challenge = pkce()
    _, req = await svc.authorization({
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": CALLBACK,
        "scope": scope, "state": "s1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    return await svc.approve(learner, req), verifier


async def tokens(svc: ObApi, client: dict[str, Any], learner: str = ADA,
                 scope: str = ALL) -> dict[str, Any]:
    code, verifier = await code_for(svc, client, learner, scope)
    return await svc.token(basic(client), {"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": CALLBACK,
                                           "code_verifier": verifier})


async def refused(call: Any, error: str) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await call
    assert caught.value.error == error, caught.value.description
    return caught.value


def bearer(token: dict[str, Any]) -> str:
    return f"Bearer {token['access_token']}"


async def test_registration_keeps_only_a_digest_of_the_secret(svc: ObApi, db: Any) -> None:
    client = await registered(svc, logo_uri="https://host.example/logo.png")
    assert client["client_id"].startswith("obc_") and len(client["client_secret"]) >= 40
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    assert client["redirect_uris"] == [CALLBACK] and client["scope"] == ALL
    [row] = await db.rows("SELECT secret_sha256, client_metadata FROM ob_clients")
    assert row.secret_sha256 == hashlib.sha256(client["client_secret"].encode()).hexdigest()
    assert client["client_secret"] not in str(row.client_metadata)


@pytest.mark.parametrize(("change", "error"), [
    ({"redirect_uris": ["http://host.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://host.example/cb#frag"]}, "invalid_redirect_uri"),
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"scope": "https://purl.imsglobal.org/spec/ob/v3p0/scope/everything"},
     "invalid_client_metadata"),
    ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
    ({"response_types": ["token"]}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
    ({"client_name": None}, "invalid_client_metadata"),
])
async def test_registration_refuses_what_the_spec_does_not_allow(
        svc: ObApi, change: dict[str, Any], error: str) -> None:
    body = {"client_name": "Host", "client_uri": "https://host.example/",
            "redirect_uris": [CALLBACK], "scope": ALL, **change}
    body = {k: v for k, v in body.items() if v is not None}
    await refused(svc.register(body), error)


async def test_code_with_pkce_gives_tokens_that_read_the_learners_credentials(
        svc: ObApi) -> None:
    client = await registered(svc)
    got = await tokens(svc, client)
    assert got["token_type"] == "Bearer" and got["expires_in"] == 3600
    assert got["scope"] == ALL and got["refresh_token"]
    who = await svc.access(bearer(got), domain.READ_CREDENTIALS)
    assert who.learner_key == ADA
    docs, total = await svc.credentials(ADA, 10, 0, None)
    assert total == 1 and docs[0]["id"] == f"urn:uuid:{uuid.UUID(int=1)}"


async def test_a_wrong_verifier_redirect_uri_or_client_is_invalid_grant(svc: ObApi) -> None:
    client, other = await registered(svc), await registered(svc)
    code, verifier = await code_for(svc, client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier}
    wrong_verifier, _ = pkce()
    await refused(svc.token(basic(client), {**form, "code_verifier": wrong_verifier}),
                  "invalid_grant")
    await refused(svc.token(basic(client), {**form, "redirect_uri": CALLBACK + "/x"}),
                  "invalid_grant")
    await refused(svc.token(basic(other), form), "invalid_grant")
    await refused(svc.token(basic({**client, "client_secret": "nope"}), form),
                  "invalid_client")
    await refused(svc.token(None, form), "invalid_client")
    await refused(svc.token(basic(client), {k: v for k, v in form.items()
                                            if k != "code_verifier"}), "invalid_request")
    # None of those spent the code.
    assert (await svc.token(basic(client), form))["access_token"]


async def test_a_replayed_code_is_refused_and_revokes_what_it_gave(svc: ObApi) -> None:
    client = await registered(svc)
    code, verifier = await code_for(svc, client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier}
    first = await svc.token(basic(client), form)
    await refused(svc.token(basic(client), form), "invalid_grant")
    with pytest.raises(ApiError) as caught:
        await svc.access(bearer(first), domain.READ_CREDENTIALS)
    assert caught.value.status == 401
    await refused(svc.token(basic(client), {"grant_type": "refresh_token",
                                            "refresh_token": first["refresh_token"]}),
                  "invalid_grant")


async def test_an_expired_code_is_invalid_grant(db: Any) -> None:
    svc = ObApi(db.engine, BASE, Lifetimes(code=timedelta(seconds=-1),
                                           access=timedelta(hours=1),
                                           refresh=timedelta(days=1)))
    client = await registered(svc)
    code, verifier = await code_for(svc, client)
    error = await refused(svc.token(basic(client), {
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": verifier}), "invalid_grant")
    assert "expired" in error.description


async def test_the_authorization_request_is_checked(svc: ObApi) -> None:
    client = await registered(svc, scope=domain.READ_CREDENTIALS)
    _, challenge = pkce()
    good = {"response_type": "code", "client_id": client["client_id"],
            "redirect_uri": CALLBACK, "code_challenge": challenge,
            "code_challenge_method": "S256"}
    with pytest.raises(UnknownClient):
        await svc.authorization({**good, "client_id": "obc_nobody"})
    with pytest.raises(UnknownClient):
        await svc.authorization({**good, "redirect_uri": "https://evil.example/cb"})
    await refused(svc.authorization({**good, "code_challenge_method": "plain"}),
                  "invalid_request")
    await refused(svc.authorization({k: v for k, v in good.items()
                                     if k != "code_challenge"}), "invalid_request")
    await refused(svc.authorization({**good, "scope": domain.UPSERT_CREDENTIAL}),
                  "invalid_scope")
    await refused(svc.authorization({**good, "response_type": "token"}),
                  "unsupported_response_type")
    _, req = await svc.authorization(good)  # no scope: what the client registered
    assert req.scope == [domain.READ_CREDENTIALS]


async def test_a_token_without_the_scope_gets_403(svc: ObApi) -> None:
    client = await registered(svc)
    got = await tokens(svc, client, scope=domain.READ_PROFILE)
    with pytest.raises(ApiError) as caught:
        await svc.access(bearer(got), domain.READ_CREDENTIALS)
    assert caught.value.status == 403 and caught.value.minor == "forbidden"
    assert 'error="insufficient_scope"' in caught.value.headers["WWW-Authenticate"]
    assert (await svc.access(bearer(got), domain.READ_PROFILE)).learner_key == ADA


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_grant(svc: ObApi) -> None:
    client = await registered(svc)
    first = await tokens(svc, client)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "scope": domain.READ_CREDENTIALS}
    second = await svc.token(basic(client), form)
    assert second["scope"] == domain.READ_CREDENTIALS
    assert second["refresh_token"] != first["refresh_token"]
    await refused(svc.token(basic(client), {**form, "refresh_token": second["refresh_token"],
                                            "scope": domain.UPDATE_PROFILE + " x"}),
                  "invalid_scope")
    await refused(svc.token(basic(client), form), "invalid_grant")  # reused
    with pytest.raises(ApiError):
        await svc.access(bearer(second), domain.READ_CREDENTIALS)


async def test_revocation_ends_a_token_and_unknown_tokens_are_no_error(svc: ObApi) -> None:
    client = await registered(svc)
    got = await tokens(svc, client)
    await svc.revoke(basic(client), {"token": "not-a-token"})
    await svc.revoke(basic(client), {"token": got["access_token"]})
    with pytest.raises(ApiError):
        await svc.access(bearer(got), domain.READ_CREDENTIALS)
    await svc.revoke(basic(client), {"token": got["refresh_token"]})
    await refused(svc.token(basic(client), {"grant_type": "refresh_token",
                                            "refresh_token": got["refresh_token"]}),
                  "invalid_grant")


async def test_the_backpack_keeps_a_verified_credential_from_elsewhere(
        svc: ObApi, db: Any) -> None:
    def verify(doc: dict[str, Any]) -> Any:
        return verify_document(db.engine, BASE, doc)

    badge = foreign_credential()
    created, held = await svc.upsert(ADA, badge, verify)
    assert created and held == badge
    created, _ = await svc.upsert(ADA, badge, verify)
    assert not created
    docs, total = await svc.credentials(ADA, 1, 1, None)
    assert total == 2 and docs == [badge]
    assert (await svc.credentials(BOB, 10, 0, None))[1] == 1  # Bob's own only

    tampered = {**badge, "name": "Something else"}
    with pytest.raises(ApiError) as caught:
        await svc.upsert(ADA, tampered, verify)
    assert caught.value.status == 400 and "does not verify" in caught.value.description
    [row] = await db.rows("SELECT document->>'name' AS name FROM ob_backpack")
    assert row.name == badge["name"]


async def test_ours_is_already_its_holders_and_never_anyone_elses(svc: ObApi) -> None:
    async def verified(doc: dict[str, Any]) -> dict[str, Any]:
        return {"verified": True, "status": "valid"}

    ours = (await svc.credentials(ADA, 10, 0, None))[0][0]
    created, held = await svc.upsert(ADA, ours, verified)
    assert not created and held == ours
    with pytest.raises(ApiError) as caught:
        await svc.upsert(BOB, ours, verified)
    assert caught.value.status == 403


async def test_the_profile_is_read_and_replaced(svc: ObApi) -> None:
    first = await svc.profile(ADA)
    assert first["type"] == "Profile" and first["name"] == "Ada"
    assert first["id"].startswith("urn:uuid:") and ADA not in first["id"]
    put = await svc.put_profile(ADA, {"type": "Profile", "name": "Ada L.",
                                      "url": "https://ada.example/"})
    assert put["id"] == first["id"] and put["name"] == "Ada L."
    assert await svc.profile(ADA) == put
    with pytest.raises(ApiError):
        await svc.put_profile(ADA, {"id": "urn:uuid:someone-else", "name": "x"})
    with pytest.raises(ApiError):
        await svc.put_profile(ADA, {"url": "javascript:alert(1)"})


async def test_the_learner_sees_and_withdraws_the_platforms_they_approved(svc: ObApi) -> None:
    client = await registered(svc)
    got = await tokens(svc, client, scope=domain.READ_CREDENTIALS)
    await tokens(svc, client, learner=BOB)
    [mine] = await svc.connections(ADA)
    assert mine["client_name"] == "Host" and mine["scope"] == domain.READ_CREDENTIALS
    assert not await svc.disconnect(BOB, uuid.UUID(mine["id"]))  # not Bob's
    assert await svc.disconnect(ADA, uuid.UUID(mine["id"]))
    assert await svc.connections(ADA) == [] and len(await svc.connections(BOB)) == 1
    with pytest.raises(ApiError):
        await svc.access(bearer(got), domain.READ_CREDENTIALS)
    await refused(svc.token(basic(client), {"grant_type": "refresh_token",
                                            "refresh_token": got["refresh_token"]}),
                  "invalid_grant")


async def test_ours_is_found_by_any_id_its_document_has(svc: ObApi, db: Any) -> None:
    """Migration 16: a credential issued here is found by its document's `id` whether it is
    the credential's own `urn:uuid` or one a VC-API caller named (kept apart, indexed),
    and only by the id its document has."""
    async def verified(doc: dict[str, Any]) -> dict[str, Any]:
        return {"verified": True, "status": "valid"}

    named_id, other_urn = "https://lakeshore.example/credentials/3", f"urn:uuid:{uuid.UUID(int=99)}"
    for n, doc_id in ((3, named_id), (4, other_urn)):
        await db.register(CredentialIssued(
            credential_id=uuid.UUID(int=n), provider_id="lakeshore", learner_key=ADA,
            title=f"Course {n}", issued_at=T0, credential={
                "id": doc_id, "name": f"Course {n}",
                "type": ["VerifiableCredential", "OpenBadgeCredential"],
                "credentialSubject": {"type": ["AchievementSubject"], "name": "Ada"},
                "proof": [{"type": "DataIntegrityProof"}]}))
    for doc_id in (named_id, other_urn):
        held = next(d for d in (await svc.credentials(ADA, 10, 0, None))[0]
                    if d["id"] == doc_id)
        created, kept = await svc.upsert(ADA, held, verified)
        assert not created and kept == held
        with pytest.raises(ApiError) as caught:
            await svc.upsert(BOB, held, verified)
        assert caught.value.status == 403
    # Credential 4's own urn names no document here: a credential from elsewhere.
    elsewhere = {**foreign_credential(), "id": f"urn:uuid:{uuid.UUID(int=4)}"}
    created, _ = await svc.upsert(BOB, elsewhere, verified)
    assert created
