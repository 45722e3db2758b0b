"""OpenID4VCI 1.0, pre-authorized code flow, on the running backbone (ADR 28): a signed-in
learner makes an offer; a third-party wallet client, @sphereon/oid4vci-client from
tests/interop/node_modules, unmodified, reads the issuer metadata, redeems the code with the
transaction code, takes a nonce, proves possession of a fresh Ed25519 key and receives the
credential bound to it, signed by the provider through issuance. Our verifier and the
wallets' verifier (verifier-core) accept it; a revocation of the original reaches it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from microcred_testkit.backbone import eventually, issue_over_http, learner
from microcred_testkit.js_verifier import checks, verifier_core

pytestmark = [pytest.mark.integration, pytest.mark.interop]
INTEROP = Path(__file__).resolve().parents[1] / "interop"
JSON = {"accept": "application/json"}
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
PROVIDER, DEFINITION = "lakeshore-college", "lakeshore-workplace-safety"


def node(bb, script: str, *args: str, stdin: str | None = None) -> list[dict]:
    if shutil.which("node") is None or not (
            INTEROP / "node_modules/@sphereon/oid4vci-client").is_dir():
        pytest.fail("needs Node.js and `npm ci --prefix tests/interop` (make install does it)")
    done = subprocess.run(["node", script, *args], cwd=INTEROP, capture_output=True,
                          text=True, timeout=120, input=stdin,
                          env={"PATH": shutil.which("node").rsplit("/", 1)[0],  # type: ignore[union-attr]
                               "NODE_EXTRA_CA_CERTS": str(bb.ca_file)})
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def wallet(bb, link: str, tx_code: str, *flags: str) -> dict:
    [out] = node(bb, "oid4vci_wallet.mjs", link, tx_code, *flags)
    return out


async def issued(bb, who) -> dict:
    return await issue_over_http(bb, PROVIDER, DEFINITION, who, passed=True)


async def session_token(bb, who) -> str:
    async with bb.http("registry") as client:
        r = await client.post("/v1/learner/sign-in", json={"email": who.email})
        assert r.status_code == 202, r.text

        async def mails():
            return [m for m in bb.smtp.to(who.email) if "/learner/sign-in/" in m.get_content()]
        [mail] = await eventually(mails, lambda m: len(m) >= 1)
        link = LINK.search(mail.get_content())
        assert link, mail.get_content()
        r = await client.post(link.group(0).split(bb.url("registry"), 1)[1], headers=JSON)
        assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


TX_CODE = re.compile(r"^ {4}(\d{6})$", re.M)


def tx_mails(bb, who) -> list:
    return [m for m in bb.smtp.to(who.email) if "transaction" in str(m["Subject"])]


async def mailed_tx_code(bb, who, seen: int) -> str:
    """The transaction code, from the mail that follows the offer (a channel apart)."""
    mails = await eventually(lambda: _async(tx_mails(bb, who)), lambda m: len(m) > seen)
    found = TX_CODE.search(mails[-1].get_content())
    assert found, mails[-1].get_content()
    return found.group(1)


async def _async(value):
    return value


async def offer(bb, token: str, credential_id: str, who) -> dict:
    seen = len(tx_mails(bb, who))
    async with bb.http("registry", token) as client:
        r = await client.post(f"/v1/learner/credentials/{credential_id}/oid4vci-offer")
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    # The answer that carries the offer does not carry its code: that goes by mail.
    assert "tx_code" not in body and body["tx_code_sent_by"] == "email"
    return {**body, "tx_code": await mailed_tx_code(bb, who, seen)}


async def test_a_wallet_receives_the_learners_credential_bound_to_its_key(backbone):
    who = learner(f"oid4vci-{uuid.uuid4().hex[:6]}")
    original = await issued(backbone, who)
    token = await session_token(backbone, who)
    offered = await offer(backbone, token, original["id"], who)
    link = offered["credential_offer_link"]
    query = parse_qs(urlsplit(link).query)
    assert json.loads(query["credential_offer"][0]) == offered["credential_offer"]

    wrong = "000000" if offered["tx_code"] != "000000" else "111111"
    refused = wallet(backbone, link, wrong)
    assert refused["failed"] == "token", refused

    got = wallet(backbone, link, offered["tx_code"])
    assert "failed" not in got, got
    assert got["metadata"]["credential_configurations_supported"][
        "OpenBadgeCredential_ldp_vc"]["format"] == "ldp_vc"
    [entry] = got["response"]["credentials"]
    bound = entry["credential"]
    # Bound to the wallet's key, a new credential (its own id, ADR 31), otherwise the
    # provider's credential as it was issued: the same achievement and status entries (a
    # revocation reaches every copy).
    assert bound["credentialSubject"]["id"] == got["holder"]
    signed = original["credential"]
    assert bound["id"].startswith("urn:uuid:") and bound["id"] != signed["id"]
    assert bound["issuer"] == signed["issuer"]
    assert bound["credentialStatus"] == signed["credentialStatus"]
    assert bound["credentialSubject"]["achievement"] == signed["credentialSubject"]["achievement"]
    [proof] = bound["proof"]  # an array, as Open Badges 3.0 writes it
    assert proof["verificationMethod"].startswith(backbone.issuer_did(PROVIDER) + "#")
    assert proof["proofValue"] != signed["proof"][0]["proofValue"]

    # The pre-authorized code was spent; so was the access token.
    again = wallet(backbone, link, offered["tx_code"])
    assert again["failed"] == "token", again
    async with backbone.http("registry", got["token"]["access_token"]) as client:
        reused = await client.post("/credential", json={
            "credential_configuration_id": "OpenBadgeCredential_ldp_vc"})
        assert reused.status_code == 401 and reused.json()["error"] == "invalid_token"

        # Our verifier, and the wallets' own.
        ours = await client.post("/credentials/verify", json={"verifiableCredential": bound})
        assert ours.status_code == 200 and ours.json()["verified"] is True, ours.text
    [verdict] = verifier_core(backbone, [bound])
    assert not verdict.get("errors"), verdict
    # A default definition's credential can be revoked, not suspended (ADR 8): one status
    # entry, and verifier-core runs every check it has on it.
    assert isinstance(bound["credentialStatus"], dict), bound["credentialStatus"]
    assert checks(verdict) == {"valid_signature": True, "revocation_status": True,
                               "expiration": True, "registered_issuer": True}, verdict

    # The provider revokes the credential: the wallet's copy shows it.
    async with backbone.http("issuance", backbone.api_keys[PROVIDER]) as client:
        r = await client.post(f"/v1/credentials/{original['id']}/status",
                              json={"action": "revoke", "reason": "issued in error"})
        assert r.status_code == 200, r.text
    revoked = await eventually(lambda: _verdict(backbone, bound),
                               lambda v: checks(v).get("revocation_status") is False)
    assert checks(revoked)["revocation_status"] is False, revoked


async def _verdict(bb, credential: dict) -> dict:
    [verdict] = verifier_core(bb, [credential])
    return verdict


async def test_a_wallet_with_a_jwk_a_bad_proof_or_no_nonce_is_refused_or_served(backbone):
    who = learner(f"oid4vci-jwk-{uuid.uuid4().hex[:6]}")
    original = await issued(backbone, who)
    token = await session_token(backbone, who)

    tampered = await offer(backbone, token, original["id"], who)
    bad = wallet(backbone, tampered["credential_offer_link"], tampered["tx_code"],
                 "--tamper-proof")
    assert bad["failed"] == "credential", bad
    without_nonce = await offer(backbone, token, original["id"], who)
    none = wallet(backbone, without_nonce["credential_offer_link"],
                  without_nonce["tx_code"], "--no-nonce")
    assert none["failed"] == "credential", none

    jwk = await offer(backbone, token, original["id"], who)
    got = wallet(backbone, jwk["credential_offer_link"], jwk["tx_code"], "--key-as", "jwk")
    assert "failed" not in got, got
    assert got["response"]["credentials"][0]["credential"]["credentialSubject"]["id"] == \
        got["holder"]


async def test_the_learners_page_offers_the_credential_to_a_wallet(backbone):
    who = learner(f"oid4vci-page-{uuid.uuid4().hex[:6]}")
    original = await issued(backbone, who)
    token = await session_token(backbone, who)
    async with backbone.http("registry") as client:
        client.cookies.set("microcred_session", token)
        page = await client.get("/learner?lang=fr")
        action = f"/learner/credentials/{original['id']}/wallets/openid"
        assert action in page.text, page.text
        assert "Ajouter à un portefeuille OpenID4VCI" in page.text
        seen = len(tx_mails(backbone, who))
        shown = await client.post(action + "?lang=fr")
        assert shown.status_code == 200, shown.text
        assert 'aria-label="Code QR de l&#39;offre de titre"' in shown.text or \
            "Code QR de l" in shown.text
        link = re.search(r'href="(openid-credential-offer://[^"]+)"', shown.text)
        assert link, shown.text
    # The code is not on the page beside the QR code; it is in a French mail of its own.
    tx = await mailed_tx_code(backbone, who, seen)
    assert f">{tx}<" not in shown.text and 'id="tx-code-sent"' in shown.text
    [mail] = tx_mails(backbone, who)[seen:]
    assert str(mail["Subject"]).startswith("Le code de transaction pour votre portefeuille")
    assert "openid-credential-offer" not in mail.get_content()
    got = wallet(backbone, link.group(1).replace("&amp;", "&"), tx)
    assert "failed" not in got, got


async def test_issuance_binds_only_for_the_registry(backbone):
    cid = uuid.uuid4()
    async with backbone.http("issuance", backbone.api_keys[PROVIDER]) as client:
        r = await client.post(f"/internal/v1/credentials/{cid}/bound-copies", json={
            "credential": {"id": f"urn:uuid:{cid}"}, "holder": "did:key:z6Mk"})
        assert r.status_code == 401, r.text
        # The one path: the endpoint ADR 28 had is gone.
        gone = await client.post("/holder-bindings", json={})
        assert gone.status_code in (404, 405), gone.text
