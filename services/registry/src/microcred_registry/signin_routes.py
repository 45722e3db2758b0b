"""HTTP side of learner sign-in, and the learner's own pages at `/learner`.

A browser that opens an e-mailed link first gets a confirmation page whose button spends the
link (POST): mail scanners that prefetch links must not use up a single-use token. A program
(Accept: application/json) exchanges the link on GET or POST and gets a bearer token."""

import uuid
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, EmailStr

from microcred_registry import sharing
from microcred_registry.i18n import translator
from microcred_registry.learners import my_credentials, origin_allowed, owned
from microcred_registry.rendering import language, message, render, wants_json_page
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.signin import SESSION_COOKIE, Session, SignIn
from microcred_shared.problems import Problem


class SignInRequest(BaseModel):
    email: EmailStr
    language: Literal["en", "fr"] | None = None


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body).items()}


def routes(app: FastAPI, rt: RegistryRuntime, signin: SignIn) -> None:  # noqa: C901
    base = rt.settings.public_base_url.rstrip("/")
    secure = base.startswith("https://")
    minutes = max(1, int(signin.policy.link_ttl.total_seconds() // 60))

    def with_cookie(response: Response, secret: str, session: Session) -> Response:
        response.set_cookie(SESSION_COOKIE, secret, max_age=int(
            signin.policy.session_ttl.total_seconds()), httponly=True, secure=secure,
            samesite="lax", path="/")
        return response

    def bad_link(request: Request) -> Response:
        return message(request, 410, "signin.bad.title", "signin.bad.body",
                       link={"href": f"{base}/learner", "text": translator(
                           language(request))("signin.again")})

    async def exchange(token: str, request: Request, *, as_json: bool) -> Response:
        try:
            secret, session = await signin.exchange(token)
        except Problem:
            if as_json:
                raise
            return bad_link(request)
        if as_json:
            response: Response = JSONResponse({
                "access_token": secret, "token_type": "Bearer",
                "expires_at": session.expires_at.isoformat(),
                "credentials_url": f"{base}/v1/learner/credentials"},
                headers={"Cache-Control": "no-store"})
        else:
            response = RedirectResponse(f"{base}/learner", status_code=303)
        return with_cookie(response, secret, session)

    @app.post("/v1/learner/sign-in", status_code=202)
    async def request_link(body: SignInRequest, request: Request) -> dict[str, Any]:
        await signin.request(body.email, body.language or language(request))
        return {"detail": "if this address holds credentials, a one-time sign-in link is on "
                          "its way to it", "link_valid_minutes": minutes}

    @app.get("/learner/sign-in/{token}", include_in_schema=False)
    async def open_link(token: str, request: Request) -> Response:
        if wants_json_page(request, default=False):
            return await exchange(token, request, as_json=True)
        if not await signin.usable(token):
            return bad_link(request)
        t = translator(language(request))
        return message(request, 200, "signin.confirm.title", "signin.confirm.body",
                       form_action=request.url.path, button=t("signin.confirm.button"))

    @app.post("/learner/sign-in/{token}")
    async def use_link(token: str, request: Request) -> Response:
        as_json = wants_json_page(request, default=False) or request.headers.get(
            "content-type", "").startswith("application/json")
        return await exchange(token, request, as_json=as_json)

    @app.post("/v1/learner/sign-out", status_code=204)
    async def sign_out(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        await signin.end(token if scheme.lower() == "bearer" else
                         request.cookies.get(SESSION_COOKIE))
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- the learner's own pages (browser, session cookie) --------------------------------

    async def browser_session(request: Request) -> Session | None:
        session = await signin.session(request.cookies.get(SESSION_COOKIE))
        return session if session and origin_allowed(request, base) else None

    async def home(request: Request, session: Session, new_link: str | None = None) -> Response:
        assert rt.engine is not None
        async with rt.engine.begin() as conn:
            rows = await my_credentials(conn, session.learner_key)
            slug = await sharing.profile_slug(conn, session.learner_key)
        items = [{"id": str(r.credential_id), "title": r.title, "provider": r.provider_id,
                  "status": r.status, "visibility": r.visibility or "private",
                  "url": f"{base}/v1/credentials/{r.credential_id}"} for r in rows]
        return render(request, "learner.html", items=items, new_link=new_link,
                      profile_url=f"{base}/p/{slug}", visibilities=sharing.VISIBILITIES)

    @app.get("/learner", include_in_schema=False)
    async def learner_home(request: Request) -> Response:
        session = await browser_session(request)
        if session is None:
            return render(request, "signin.html")
        return await home(request, session)

    @app.post("/learner/sign-in", include_in_schema=False)
    async def request_link_form(request: Request) -> Response:
        email = (await _form(request)).get("email", "").strip()
        try:
            SignInRequest(email=email)
        except ValueError:
            return render(request, "signin.html", status=400, email=email, invalid=True)
        await signin.request(email, language(request))
        t = translator(language(request))
        return render(request, "message.html", heading=t("signin.sent.title"),
                      paragraphs=[t("signin.sent.body", minutes=minutes)])

    @app.post("/learner/sign-out", include_in_schema=False)
    async def sign_out_form(request: Request) -> Response:
        await signin.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(f"{base}/learner", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.post("/learner/credentials/{credential_id}/{action}", include_in_schema=False)
    async def act(credential_id: uuid.UUID, action: str, request: Request) -> Response:
        session = await browser_session(request)
        if session is None:
            return RedirectResponse(f"{base}/learner", status_code=303)
        form = await _form(request)
        assert rt.engine is not None
        new_link = None
        async with rt.engine.begin() as conn:
            row = await owned(conn, session, credential_id)
            if action == "visibility" and form.get("visibility") in sharing.VISIBILITIES:
                await sharing.change(conn, row, visibility=form["visibility"])
            elif action == "shares":
                _, token = await sharing.create_link(conn, row, None)
                visibility, _ = await sharing.visibility_of(conn, credential_id)
                await sharing.change(conn, row, visibility=sharing.wider(visibility, "link"))
                new_link = f"{base}/c/{token}"
        if rt.relay:
            rt.relay.wake()
        return await home(request, session, new_link)
