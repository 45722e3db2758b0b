"""The 1EdTech Open Badges 3.0 API on the running backbone (ADR 30), driven as a host
platform would drive it: read the service description, register (RFC 7591), send the
learner's browser to the authorization endpoint (sign-in by e-mailed link, then the consent
page, EN and FR), redeem the code with the PKCE verifier, then getCredentials (paged),
upsertCredential (a credential from another issuer kept after it verifies; ours only for
its holder), getProfile/putProfile, refresh and revocation. And the refusals: a wrong PKCE
verifier, a wrong or unregistered redirect URI, a replayed code, a missing scope."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from microcred_shared.vc import keys, proofs
from microcred_testkit.backbone import eventually, issue_over_http, learner
from microcred_testkit.vc_examples import example_credential

pytestmark = pytest.mark.integration
API = "/ims/ob/v3p0"
SCOPE = "https://purl.imsglobal.org/spec/ob/v3p0/scope/"
READ, UPSERT = SCOPE + "credential.readonly", SCOPE + "credential.upsert"
PROFILE_READ, PROFILE_UPDATE = SCOPE + "profile.readonly", SCOPE + "profile.update"
CALLBACK = "https://host.example/ob/callback"
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
PROVIDER, DEFINITION = "lakeshore-college", "lakeshore-workplace-safety"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def basic(client: dict[str, Any]) -> dict[str, str]:
    pair = f"{client['client_id']}:{client['client_secret']}".encode()
    return {"authorization": "Basic " + base64.b64encode(pair).decode()}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def issued(bb: Any, who: Any) -> dict[str, Any]:
    return dict((await issue_over_http(bb, PROVIDER, DEFINITION, who, passed=True))["credential"])


async def register(client: httpx.AsyncClient, scope: str) -> dict[str, Any]:
    r = await client.post(f"{API}/auth/register", json={
        "client_name": "Example Host", "client_uri": "https://host.example/",
        "redirect_uris": [CALLBACK], "scope": scope,
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic"})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def authorize(bb: Any, browser: httpx.AsyncClient, who: Any, client: dict[str, Any],
                    scope: str, *, lang: str = "en") -> tuple[str, str]:
    """The learner's browser through sign-in and consent: (code, verifier)."""
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(8)
    query = urlencode({"response_type": "code", "client_id": client["client_id"],
                       "redirect_uri": CALLBACK, "scope": scope, "state": state,
                       "code_challenge": challenge, "code_challenge_method": "S256",
                       "lang": lang})
    page = await browser.get(f"{API}/auth/authorize?{query}")
    assert page.status_code == 200, page.text
    if 'id="ob-approve"' not in page.text:  # not signed in yet: sign in, come back
        assert "Example Host" in page.text and 'type="email"' in page.text
        r = await browser.post(f"/learner/sign-in?lang={lang}",
                               content=urlencode({"email": who.email}),
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text

        async def mails() -> list[Any]:
            return [m for m in bb.smtp.to(who.email) if "/learner/sign-in/" in m.get_content()]
        mail = (await eventually(mails, lambda m: len(m) >= 1))[-1]
        link = LINK.search(mail.get_content())
        assert link, mail.get_content()
        signed_in = await browser.post(path_of(link.group(0)))
        assert signed_in.status_code == 303, signed_in.text
        back = path_of(signed_in.headers["location"])
        assert back.startswith(f"{API}/auth/authorize?"), back  # back to the request
        page = await browser.get(back)
    assert page.status_code == 200 and 'id="ob-approve"' in page.text, page.text
    assert "Example Host" in page.text and "host.example" in page.text
    assert "form-action 'self' https://host.example" in page.headers[
        "content-security-policy"]
    form = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"',
                           page.text))
    approved = await browser.post(f"{API}/auth/authorize", content=urlencode(
        {**{k: v.replace("&amp;", "&") for k, v in form.items()}, "decision": "approve"}),
        headers={"content-type": "application/x-www-form-urlencoded"})
    assert approved.status_code == 302, approved.text
    location = approved.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert answer["state"] == state and set(answer["scope"].split()) == set(scope.split())
    return answer["code"], verifier


async def token(client: httpx.AsyncClient, registered: dict[str, Any], code: str,
                verifier: str, redirect_uri: str = CALLBACK) -> httpx.Response:
    return await client.post(f"{API}/auth/token", headers=basic(registered), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": verifier})


def foreign_credential() -> dict[str, Any]:
    """An Open Badge from another issuer (did:key), as another host would hand it over."""
    key = keys.private_key_from_seed(secrets.token_bytes(32))
    doc = example_credential(issuer_id=keys.did_key(key.public_key()),
                             credential_id=f"urn:uuid:{uuid.uuid4()}")
    doc["credentialSubject"]["achievement"]["id"] = "https://elsewhere.example/achievements/1"
    return proofs.sign(doc, key, keys.did_key_verification_method(key.public_key()))


async def test_a_host_platform_reads_and_adds_a_learners_credentials(backbone: Any) -> None:
    who = learner(f"ob-{uuid.uuid4().hex[:6]}")
    ours = await issued(backbone, who)
    async with backbone.http("registry") as host, backbone.http("registry") as browser:
        sdd = (await host.get(f"{API}/discovery")).json()
        scheme = sdd["components"]["securitySchemes"]["OAuth2ACG"]
        flow = scheme["flows"]["authorizationCode"]
        assert scheme["type"] == "oauth2" and sdd["openapi"].startswith("3.0")
        assert scheme["x-imssf-registrationUrl"].endswith(f"{API}/auth/register")
        assert flow["authorizationUrl"].endswith(f"{API}/auth/authorize")
        assert flow["tokenUrl"].endswith(f"{API}/auth/token")
        assert set(flow["scopes"]) == {READ, UPSERT, PROFILE_READ, PROFILE_UPDATE}
        assert {"termsOfService", "x-imssf-privacyPolicyUrl", "title"} <= set(sdd["info"])

        everything = " ".join([READ, UPSERT, PROFILE_READ, PROFILE_UPDATE, "offline_access"])
        client = await register(host, everything)
        code, verifier = await authorize(backbone, browser, who, client, everything)
        got = await token(host, client, code, verifier)
        assert got.status_code == 200, got.text
        assert got.headers["cache-control"].startswith("no-store")
        tokens = got.json()
        assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
        bearer = {"authorization": f"Bearer {tokens['access_token']}"}

        # getCredentials: the credential the provider issued, as it was signed.
        r = await host.get(f"{API}/credentials", headers=bearer)
        assert r.status_code == 200, r.text
        assert r.json()["credential"] == [ours] and r.headers["x-total-count"] == "1"
        assert 'rel="first"' in r.headers["link"] and 'rel="next"' not in r.headers["link"]

        # upsertCredential: ours again is already held (200); one from another issuer is
        # verified, then kept (201), then replaced (200).
        r = await host.post(f"{API}/credentials", json=ours, headers=bearer)
        assert r.status_code == 200 and r.json() == ours, r.text
        badge = foreign_credential()
        r = await host.post(f"{API}/credentials", json=badge, headers=bearer)
        assert r.status_code == 201 and r.json() == badge, r.text
        r = await host.post(f"{API}/credentials", json=badge, headers={
            **bearer, "content-type": "application/vc+ld+json"})
        assert r.status_code == 200, r.text
        tampered = {**badge, "name": "A degree I never earned"}
        r = await host.post(f"{API}/credentials", json=tampered, headers=bearer)
        assert r.status_code == 400, r.text
        assert r.json()["imsx_codeMajor"] == "failure"
        assert r.json()["imsx_codeMinor"]["imsx_codeMinorField"][0][
            "imsx_codeMinorFieldValue"] == "invalid_data"

        # Paged: one at a time, oldest first, with the links a client follows.
        first = await host.get(f"{API}/credentials?limit=1&offset=0", headers=bearer)
        second = await host.get(f"{API}/credentials?limit=1&offset=1", headers=bearer)
        assert first.headers["x-total-count"] == second.headers["x-total-count"] == "2"
        assert first.json()["credential"] == [ours] and second.json()["credential"] == [badge]
        assert "offset=1>; rel=\"next\"" in first.headers["link"]
        assert 'rel="prev"' in second.headers["link"] and 'rel="next"' not in second.headers[
            "link"]

        # The profile.
        profile = (await host.get(f"{API}/profile", headers=bearer)).json()
        assert profile["type"] == "Profile"
        r = await host.put(f"{API}/profile", headers=bearer, json={
            "@context": profile["@context"], "type": "Profile", "id": profile["id"],
            "name": "Ana from the host"})
        assert r.status_code == 200 and r.json()["name"] == "Ana from the host", r.text

        # Refresh, then revocation ends access.
        refreshed = await host.post(f"{API}/auth/token", headers=basic(client), data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        fresh = refreshed.json()
        r = await host.post(f"{API}/auth/revoke", headers=basic(client),
                            data={"token": fresh["refresh_token"]})
        assert r.status_code == 200
        r = await host.get(f"{API}/credentials",
                           headers={"authorization": f"Bearer {fresh['access_token']}"})
        assert r.status_code == 401 and "invalid_token" in r.headers["www-authenticate"]
        assert r.json()["imsx_codeMinor"]["imsx_codeMinorField"][0][
            "imsx_codeMinorFieldValue"] == "unauthorizedrequest"


async def test_a_credential_moves_from_one_learner_host_to_another_only_for_its_holder(
        backbone: Any) -> None:
    """Two learners: Ana's credential read with getCredentials cannot be added to Bea's
    backpack (403); Ana's own backpack already holds it (200). Ana then withdraws the
    platform's access from her side."""
    ana, bea = (learner(f"ob-{n}-{uuid.uuid4().hex[:6]}") for n in ("ana", "bea"))
    ours = await issued(backbone, ana)
    await issued(backbone, bea)
    scope = f"{READ} {UPSERT}"
    async with backbone.http("registry") as host:
        client = await register(host, scope)
        bearers, browsers = {}, {}
        for who in (ana, bea):
            browsers[who.email] = browser = backbone.http("registry")
            code, verifier = await authorize(backbone, browser, who, client, scope)
            r = await token(host, client, code, verifier)
            bearers[who.email] = {"authorization": f"Bearer {r.json()['access_token']}"}
        [read] = (await host.get(f"{API}/credentials", headers=bearers[ana.email])
                  ).json()["credential"]
        assert read == ours
        r = await host.post(f"{API}/credentials", json=read, headers=bearers[bea.email])
        assert r.status_code == 403, r.text
        assert r.json()["imsx_codeMinor"]["imsx_codeMinorField"][0][
            "imsx_codeMinorFieldValue"] == "forbidden"
        r = await host.post(f"{API}/credentials", json=read, headers=bearers[ana.email])
        assert r.status_code == 200, r.text

        # Ana sees the platform she approved and withdraws it: its token stops working.
        mine = browsers[ana.email]
        [connection] = (await mine.get("/v1/learner/connections")).json()["connections"]
        assert connection["client_name"] == "Example Host" and connection["scope"] == scope
        r = await browsers[bea.email].delete(f"/v1/learner/connections/{connection['id']}")
        assert r.status_code == 404  # not Bea's to withdraw
        r = await mine.delete(f"/v1/learner/connections/{connection['id']}")
        assert r.status_code == 204, r.text
        r = await host.get(f"{API}/credentials", headers=bearers[ana.email])
        assert r.status_code == 401, r.text
        assert (await mine.get("/v1/learner/connections")).json()["connections"] == []
        assert (await host.get(f"{API}/credentials", headers=bearers[bea.email])
                ).status_code == 200
        for browser in browsers.values():
            await browser.aclose()


async def test_the_refusals_a_host_meets(backbone: Any) -> None:
    who = learner(f"ob-no-{uuid.uuid4().hex[:6]}")
    await issued(backbone, who)
    async with backbone.http("registry") as host, backbone.http("registry") as browser:
        client = await register(host, PROFILE_READ)

        # A redirect URI the client did not register: a page, and no redirect at all.
        _, challenge = pkce()
        r = await browser.get(f"{API}/auth/authorize?" + urlencode({
            "response_type": "code", "client_id": client["client_id"],
            "redirect_uri": "https://evil.example/cb", "code_challenge": challenge,
            "code_challenge_method": "S256", "lang": "fr"}))
        assert r.status_code == 400 and "location" not in r.headers
        assert "adresse qu'elle n'a pas inscrite" in r.text.replace("&#39;", "'")
        # No PKCE: back to the client with invalid_request.
        r = await browser.get(f"{API}/auth/authorize?" + urlencode({
            "response_type": "code", "client_id": client["client_id"],
            "redirect_uri": CALLBACK, "state": "st"}))
        assert r.status_code == 302
        answer = parse_qs(urlsplit(r.headers["location"]).query)
        assert answer["error"] == ["invalid_request"] and answer["state"] == ["st"]

        code, verifier = await authorize(backbone, browser, who, client, PROFILE_READ,
                                         lang="fr")
        wrong_verifier, _ = pkce()
        r = await token(host, client, code, wrong_verifier)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        r = await token(host, client, code, verifier, redirect_uri=CALLBACK + "/other")
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        r = await host.post(f"{API}/auth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic")

        good = await token(host, client, code, verifier)
        assert good.status_code == 200, good.text
        bearer = {"authorization": f"Bearer {good.json()['access_token']}"}
        # A token for profile.readonly reads the profile, not the credentials.
        assert (await host.get(f"{API}/profile", headers=bearer)).status_code == 200
        r = await host.get(f"{API}/credentials", headers=bearer)
        assert r.status_code == 403, r.text
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert r.json()["imsx_codeMinor"]["imsx_codeMinorField"][0][
            "imsx_codeMinorFieldValue"] == "forbidden"

        # The code again: refused, and the token it gave stops working.
        r = await token(host, client, code, verifier)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        assert (await host.get(f"{API}/profile", headers=bearer)).status_code == 401

        # The learner refuses: access_denied goes back to the client.
        verifier, challenge = pkce()
        page = await browser.get(f"{API}/auth/authorize?" + urlencode({
            "response_type": "code", "client_id": client["client_id"],
            "redirect_uri": CALLBACK, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": "no", "lang": "fr"}))
        assert "Autoriser l" in page.text.replace("&#39;", "'") and 'id="ob-deny"' in page.text
        form = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"',
                               page.text))
        r = await browser.post(f"{API}/auth/authorize", content=urlencode(
            {**form, "decision": "deny"}),
            headers={"content-type": "application/x-www-form-urlencoded"})
        answer = parse_qs(urlsplit(r.headers["location"]).query)
        assert r.status_code == 302 and answer["error"] == ["access_denied"]
