"""What a learner chose governs every way to a credential (ADR 9, issue 13 item 8): its JSON
and its page by id, its verification by id, `/v1/verify?url=` for our own URLs and its QR
code; the issuer, the holder and the operator keep access; an approved employer reads it
while it is shared with it; a share link works at its own URL until it is revoked. A
document someone holds is verified as given, whatever the holder chose. On the real
backbone: credentials issued through assessment, employers approved through notify, keys
projected by the registry from Kafka."""

from __future__ import annotations

import re
import uuid

import pytest

from microcred_testkit.backbone import approved_employer, eventually, learner
from microcred_testkit.backbone import issue_over_http as issue

pytestmark = pytest.mark.integration
JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}
SIGN_IN_LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
PROVIDER, OTHER_PROVIDER = "lakeshore-college", "coast-mountain-university"


async def session_token(bb, who) -> str:
    """The learner signs in with the link notify mails: a bearer session (`mcl_...`)."""
    async with bb.http("registry") as client:
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        mails = await eventually(lambda: _signin_mails(bb, who.email), lambda m: len(m) >= 1)
        link = SIGN_IN_LINK.search(mails[-1].get_content())
        assert link, mails[-1].get_content()
        r = await client.post(link.group(0).split(bb.url("registry"), 1)[1], headers=JSON)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def _signin_mails(bb, email):
    return [m for m in bb.smtp.to(email) if "/learner/sign-in/" in m.get_content()]


def paths(cid: str) -> list[str]:
    """Every GET that returns the credential or its holder's data by its id."""
    return [f"/v1/credentials/{cid}", f"/v1/credentials/{cid}?format=json",
            f"/v1/credentials/{cid}/verification", f"/v1/credentials/{cid}/qr.svg"]


async def statuses(client, cid: str, registry: str) -> dict[str, int]:
    out = {p: (await client.get(p, headers=JSON)).status_code for p in paths(cid)}
    out["page"] = (await client.get(f"/v1/credentials/{cid}", headers=HTML)).status_code
    out["verify-url"] = (await client.get(
        "/v1/verify", params={"url": f"{registry}/v1/credentials/{cid}"})).status_code
    return out


def every(code: int, cid: str) -> dict[str, int]:
    return {**{p: code for p in paths(cid)}, "page": code, "verify-url": code}


async def test_a_private_credential_is_404_to_anyone_and_readable_by_holder_issuer_operator(
        backbone):
    gil = learner(f"gil-private-{uuid.uuid4().hex[:6]}")
    cred = await issue(backbone, PROVIDER, "lakeshore-workplace-safety", gil, passed=True)
    cid, registry = cred["id"], backbone.url("registry")
    missing = str(uuid.uuid4())
    async with backbone.http("registry") as anyone:
        assert await statuses(anyone, cid, registry) == every(404, cid)
        # Exactly what a credential that does not exist answers: nothing tells them apart.
        hidden = (await anyone.get(f"/v1/credentials/{cid}")).json()
        absent = (await anyone.get(f"/v1/credentials/{missing}")).json()
        assert {k: v for k, v in hidden.items() if k not in ("detail", "instance")} == {
            k: v for k, v in absent.items() if k not in ("detail", "instance")}
        assert gil.full_name not in (await anyone.get(f"/v1/credentials/{cid}")).text
        # A document someone holds is verified as given: no access to ours is needed.
        held = await anyone.post("/credentials/verify",
                                 json={"verifiableCredential": cred["credential"]})
        assert held.status_code == 200 and held.json()["verified"] is True

    holder = await session_token(backbone, gil)
    for token in (holder, backbone.operator_token, backbone.api_keys[PROVIDER]):
        async with backbone.http("registry", token) as reader:
            got = await eventually(lambda r=reader: r.get(f"/v1/credentials/{cid}"),
                                   lambda r: r.status_code == 200)
            assert got.json() == cred["credential"]
            assert got.headers["cache-control"] == "private, no-store"
            assert "Authorization" in got.headers["vary"]
            v = await reader.get(f"/v1/credentials/{cid}/verification")
            assert v.status_code == 200 and v.json()["verified"] is True
            by_url = await reader.get("/v1/verify",
                                      params={"url": f"{registry}/v1/credentials/{cid}"})
            assert by_url.status_code == 200 and by_url.json()["verified"] is True

    async with backbone.http("registry", backbone.api_keys[OTHER_PROVIDER]) as other:
        # Another provider is not the issuer: the same 404 as anyone.
        assert (await other.get(f"/v1/credentials/{cid}")).status_code == 404
        assert (await other.get(f"/v1/credentials/{cid}/verification")).status_code == 404
    async with backbone.http("registry", "mcp_forged.secret") as forged:
        r = await forged.get(f"/v1/credentials/{cid}")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_link_stops_the_link_and_the_id_for_whoever_opened_it(backbone):
    hal = learner(f"hal-link-{uuid.uuid4().hex[:6]}")
    cred = await issue(backbone, PROVIDER, "lakeshore-workplace-safety", hal, passed=True)
    cid, registry = cred["id"], backbone.url("registry")
    async with backbone.http("registry", await session_token(backbone, hal)) as me, \
            backbone.http("registry") as viewer:
        base = f"/v1/learner/credentials/{cid}"
        link = (await me.post(base + "/shares", json={})).json()
        assert link["visibility"] == "link"
        path = link["url"].removeprefix(registry)
        # The viewer reads through the link, and from the document learns the id...
        doc = (await viewer.get(path, headers=JSON)).json()
        assert doc == cred["credential"] and doc["id"] == f"urn:uuid:{cid}"
        assert (await viewer.get(path + "/qr.svg")).status_code == 200
        linked = await viewer.get("/v1/verify", params={"url": link["url"]})
        assert linked.status_code == 200 and linked.json()["verified"] is True
        # ...but the id opens nothing: a link is read at its own URL only.
        assert await statuses(viewer, cid, registry) == every(404, cid)

        assert (await me.delete(f"{base}/shares/{link['id']}")).status_code == 204
        assert (await viewer.get(path, headers=JSON)).status_code == 410
        assert (await viewer.get(path, headers=HTML)).status_code == 410
        assert (await viewer.get(path + "/qr.svg")).status_code == 410
        assert (await viewer.get("/v1/verify", params={"url": link["url"]})).status_code == 410
        assert await statuses(viewer, cid, registry) == every(404, cid)


async def test_an_employer_reads_while_shared_with_it_and_not_once_unshared(backbone):
    ivy = learner(f"ivy-employer-{uuid.uuid4().hex[:6]}")
    cred = await issue(backbone, PROVIDER, "lakeshore-workplace-safety", ivy, passed=True)
    cid, registry = cred["id"], backbone.url("registry")
    acme, acme_key = await approved_employer(backbone, f"Acme Readers {uuid.uuid4().hex[:6]}")
    globex, globex_key = await approved_employer(backbone, f"Globex Readers {uuid.uuid4().hex[:6]}")
    async with backbone.http("registry", await session_token(backbone, ivy)) as me, \
            backbone.http("registry", acme_key) as acme_reads, \
            backbone.http("registry", globex_key) as globex_reads, \
            backbone.http("registry") as anyone:
        base = f"/v1/learner/credentials/{cid}"
        # The registry learns of both employers and their keys from notify over Kafka.
        await eventually(lambda: me.get("/v1/learner/employers"), lambda r: {acme, globex} <= {
            e["id"] for e in r.json()["employers"]})
        known = await eventually(lambda: acme_reads.get(f"/v1/credentials/{cid}"),
                                 lambda r: r.status_code != 401)
        assert known.status_code == 404  # private, not shared: an employer reads nothing

        assert (await me.put(base + f"/employers/{acme}")).json()["shared_with"] == [acme]
        got = await acme_reads.get(f"/v1/credentials/{cid}")
        assert got.status_code == 200 and got.json() == cred["credential"]
        assert await statuses(acme_reads, cid, registry) == every(200, cid)
        # Shared with Acme only: Globex and anyone still get the 404.
        globex_status = await eventually(lambda: globex_reads.get(f"/v1/credentials/{cid}"),
                                         lambda r: r.status_code != 401)
        assert globex_status.status_code == 404
        assert (await anyone.get(f"/v1/credentials/{cid}")).status_code == 404

        # Open to employers: every approved employer reads it, anyone still does not.
        await me.put(base + "/visibility", json={"visibility": "employers"})
        assert (await globex_reads.get(f"/v1/credentials/{cid}")).status_code == 200
        assert (await anyone.get(f"/v1/credentials/{cid}")).status_code == 404
        await me.put(base + "/visibility", json={"visibility": "private"})
        assert (await globex_reads.get(f"/v1/credentials/{cid}")).status_code == 404

        # Unshared: Acme, which once held the id, reads nothing any more.
        assert (await me.delete(base + f"/employers/{acme}")).json()["shared_with"] == []
        assert await statuses(acme_reads, cid, registry) == every(404, cid)

        # A suspended employer's key stops working (notify revokes it and tells the registry).
        await me.put(base + f"/employers/{acme}")
        assert (await acme_reads.get(f"/v1/credentials/{cid}")).status_code == 200
        async with backbone.http("notify", backbone.operator_token) as notify:
            assert (await notify.post(f"/v1/admin/employers/{acme}/suspend")).status_code == 200
        gone = await eventually(lambda: acme_reads.get(f"/v1/credentials/{cid}"),
                                lambda r: r.status_code == 401, timeout=30)
        assert gone.status_code == 401


async def test_a_public_credential_is_readable_by_anyone_until_made_private_again(backbone):
    joy = learner(f"joy-public-{uuid.uuid4().hex[:6]}")
    cred = await issue(backbone, PROVIDER, "lakeshore-workplace-safety", joy, passed=True)
    cid, registry = cred["id"], backbone.url("registry")
    async with backbone.http("registry", await session_token(backbone, joy)) as me, \
            backbone.http("registry") as anyone:
        base = f"/v1/learner/credentials/{cid}"
        await me.put(base + "/visibility", json={"visibility": "public"})
        assert await statuses(anyone, cid, registry) == every(200, cid)
        assert (await anyone.get(f"/v1/credentials/{cid}")).json() == cred["credential"]
        await me.put(base + "/visibility", json={"visibility": "private"})
        assert await statuses(anyone, cid, registry) == every(404, cid)
