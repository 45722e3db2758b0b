"""The holder's own view of a credential page (who can see it, QR codes to share it, the
employers it is shared with directly) and the routes behind it: QR code downloads, a new
share link made from the page, revoking a share link, and starting or stopping a direct
share with an employer. Each form calls the learner API's own function, so it publishes
what the API would.

A QR code is only ever drawn for a URL its requester may already open: the owner's own
credential, a public page, or a live share link presented by whoever holds it. Share link
tokens are kept only as digests, so a link's QR code can be drawn when it is made (or by the
link's holder at `/c/{token}/qr.svg`), never later from the database."""

import uuid
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from microcred_registry import qr, sharing
from microcred_registry.i18n import translator
from microcred_registry.learners import check_shareable, origin_allowed, owned
from microcred_registry.owner_view import employer_name
from microcred_registry.pages import CredentialPages
from microcred_registry.rendering import language
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.signin import SESSION_COOKIE, Session, SignIn
from microcred_shared.problems import Problem

# What a QR download may be kept for: a public page's code by anyone for a few minutes
# (the holder may make it private again); anything else by the requester's browser only.
PUBLIC_CACHE = "public, max-age=300"
PRIVATE_CACHE = "private, no-store"


def svg_file(url: str, name: str, cache: str) -> Response:
    return Response(qr.document(url), media_type=qr.SVG, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": cache,
        "Vary": "Cookie", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def routes(app: FastAPI, rt: RegistryRuntime, signin: SignIn, pages: CredentialPages) -> None:
    base = rt.settings.public_base_url.rstrip("/")

    async def browser_session(request: Request) -> Session | None:
        """The same guard as the page's other forms: the SameSite=Lax session cookie, and a
        change must not come from another Origin."""
        session = await signin.session(request.cookies.get(SESSION_COOKIE))
        return session if session and origin_allowed(request, base) else None

    @app.get("/v1/credentials/{credential_id}/qr.svg", include_in_schema=False)
    async def credential_qr(credential_id: uuid.UUID, request: Request) -> Response:
        """The QR code of the credential's own URL: for anyone when it is public, for its
        signed-in holder always; otherwise the same 404 as for no credential."""
        async with pages.engine.connect() as conn:
            row = await pages.credential(conn, credential_id)
            visibility = (await sharing.visibility_of(conn, credential_id))[0] if row else None
        # Reading needs no Origin check: a bearer token (programs) or the cookie (browsers).
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        session = await signin.session(bearer if scheme.lower() == "bearer" else
                                       request.cookies.get(SESSION_COOKIE))
        mine = row is not None and session is not None and session.learner_key == \
            row.learner_key
        if row is None or not (visibility == "public" or mine):
            raise Problem(404, "Not found", f"no credential {credential_id}", kind="not-found")
        return svg_file(f"{base}/v1/credentials/{credential_id}",
                        f"credential-{credential_id}-qr.svg",
                        PUBLIC_CACHE if visibility == "public" else PRIVATE_CACHE)

    @app.get("/c/{token}/qr.svg", include_in_schema=False)
    async def link_qr(token: str) -> Response:
        """The QR code of a live share link, for whoever holds the link."""
        async with pages.engine.connect() as conn:
            row = await sharing.credential_for_link(conn, token)
        if row is None:
            raise Problem(410, "Share link not valid", "this share link has expired or was "
                          "withdrawn by its holder", kind="share-link-gone")
        return svg_file(f"{base}/c/{token}", "share-link-qr.svg", PRIVATE_CACHE)

    @app.post("/learner/credentials/{credential_id}/links/new", include_in_schema=False)
    async def new_link(credential_id: uuid.UUID, request: Request) -> Response:
        session = await browser_session(request)
        if session is None:
            return RedirectResponse(f"{base}/learner", status_code=303)
        async with pages.engine.begin() as conn:
            row = await owned(conn, session, credential_id)
            _, token = await sharing.open_link(conn, row, None)
        if rt.relay:
            rt.relay.wake()
        # Shown once, in this answer: the token is kept only as its digest.
        return await pages.owner_page(request, row, new_link=f"{base}/c/{token}")

    @app.post("/learner/credentials/{credential_id}/employers/{employer_id}/remove",
              include_in_schema=False)
    async def stop_sharing(credential_id: uuid.UUID, employer_id: str,
                           request: Request) -> Response:
        session = await browser_session(request)
        if session is None:
            return RedirectResponse(f"{base}/learner", status_code=303)
        if not sharing.EMPLOYER_ID.match(employer_id):
            raise Problem(400, "Invalid employer id", "an employer id is 2-64 characters of "
                          "a-z, 0-9 and -", kind="invalid-request")
        async with pages.engine.begin() as conn:
            row = await owned(conn, session, credential_id)
            # The API's path (DELETE .../employers/{id}): the event it publishes is what
            # withdraws the credential from the employer's feed and webhooks (ADR 10).
            await sharing.change(conn, row, unshare=employer_id)
            name = await employer_name(conn, employer_id)
        if rt.relay:
            rt.relay.wake()
        t = translator(language(request))
        return await pages.owner_page(request, row,
                                      notice=t("employers.removed", employer=name))

    @app.post("/learner/credentials/{credential_id}/employers/add", include_in_schema=False)
    async def start_sharing(credential_id: uuid.UUID, request: Request) -> Response:
        session = await browser_session(request)
        if session is None:
            return RedirectResponse(f"{base}/learner", status_code=303)
        # A plain urlencoded form with one field: no multipart parser needed.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        employer_id = (form.get("employer_id") or [""])[0]
        if not sharing.EMPLOYER_ID.match(employer_id):
            raise Problem(400, "Invalid employer id", "choose an employer from the list",
                          kind="invalid-request")
        async with pages.engine.begin() as conn:
            row = await owned(conn, session, credential_id)
            # The API's path (PUT .../employers/{id}): approved employers only. One
            # suspended since the page was drawn is refused in words, not a problem body.
            try:
                await check_shareable(conn, row, employer_id)
            except Problem:
                said = "employers.unavailable"
            else:
                await sharing.change(conn, row, share_with=employer_id)
                said = "employers.added"
            name = await employer_name(conn, employer_id)
        if rt.relay:
            rt.relay.wake()
        t = translator(language(request))
        return await pages.owner_page(request, row, notice=t(said, employer=name))

    @app.post("/learner/credentials/{credential_id}/links/{share_id}/revoke",
              include_in_schema=False)
    async def revoke_link(credential_id: uuid.UUID, share_id: uuid.UUID,
                          request: Request) -> Response:
        session = await browser_session(request)
        if session is None:
            return RedirectResponse(f"{base}/learner", status_code=303)
        async with pages.engine.begin() as conn:
            row = await owned(conn, session, credential_id)
            # The API's own revocation (DELETE .../shares/{id}); a link already revoked
            # (a second click, another tab) is simply no longer listed.
            done = await sharing.revoke_link(conn, credential_id, share_id)
        t = translator(language(request))
        return await pages.owner_page(request, row, notice=t(
            "owner.link_revoked" if done else "owner.link_already_revoked"))
