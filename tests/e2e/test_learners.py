"""Learners own their credentials: e-mailed one-time sign-in, every credential from every
provider, download and export, visibility, direct shares with employers and share links —
on the real backbone (the link is read from the mail notify sent over SMTP)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import decode, parse_envelope
from microcred_shared.contract.events import learner_key
from microcred_shared.contract.events_learners import CredentialVisibilityChanged
from microcred_testkit.backbone import (
    approved_employer,
    eventually,
    learner,
    records_on,
)
from microcred_testkit.backbone import issue_over_http as issue

pytestmark = pytest.mark.integration
JSON = {"accept": "application/json"}
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")


async def ask_link(bb, who) -> str:
    """Ask for a sign-in link and read it from the mail notify delivers."""
    seen = len(await _signin_mails(bb, who.email))
    async with bb.http("registry") as client:
        r = await client.post("/v1/learner/sign-in", json={"email": who.email})
    assert r.status_code == 202, r.text
    mails = await eventually(
        lambda: _signin_mails(bb, who.email), lambda m: len(m) > seen)
    assert len(mails) > seen, "no sign-in mail arrived"
    found = LINK.search(mails[-1].get_content())
    assert found, mails[-1].get_content()
    return found.group(0)


async def _signin_mails(bb, email):
    return [m for m in bb.smtp.to(email) if "/learner/sign-in/" in m.get_content()]


async def session_token(bb, who) -> str:
    link = await ask_link(bb, who)
    async with bb.http("registry") as client:
        r = await client.post(link.split(bb.url("registry"), 1)[1], headers=JSON)
    assert r.status_code == 200, r.text
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=lax" in r.headers["set-cookie"].lower()
    return r.json()["access_token"]


async def test_a_learner_signs_in_by_emailed_link_and_holds_credentials_from_every_provider(
        backbone):
    ana = learner(f"ana-owner-{uuid.uuid4().hex[:6]}")
    on = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", ana,
                     passed=True)
    bc = await issue(backbone, "coast-mountain-university", "cmu-sustainable-forestry", ana,
                     rubric_level="proficient")
    token = await session_token(backbone, ana)

    async with backbone.http("registry", token) as client:
        mine = (await client.get("/v1/learner/credentials")).json()
        assert {c["id"] for c in mine["credentials"]} == {on["id"], bc["id"]}
        assert {c["provider"] for c in mine["credentials"]} == {
            "lakeshore-college", "coast-mountain-university"}
        # Credentials belong to the learner: nobody else sees them until the learner says so.
        assert {c["visibility"] for c in mine["credentials"]} == {"private"}

        download = await client.get(f"/v1/learner/credentials/{on['id']}/download")
        assert download.status_code == 200
        assert "attachment" in download.headers["content-disposition"]
        assert download.json() == on["credential"]  # the signed document, byte for byte

        export = await client.get("/v1/learner/credentials/export")
        assert export.status_code == 200 and "attachment" in export.headers[
            "content-disposition"]
        assert sorted(c["id"] for c in export.json()["credentials"]) == sorted(
            [on["credential"]["id"], bc["credential"]["id"]])

        out = await client.post("/v1/learner/sign-out")
        assert out.status_code == 204
        assert (await client.get("/v1/learner/credentials")).status_code == 401


async def test_a_used_a_forged_and_an_expired_sign_in_link_are_all_refused(backbone):
    ben = learner(f"ben-links-{uuid.uuid4().hex[:6]}", language="fr")
    await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", ben, passed=True)
    link = await ask_link(backbone, ben)
    path = link.split(backbone.url("registry"), 1)[1]
    async with backbone.http("registry") as client:
        # A browser (or a mail scanner) opening the link sees a confirmation, not a session.
        page = await client.get(path, headers={"accept": "text/html"})
        assert page.status_code == 200 and "<form" in page.text
        assert "set-cookie" not in page.headers
        first = await client.post(path, headers=JSON)
        assert first.status_code == 200
        again = await client.post(path, headers=JSON)
        assert again.status_code == 410
        assert again.headers["content-type"] == "application/problem+json"
        assert again.json()["type"].endswith("/signin-link-invalid")

        forged = await client.post("/learner/sign-in/" + "A" * 43, headers=JSON)
        assert forged.status_code == 410
        forged_page = await client.get("/learner/sign-in/" + "A" * 43,
                                       headers={"accept": "text/html"})
        assert forged_page.status_code == 410 and "Ask for a new one" in forged_page.text

        stale = (await ask_link(backbone, ben)).split(backbone.url("registry"), 1)[1]
        # Looking at the confirmation page does not spend the link: wait for it to lapse.
        lapsed = await eventually(
            lambda: client.get(stale, headers={"accept": "text/html"}),
            lambda r: r.status_code == 410, timeout=60, interval=1.0)
        assert lapsed.status_code == 410
        late = await client.post(stale, headers=JSON)
        assert late.status_code == 410


async def test_sign_in_answers_the_same_for_unknown_addresses_and_limits_requests(backbone):
    email = f"nobody-{uuid.uuid4().hex[:8]}@learners.example"
    async with backbone.http("registry") as client:
        answers = [await client.post("/v1/learner/sign-in", json={"email": email})
                   for _ in range(5)]
        assert {r.status_code for r in answers} == {202}
        assert len({r.text for r in answers}) == 1
        limited = await client.post("/v1/learner/sign-in", json={"email": email.upper()})
        assert limited.status_code == 429 and "retry-after" in limited.headers
    tokens = await backbone.scalar(
        "registry", "SELECT count(*) FROM learner_signin_tokens WHERE learner_key = $1",
        learner_key(email))
    assert tokens == 0  # nothing to mail: no link was made


async def test_the_learner_api_needs_a_session_and_shows_only_the_learners_own(backbone):
    cara, dan = (learner(f"{n}-{uuid.uuid4().hex[:6]}") for n in ("cara-own", "dan-other"))
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", cara,
                       passed=True)
    await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", dan, passed=True)
    async with backbone.http("registry") as client:
        anonymous = await client.get("/v1/learner/credentials")
        assert anonymous.status_code == 401
    async with backbone.http("registry", await session_token(backbone, dan)) as client:
        theirs = await client.get(f"/v1/learner/credentials/{cred['id']}/download")
        assert theirs.status_code == 404
        grab = await client.post(f"/v1/learner/credentials/{cred['id']}/shares", json={})
        assert grab.status_code == 404


async def visibility_events(bb, credential_id: str) -> list[CredentialVisibilityChanged]:
    events = [decode(parse_envelope(rec.headers), rec.value)
              for rec in await records_on(bb, topics.CREDENTIAL_VISIBILITY)]
    return [e for e in events if isinstance(e, CredentialVisibilityChanged)
            and str(e.credential_id) == credential_id]


async def test_each_visibility_and_direct_share_change_is_published_for_employers(backbone):
    eve = learner(f"eve-visible-{uuid.uuid4().hex[:6]}")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", eve,
                       passed=True)
    organisation = f"Acme Hiring {uuid.uuid4().hex[:6]} Inc."
    acme, _ = await approved_employer(backbone, organisation)
    async with backbone.http("registry", await session_token(backbone, eve)) as client:
        base = f"/v1/learner/credentials/{cred['id']}"
        r = await client.put(base + "/visibility", json={"visibility": "employers"})
        assert r.status_code == 200 and r.json()["visibility"] == "employers"
        # Only an employer an operator approved can be shared with; the registry learns of
        # it from notify's employer directory.
        refused = await client.put(base + "/employers/acme-never-registered")
        assert refused.status_code == 404
        assert refused.json()["type"].endswith("employer-not-found")
        listed = await eventually(lambda: client.get("/v1/learner/employers"),
                                  lambda r: acme in {e["id"] for e in r.json()["employers"]})
        assert {"id": acme, "name": organisation, "website": None} in listed.json()["employers"]
        assert (await client.put(base + f"/employers/{acme}")).json()["shared_with"] == [acme]
        detail = (await client.get(base)).json()
        assert [(s["employer_id"], s["name"], s["status"]) for s in
                detail["employer_shares"]] == [(acme, organisation, "approved")]
        async with backbone.http("notify", backbone.operator_token) as notify:
            renamed = await notify.patch(f"/v1/admin/employers/{acme}",
                                         json={"organisation": organisation + " (Canada)"})
            assert renamed.status_code == 200, renamed.text
        detail = await eventually(lambda: client.get(base), lambda r: r.json()[
            "employer_shares"][0]["name"] == organisation + " (Canada)")
        assert detail.json()["employer_shares"][0]["name"] == organisation + " (Canada)"
        assert (await client.put(base + "/employers/Not_An_Id!")).status_code == 400
        assert (await client.delete(base + f"/employers/{acme}")).json()["shared_with"] == []
        assert (await client.put(base + "/visibility", json={"visibility": "secret"})
                ).status_code == 400
    events = await eventually(lambda: visibility_events(backbone, cred["id"]),
                              lambda e: len(e) >= 3)
    assert [(e.visibility, e.shared_with) for e in events] == [
        ("employers", []), ("employers", [acme]), ("employers", [])]
    assert {e.learner_key for e in events} == {learner_key(eve.email)}
    assert {e.provider_id for e in events} == {"lakeshore-college"}
    # Each of these lets employers see it: each carries what notify tells them (ADR 10).
    assert [(e.definition_id, e.credential) for e in events] == [
        ("lakeshore-workplace-safety", cred["credential"])] * 3


async def test_share_links_open_the_credential_until_revoked_expired_or_made_private(backbone):
    fay = learner(f"fay-share-{uuid.uuid4().hex[:6]}")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", fay,
                       passed=True)
    registry = backbone.url("registry")
    async with backbone.http("registry", await session_token(backbone, fay)) as me, \
            backbone.http("registry") as anyone:
        base = f"/v1/learner/credentials/{cred['id']}"
        page_by_id = await anyone.get(f"/v1/credentials/{cred['id']}",
                                      headers={"accept": "text/html"})
        assert page_by_id.status_code == 404  # private: no page for strangers
        # ...nor the signed JSON (ADR 9, revised: the JSON follows the holder's choice too).
        assert (await anyone.get(f"/v1/credentials/{cred['id']}")).status_code == 404

        lasting = (await me.post(base + "/shares", json={})).json()
        assert lasting["visibility"] == "link"  # a link on a private credential opens it
        soon = (await me.post(base + "/shares", json={"expires_at": (
            datetime.now(UTC) + timedelta(seconds=3)).isoformat()})).json()
        for link in (lasting, soon):
            path = link["url"].removeprefix(registry)
            page = await anyone.get(path, headers={"accept": "text/html"})
            assert page.status_code == 200 and fay.full_name in page.text
            assert (await anyone.get(path, headers=JSON)).json() == cred["credential"]

        soon_path = soon["url"].removeprefix(registry)
        expired = await eventually(lambda: anyone.get(soon_path, headers=JSON),
                                   lambda r: r.status_code == 410, timeout=30)
        assert expired.status_code == 410

        lasting_path = lasting["url"].removeprefix(registry)
        await me.put(base + "/visibility", json={"visibility": "private"})
        assert (await anyone.get(lasting_path, headers=JSON)).status_code == 410
        await me.put(base + "/visibility", json={"visibility": "link"})
        assert (await anyone.get(lasting_path, headers=JSON)).status_code == 200

        assert (await me.delete(f"{base}/shares/{lasting['id']}")).status_code == 204
        gone = await anyone.get(lasting_path, headers={"accept": "text/html"})
        assert gone.status_code == 410 and "no longer works" in gone.text
        states = {s["id"]: s["state"] for s in (await me.get(base + "/shares")).json()["shares"]}
        assert states == {lasting["id"]: "revoked", soon["id"]: "expired"}

        await me.put(base + "/visibility", json={"visibility": "public"})
        public = await anyone.get(f"/v1/credentials/{cred['id']}",
                                  headers={"accept": "text/html"})
        assert public.status_code == 200 and fay.full_name in public.text
        profile = (await me.get("/v1/learner/profile")).json()["url"]
        listed = await anyone.get(profile.removeprefix(registry))
        assert listed.status_code == 200 and "Workplace Health and Safety" in listed.text
