"""The Learner Credential Wallet's VC-API exchange against the running backbone (ADR 27):
a test holder with a did:key opens the deep link's exchange, proves control of its DID
(a DID-authentication presentation made with the reference JavaScript stack, as the wallet
makes it, or with our Python signer for the refusals), and receives its credential bound
to that DID, signed by the provider with the original's status entries. The wallets' own
verifier (verifier-core) and the reference library (@digitalbazaar/vc) verify the copy and
see the original's revocation in it."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from microcred_testkit.backbone import eventually, issue_over_http, learner
from microcred_testkit.js_verifier import checks, js_verify, verifier_core
from microcred_testkit.served import served_documents as served
from microcred_testkit.vc_examples import ExampleHolder

pytestmark = [pytest.mark.integration, pytest.mark.interop]
INTEROP = Path(__file__).resolve().parents[1] / "interop"
PROVIDER, DEFINITION = "lakeshore-college", "lakeshore-data-analytics-fundamentals"
LINK = r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+"
VC_V2 = "https://www.w3.org/ns/credentials/v2"


# --- helpers (test modules are not importable from each other) -----------------------

async def _json(request):
    return (await request).json()


async def issued(bb, who) -> dict:
    return await issue_over_http(bb, PROVIDER, DEFINITION, who, score=91)


async def signed_in(bb, who) -> str:
    import re

    def mails():
        return [m for m in bb.smtp.to(who.email) if "/learner/sign-in/" in m.get_content()]

    async with bb.http("registry") as client:
        seen = len(mails())
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        got = await eventually(lambda: _async(mails()), lambda m: len(m) > seen)
        link = re.search(LINK, got[-1].get_content()).group(0)
        return (await client.post(link.removeprefix(bb.url("registry")),
                                  headers={"accept": "application/json"})
                ).json()["access_token"]


async def _async(value):
    return value


class Holder(ExampleHolder):
    """A wallet's key: a did:key from a seed (hex), signing in Python or in JavaScript."""

    def __init__(self, seed_hex: str) -> None:
        super().__init__(bytes.fromhex(seed_hex))
        self.seed = seed_hex

    def present_js(self, challenge: str, domain: str) -> dict:
        """DID authentication signed by the reference JavaScript stack (present.mjs)."""
        need_node()
        done = subprocess.run(
            ["node", "present.mjs", "--seed", self.seed, "--challenge", challenge,
             "--domain", domain], cwd=INTEROP, capture_output=True, text=True, timeout=120,
            input=json.dumps({"@context": [VC_V2], "type": ["VerifiablePresentation"]}) + "\n")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[0])


def need_node() -> None:
    if shutil.which("node") is None or not (INTEROP / "node_modules/@digitalbazaar/vc").is_dir():
        pytest.fail("needs Node.js and `npm ci --prefix tests/interop` (make install does it)")


async def start(bb, token: str, credential_id: str) -> dict:
    async with bb.http("registry", token) as client:
        r = await client.post(f"/v1/learner/credentials/{credential_id}/exchanges")
    assert r.status_code == 201, r.text
    return r.json()


async def post(bb, url: str, body: dict | None = None) -> httpx.Response:
    """What the wallet does: POST to the exchange URL (from the deep link)."""
    async with bb.http("registry") as client:
        return await client.post(url.removeprefix(bb.public_base_url),
                                 **({"json": body} if body is not None else {}))


# --- the tests -------------------------------------------------------------------------

async def test_a_wallet_gets_its_credential_bound_to_its_did_and_both_verifiers_agree(
        backbone, tmp_path):
    who = learner("lcw-happy")
    original = await issued(backbone, who)
    token = await signed_in(backbone, who)
    ex = await start(backbone, token, original["id"])

    # The deep link the learner's page and QR code carry: the LCW request with our exchange.
    link = urlsplit(ex["deep_link"])
    assert (link.scheme, link.netloc, link.path) == ("https", "lcw.app", "/request.html")
    params = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert params["auth_type"] == "bearer" and params["vc_request_url"] == ex["url"]
    assert params["challenge"] == ex["challenge"]
    assert params["issuer"] == urlsplit(backbone.public_base_url).netloc

    # Step 1: empty POST -> the DID-authentication request.
    r = await post(backbone, ex["url"])
    assert r.status_code == 200, r.text
    vpr = r.json()["verifiablePresentationRequest"]
    assert vpr["query"][0]["type"] == "DIDAuthentication"
    assert vpr["challenge"] == ex["challenge"] and vpr["domain"] == ex["domain"]

    # Step 2: the wallet's presentation (reference JS stack) -> the bound credential.
    holder = Holder("7e" * 32)
    vp = holder.present_js(vpr["challenge"], vpr["domain"])
    r = await post(backbone, ex["url"], {"verifiablePresentation": vp})
    assert r.status_code == 200, r.text
    [bound] = r.json()["verifiablePresentation"]["verifiableCredential"]
    signed = original["credential"]
    assert bound["credentialSubject"]["id"] == holder.did
    assert bound["credentialStatus"] == signed["credentialStatus"]
    assert bound["issuer"] == signed["issuer"]
    assert bound["id"] != signed["id"]
    assert bound["credentialSubject"]["achievement"] == signed["credentialSubject"]["achievement"]
    assert bound["proof"][0]["verificationMethod"].startswith(
        backbone.issuer_did(PROVIDER))

    # Replay: the same presentation again is refused, the exchange is used.
    again = await post(backbone, ex["url"], {"verifiablePresentation": vp})
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("exchange-used")

    # The wallets' verifier and the reference library accept the copy.
    [verdict] = verifier_core(backbone, [bound])
    assert checks(verdict)["valid_signature"] is True, verdict
    assert checks(verdict)["revocation_status"] is True, verdict
    assert checks(verdict)["registered_issuer"] is True, verdict
    ref = js_verify([bound], await _served(backbone, bound), tmp_path)[0]
    assert ref["verified"] is True and ref["status"]["revocation"] is False, ref

    # Revoking the original reaches the wallet's copy (same status entry).
    async with backbone.http("issuance", backbone.api_keys[PROVIDER]) as client:
        r = await client.post(f"/v1/credentials/{original['id']}/status",
                              json={"action": "revoke", "reason": "exchange test"})
        assert r.status_code == 200, r.text
    async with backbone.http("registry", backbone.api_keys[PROVIDER]) as client:
        await eventually(lambda: _json(client.get(
            f"/v1/credentials/{original['id']}/verification")),
            lambda v: v["status"] == "revoked")
    after = await eventually(lambda: _async(verifier_core(backbone, [bound])[0]),
                             lambda v: checks(v).get("revocation_status") is False, timeout=30)
    assert checks(after)["revocation_status"] is False, after
    ref = js_verify([bound], await _served(backbone, bound), tmp_path)[0]
    assert ref["status"]["revocation"] is True, ref
    # And a revoked credential opens no new exchange.
    async with backbone.http("registry", token) as client:
        r = await client.post(f"/v1/learner/credentials/{original['id']}/exchanges")
    assert r.status_code == 409, r.text


async def _served(bb, credential: dict) -> dict:
    async with bb.http("registry") as client:
        return await served(client, credential, bb.public_base_url)


async def test_wrong_challenge_domain_signature_and_expiry_are_refused(backbone):
    who = learner("lcw-refusals")
    original = await issued(backbone, who)
    token = await signed_in(backbone, who)
    ex = await start(backbone, token, original["id"])
    holder = Holder("3c" * 32)

    cases = {
        "challenge": holder.present("not-the-challenge", ex["domain"]),
        "domain": holder.present(ex["challenge"], "evil.example"),
    }
    tampered = holder.present(ex["challenge"], ex["domain"])
    tampered["holder"] = Holder("4d" * 32).did  # signed by one key, claims another DID
    cases["holder"] = tampered
    forged = copy.deepcopy(holder.present(ex["challenge"], ex["domain"]))
    value = forged["proof"]["proofValue"]
    forged["proof"]["proofValue"] = value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")
    cases["signature"] = forged
    for name, vp in cases.items():
        r = await post(backbone, ex["url"], {"verifiablePresentation": vp})
        assert r.status_code == 400, (name, r.text)
        body = r.json()
        assert r.headers["content-type"].startswith("application/problem+json"), name
        assert body["type"].endswith("presentation-refused"), (name, body)
        if name in ("challenge", "domain"):
            assert name in body["detail"], body

    # The exchange is still open for the right presentation (refusals do not consume it).
    ok = await post(backbone, ex["url"], {"verifiablePresentation": holder.present(
        ex["challenge"], ex["domain"])})
    assert ok.status_code == 200, ok.text

    # Someone else's credential: no exchange (it looks like no credential at all).
    stranger = learner("lcw-stranger")
    await issued(backbone, stranger)
    async with backbone.http("registry", await signed_in(backbone, stranger)) as client:
        r = await client.post(f"/v1/learner/credentials/{original['id']}/exchanges")
    assert r.status_code == 404, r.text

    # An expired exchange answers 410, for the request and for a presentation alike.
    late = await start(backbone, token, original["id"])
    conn = await backbone.db("registry")
    try:
        await conn.execute("UPDATE wallet_exchanges SET expires_at = now() - interval '1 s' "
                           "WHERE exchange_id = $1::uuid", late["id"])
    finally:
        await conn.close()
    for body in (None, {"verifiablePresentation": holder.present(late["challenge"],
                                                                 late["domain"])}):
        r = await post(backbone, late["url"], body)
        assert r.status_code == 410, r.text
        assert r.json()["type"].endswith("exchange-expired")
