"""The wallets' own verifier, @digitalcredentials/verifier-core (Learner Credential Wallet,
VerifierPlus), unmodified from tests/interop/node_modules, on credentials the running
backbone issued: Kafka and HTTP flows, the VC-API, English and French. It resolves the
issuers' did:web, fetches our context and the status lists itself, over loopback https
trusting the devstack's CA (NODE_EXTRA_CA_CERTS); nothing outside loopback is reached."""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result
from microcred_testkit.js_verifier import OB_SCHEMA_URL, checks, verifier_core
from microcred_testkit.providers import Admin, definition_doc

pytestmark = [pytest.mark.integration, pytest.mark.interop]
ADR = (Path(__file__).resolve().parents[2] / "docs/decisions/"
       "0022-did-web-issuers-and-published-contexts.md")


def registered_in(verdict: dict) -> list[str]:
    """The types of the registries in which verifier-core found the issuer."""
    step = next(s for s in verdict["log"] if s["id"] == "registered_issuer")
    assert step["uncheckedRegistries"] == [], step  # both of ours answered
    return sorted(m["registry"].get("type", "oidf") for m in step["matchingIssuers"])


def fatal(verdict: dict) -> list[str]:
    return [e["name"] for e in verdict.get("errors", [])]


def schema_errors(verdict: dict) -> list[list[tuple[str, str]]]:
    """Per schema verifier-core validated against: its errors (path, message)."""
    return [[(e["instancePath"], e["message"]) for e in r["result"].get("errors", [])]
            for entry in verdict.get("additionalInformation", [])
            if entry["id"] == "schema_check" for r in entry["results"]]


# OB 3.0's JSON Schema allows one credentialStatus object. A credential carries one (its
# revocation entry) unless its definition is suspendable (ADR 8): then it carries the
# suspension entry too, which VC 2.0 allows and that schema does not. verifier-core reports
# it in its schema information (not a failed check), and only for those.
TWO_STATUS_ENTRIES = [("/credentialStatus", "must be object")]
# A definition marked suspendable in deploy/seed (licence-like: it lapses and comes back).
SUSPENDABLE = ("ontario-construction-sector-council", "ocsc-site-supervisor-readiness")


def assert_verified(verdict: dict, *, suspendable: bool = False) -> None:
    """Every check verifier-core runs passed, the registered issuer too: it found the
    provider on our trust list, in both its forms (ADR 26); its OB 3.0 schema check found
    nothing, unless the credential is suspendable (the one pinned warning)."""
    assert not fatal(verdict), verdict
    expected = {"valid_signature": True, "revocation_status": True, "expiration": True,
                "registered_issuer": True}
    if suspendable:
        expected["suspension_status"] = True
    assert checks(verdict) == expected, verdict
    assert registered_in(verdict) == ["dcc-legacy", "oidf"], verdict
    assert schema_errors(verdict) == [TWO_STATUS_ENTRIES if suspendable else []], verdict
    # The schema check ran (one result, for the OB 3.0 AchievementCredential schema).
    assert [e["id"] for e in verdict["additionalInformation"]] == ["schema_check"], verdict


async def _json(request):
    return (await request).json()


async def stored(bb, who) -> dict:
    async with bb.http("registry", bb.operator_token) as client:
        body = await eventually(lambda: _json(client.get(
            f"/v1/learners/{learner_key(who.email)}/credentials")), lambda b: b["count"] >= 1)
    return body["credentials"][-1]


async def via_http(bb, provider, definition, who, **outcome) -> dict:
    res = result(provider, definition, who=who, **outcome)
    async with bb.http("assessment", bb.api_keys[provider]) as client:
        r = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                              headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text
    return await stored(bb, who)


async def via_kafka(bb, provider, definition, who, **outcome) -> dict:
    async with ProviderPublisher(bb.bootstrap) as kafka:
        await kafka.publish(result(provider, definition, who=who, **outcome))
    return await stored(bb, who)


async def via_vc_api(bb, provider, **fields) -> dict:
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "Atelier de secourisme",
        "issuer": {"id": bb.issuer_did(provider), "type": ["Profile"], "name": provider},
        "credentialSubject": {
            "id": "did:example:learner-wallet", "type": ["AchievementSubject"],
            "achievement": {"id": f"https://{provider}.example/achievements/atelier",
                            "type": ["Achievement"], "name": "Atelier de secourisme",
                            "description": "Atelier pratique",
                            "criteria": {"narrative": "Présence et démonstration"}}},
        **fields,
    }
    async with bb.http("issuance", bb.api_keys[provider]) as client:
        r = await client.post("/credentials/issue", json={"credential": credential})
    assert r.status_code == 201, r.text
    return dict(r.json()["verifiableCredential"])


async def change(bb, provider, credential_id, action, expect: int = 200) -> dict:
    async with bb.http("issuance", bb.api_keys[provider]) as client:
        r = await client.post(f"/v1/credentials/{credential_id}/status",
                              json={"action": action, "reason": "wallet verifier test"})
    assert r.status_code == expect, r.text
    return dict(r.json())


async def verdict_of(bb, credential: dict, done) -> dict:
    """verifier-core's verdict once the registry serves what it needs (lists reach it by
    Kafka; a verifier in the field would see the same after that delay)."""
    async def probe() -> dict:
        return verifier_core(bb, [credential])[0]
    return await eventually(probe, done, timeout=30)


async def test_the_wallets_verifier_accepts_every_kind_of_backbone_credential(backbone):
    kafka_en = await via_kafka(backbone, "lakeshore-college",
                               "lakeshore-data-analytics-fundamentals",
                               learner("wallet-kafka-en"), score=88)
    http_fr = await via_http(backbone, "cegep-riviere-du-nord", "cegep-soins-premiers-secours",
                             learner("wallet-http-fr", language="fr"), score=92)
    vc_api = await via_vc_api(backbone, "cegep-riviere-du-nord")
    assert http_fr["credential"]["credentialSubject"]["achievement"]["nameFr"]
    verdicts = []
    for credential in (kafka_en["credential"], http_fr["credential"], vc_api):
        assert credential["issuer"]["id"].startswith("did:web:127.0.0.1%3A")
        assert credential["credentialStatus"]["statusPurpose"] == "revocation"  # one entry
        verdict = await verdict_of(backbone, credential, lambda v: not fatal(v))
        assert_verified(verdict)
        verdicts.append(verdict)
        # It resolved the did:web and fetched what it needed from the registry, nothing
        # from anywhere else (the OB schema is answered from our vendored copy).
        fetched = set(verdict["fetched"])
        assert f"{backbone.public_base_url}/issuers/" in " ".join(fetched), fetched
        assert all(u.startswith(backbone.public_base_url) or u == OB_SCHEMA_URL
                   for u in fetched), fetched
    # Our context is not bundled in verifier-core: it fetched it from the registry.
    assert f"{backbone.public_base_url}/contexts/microcred/v1" in verdicts[0]["fetched"]


async def test_a_suspendable_credential_is_verified_then_suspended_and_reinstated(backbone):
    """ADR 8: a suspendable definition's credential carries both entries; verifier-core
    checks both, with the one schema warning pinned here; suspended, it says so, and the
    revocation check still passes; reinstated, it verifies again."""
    provider, definition = SUSPENDABLE
    cred = await via_http(backbone, provider, definition,
                          learner("wallet-suspended", language="fr"), passed=True)
    assert [e["statusPurpose"] for e in cred["credential"]["credentialStatus"]] == [
        "revocation", "suspension"]
    assert_verified(await verdict_of(backbone, cred["credential"], lambda v: not fatal(v)),
                    suspendable=True)
    await change(backbone, provider, cred["id"], "suspend")
    v = await verdict_of(backbone, cred["credential"],
                         lambda v: checks(v).get("suspension_status") is False)
    assert checks(v)["valid_signature"] is True and checks(v)["revocation_status"] is True
    await change(backbone, provider, cred["id"], "unsuspend")
    v = await verdict_of(backbone, cred["credential"],
                         lambda v: checks(v).get("suspension_status") is True)
    assert_verified(v, suspendable=True)


async def test_the_wallets_verifier_sees_revoked_expired_and_tampered(backbone):
    provider, definition = "lakeshore-college", "lakeshore-workplace-safety"
    revoked = await via_http(backbone, provider, definition, learner("wallet-revoked"),
                             passed=True)
    # Not suspendable (the default): refused with a problem that says what to do instead.
    refused = await change(backbone, provider, revoked["id"], "suspend", expect=409)
    assert refused["detail"] == "this credential cannot be suspended; revoke it instead"
    await change(backbone, provider, revoked["id"], "revoke")
    v = await verdict_of(backbone, revoked["credential"],
                         lambda v: checks(v).get("revocation_status") is False)
    assert checks(v) == {"valid_signature": True, "revocation_status": False,
                         "expiration": True, "registered_issuer": True}, v

    now = datetime.now(UTC).replace(microsecond=0)
    expired = await via_vc_api(backbone, provider, validFrom=_iso(now - timedelta(days=400)),
                               validUntil=_iso(now - timedelta(days=35)))
    v = verifier_core(backbone, [expired])[0]
    assert checks(v) == {"valid_signature": True, "revocation_status": True,
                         "expiration": False, "registered_issuer": True}, v

    tampered = copy.deepcopy(revoked["credential"])
    tampered["credentialSubject"]["achievement"]["name"] = "Brain surgery"
    v = verifier_core(backbone, [tampered])[0]
    assert fatal(v) == ["invalid_signature"], v
    assert "log" not in v  # no check is reported as passed on a broken signature


async def test_a_status_list_that_cannot_be_fetched_never_gives_valid(backbone):
    fresh = await via_http(backbone, "lakeshore-college", "lakeshore-workplace-safety",
                           learner("wallet-no-list"), passed=True)
    v = verifier_core(backbone, [fresh["credential"]],
                      unreachable=f"{backbone.public_base_url}/status/")[0]
    assert checks(v).get("valid_signature") is True, v
    assert checks(v).get("revocation_status") is not True, v
    assert any(step.get("error") for step in v["log"]), v


async def test_a_retired_key_still_verifies_and_a_compromised_one_does_not(backbone):
    """Rotation as ADR 8 says, seen by the wallets' verifier: what a retired key signed
    stays valid; what a compromised key signed fails (its method leaves the DID document)."""
    provider = "coast-mountain-university"
    before = await via_vc_api(backbone, provider)
    retired_vm = before["proof"][0]["verificationMethod"]
    assert_verified(await verdict_of(backbone, before, lambda v: not fatal(v)))
    async with backbone.http("issuance", backbone.operator_token) as client:
        r = await client.post(f"/v1/admin/providers/{provider}/keys/rotate", json={})
    assert r.status_code == 200, r.text
    after = await via_vc_api(backbone, provider)
    assert after["proof"][0]["verificationMethod"] != retired_vm
    v = await verdict_of(backbone, after, lambda v: not fatal(v))  # the new key is published
    assert checks(v)["valid_signature"] is True
    v = verifier_core(backbone, [before])[0]
    assert checks(v)["valid_signature"] is True, v  # the retired key: still valid

    async with backbone.http("issuance", backbone.operator_token) as client:
        r = await client.post(f"/v1/admin/providers/{provider}/keys/rotate",
                              json={"compromised": True})
    assert r.status_code == 200, r.text
    v = await verdict_of(backbone, after, lambda v: bool(fatal(v)))
    assert checks(v) == {} and fatal(v), v  # signature cannot be checked: never valid
    v = verifier_core(backbone, [before])[0]
    assert checks(v)["valid_signature"] is True, v  # the earlier, retired key is unaffected


async def trust_list(bb) -> dict:
    async with bb.http("registry") as client:
        r = await client.get("/trust/registry.json")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*", r.text
    assert "max-age=60" in r.headers["cache-control"] and r.headers["etag"]
    return dict(r.json()["registry"])


async def page_says(bb, key: str, credential_id: str, lang: str) -> str:
    """The credential page's trust-list line, as the issuer sees the page."""
    async with bb.http("registry", key) as client:
        r = await client.get(f"/v1/credentials/{credential_id}", params={"lang": lang},
                             headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    line = re.search(r'<dd class="trust [^"]*" data-registered="(true|false)">(.*?)</dd>',
                     r.text, re.S)
    assert line, r.text
    return line.group(1) + " " + re.sub(r"<[^>]+>", "", line.group(2))


async def test_an_onboarded_provider_is_a_registered_issuer_until_it_is_suspended(backbone):
    """The trust list (ADR 26): onboarding lists the provider under its did:web; the wallets'
    verifier finds it there (DCC registry JSON and OpenID Federation); the credential page
    says so; suspension takes it off everywhere, reactivation puts it back."""
    bb, pid, did = backbone, f"trusted-{uuid.uuid4().hex[:6]}", f"tr-def-{uuid.uuid4().hex[:6]}"
    async with Admin(bb.url("assessment"), bb.operator_token) as admin:
        key = await admin.onboard(pid, kind="college", jurisdiction="CA-NS",
                                  name_fr="Collège de confiance")
        await admin.call("POST", "/v1/admin/definitions", definition_doc(did, pid), 201)
    listed = await eventually(lambda: trust_list(bb), lambda r: bb.issuer_did(pid) in r)
    assert listed[bb.issuer_did(pid)]["location"] == "Nova Scotia, Canada"
    assert listed[bb.issuer_did(pid)]["nameFr"] == "Collège de confiance"
    assert listed[bb.issuer_did(pid)]["qualityAssurance"]["body"] == "Sector board"

    who = learner(f"trusted-{uuid.uuid4().hex[:6]}")
    async with bb.http("assessment", key) as client:
        r = await client.post("/v1/assessment-results", content=result(
            pid, did, who=who, passed=True).model_dump_json(),
            headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    cred = await stored(bb, who)
    v = await verdict_of(bb, cred["credential"], lambda v: not fatal(v))
    assert_verified(v)
    found = next(s for s in v["log"] if s["id"] == "registered_issuer")["matchingIssuers"]
    assert {m["issuer"]["federation_entity"]["organization_name"] for m in found} == {
        f"Provider {pid}"}
    assert (await page_says(bb, key, cred["id"], "en")).startswith("true Registered issuer")
    assert (await page_says(bb, key, cred["id"], "fr")).startswith("true Émetteur enregistré")

    async with Admin(bb.url("assessment"), bb.operator_token) as admin:
        await admin.call("POST", f"/v1/admin/providers/{pid}/suspend",
                         {"reason": "quality assurance review"}, 200)
    await eventually(lambda: trust_list(bb), lambda r: bb.issuer_did(pid) not in r)
    async with bb.http("registry") as client:
        r = await client.get("/trust/fetch", params={"sub": bb.issuer_did(pid)})
    assert r.status_code == 404, r.text
    v = verifier_core(bb, [cred["credential"]])[0]
    assert checks(v)["registered_issuer"] is False and checks(v)["valid_signature"] is True, v
    assert (await page_says(bb, key, cred["id"], "en")).startswith("false Not a registered")
    assert (await page_says(bb, key, cred["id"], "fr")).startswith("false Émetteur non")

    async with Admin(bb.url("assessment"), bb.operator_token) as admin:
        await admin.call("POST", f"/v1/admin/providers/{pid}/reactivate",
                         {"reason": "review passed"}, 200)
    await eventually(lambda: trust_list(bb), lambda r: bb.issuer_did(pid) in r)
    assert_verified(verifier_core(bb, [cred["credential"]])[0])


async def test_the_federation_trust_anchor_signs_what_it_says_with_the_key_it_names(backbone):
    """OpenID Federation: the entity configuration is self-signed by the key it lists, and
    the subordinate statement about an issuer is signed by that key and carries the keys of
    the issuer's DID document."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def part(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    async with backbone.http("registry") as client:
        config = await client.get("/.well-known/openid-federation")
        did = backbone.issuer_did("lakeshore-college")
        # As the DCC registry client sends it: the DID unencoded in the query string.
        sub = await client.get(f"/trust/fetch?sub={did}")
        doc = (await client.get("/issuers/lakeshore-college/did.json")).json()
        listed = (await client.get("/trust/list")).json()
    assert config.headers["content-type"] == "application/entity-statement+jwt"
    head, body, sig = config.text.split(".")
    claims = json.loads(part(body))
    (jwk,) = claims["jwks"]["keys"]
    anchor = Ed25519PublicKey.from_public_bytes(part(jwk["x"]))
    anchor.verify(part(sig), f"{head}.{body}".encode())
    assert claims["iss"] == claims["sub"] == backbone.public_base_url
    assert claims["metadata"]["federation_entity"]["federation_fetch_endpoint"] == (
        f"{backbone.public_base_url}/trust/fetch")
    assert sub.status_code == 200, sub.text
    head, body, sig = sub.text.split(".")
    anchor.verify(part(sig), f"{head}.{body}".encode())
    statement = json.loads(part(body))
    assert statement["sub"] == did and statement["iss"] == backbone.public_base_url
    assert [k["kid"] for k in statement["jwks"]["keys"]] == [
        m["id"] for m in doc["verificationMethod"]]
    assert did in listed


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_our_context_is_served_byte_for_byte_with_its_published_digest(backbone):
    import base64
    import hashlib

    from microcred_shared.vc import contexts

    async with backbone.http("registry") as client:
        r = await client.get("/contexts/microcred/v1")
        did = await client.get("/issuers/lakeshore-college/did.json")
    published = contexts.sha256_of(contexts.MICROCRED_V1_URL)
    assert hashlib.sha256(r.content).hexdigest() == published
    assert published in ADR.read_text()  # noqa: ASYNC240 - a small local file
    assert r.headers["content-digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(r.content).digest()).decode() + ":")
    assert "immutable" in r.headers["cache-control"]
    assert r.headers["access-control-allow-origin"] == "*"
    assert did.status_code == 200 and did.json()["id"] == backbone.issuer_did("lakeshore-college")
    assert len(did.content) < 8192  # the did:web driver's size limit
