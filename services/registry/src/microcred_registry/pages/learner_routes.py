"""The learner's own pages (browser, session cookie): signing in from the e-mailed link,
the list at `/learner`, and the forms on it and on each credential's page. Every form calls
the same wallet use case as the learner API (microcred_registry.wallet.handlers).

A browser that opens an e-mailed link first gets a confirmation page whose button spends the
link (POST): mail scanners that prefetch links must not use up a single-use token. A program
(Accept: application/json) exchanges the link on GET or POST and gets a bearer token."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from microcred_registry.credentials.domain import credential_url
from microcred_registry.delivery.routes import ExchangeService
from microcred_registry.deps import (
    BaseUrl,
    BrowserLearner,
    Language,
    PagesService,
    SignInService,
    WalletService,
)
from microcred_registry.employers import handlers as directory
from microcred_registry.pages import qr
from microcred_registry.pages.domain import listed
from microcred_registry.pages.i18n import translator
from microcred_registry.pages.rendering import message, render, wants_json_page
from microcred_registry.pages.returns import RETURN_COOKIE, safe_return
from microcred_registry.wallet.domain import EMPLOYER_ID, SESSION_COOKIE, VISIBILITIES
from microcred_registry.wallet.handlers import UnknownEmployer, invalid_employer_id
from microcred_registry.wallet.models import SignInRequest
from microcred_registry.wallet.signin import SignIn
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter()


async def _form(request: Request) -> dict[str, str]:
    # Plain urlencoded forms: no multipart parser needed.
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body).items()}


def _bad_link(request: Request, base: str, lang: str) -> Response:
    return message(request, 410, "signin.bad.title", "signin.bad.body",
                   link={"href": f"{base}/learner", "text": translator(lang)("signin.again")})


async def _exchange(token: str, request: Request, signin: SignIn, base: str, lang: str, *,
                    as_json: bool) -> Response:
    """Spend a sign-in link; the session goes in an HttpOnly cookie either way."""
    try:
        secret, session = await signin.exchange(token)
    except Problem:
        if as_json:
            raise
        return _bad_link(request, base, lang)
    if as_json:
        response: Response = JSONResponse({
            "access_token": secret, "token_type": "Bearer",
            "expires_at": session.expires_at.isoformat(),
            "credentials_url": f"{base}/v1/learner/credentials"},
            headers={"Cache-Control": "no-store"})
    else:
        # Back to an Open Badges API consent page that sent the learner to sign in (ADR 30).
        back = safe_return(request.cookies.get(RETURN_COOKIE))
        response = RedirectResponse(f"{base}{back or f'/learner?lang={lang}'}", status_code=303)
        if back:
            response.delete_cookie(RETURN_COOKIE, path="/")
    response.set_cookie(SESSION_COOKIE, secret, max_age=int(
        signin.policy.session_ttl.total_seconds()), httponly=True,
        secure=base.startswith("https://"), samesite="lax", path="/")
    return response


@router.get("/learner/sign-in/{token}", responses={
    **problems.media(200, "text/html", "application/json", description="a page asking to "
                     "confirm (a mail scanner opening the link signs no one in), or the "
                     "session for Accept: application/json"),
    410: problems.response(410, "text/html")})
async def open_link(token: str, request: Request, signin: SignInService, base: BaseUrl,
                    lang: Language) -> Response:
    if wants_json_page(request, default=False):
        return await _exchange(token, request, signin, base, lang, as_json=True)
    if not await signin.usable(token):
        return _bad_link(request, base, lang)
    return message(request, 200, "signin.confirm.title", "signin.confirm.body",
                   form_action=f"{request.url.path}?lang={lang}",
                   button=translator(lang)("signin.confirm.button"))


@router.post("/learner/sign-in/{token}", responses={
    **problems.media(200, "application/json", description="the session (Accept: "
                     "application/json)"),
    303: {"description": "signed in: the browser goes to /learner"},
    410: problems.response(410, "text/html")})
async def use_link(token: str, request: Request, signin: SignInService, base: BaseUrl,
                   lang: Language) -> Response:
    as_json = wants_json_page(request, default=False) or request.headers.get(
        "content-type", "").startswith("application/json")
    return await _exchange(token, request, signin, base, lang, as_json=as_json)


@router.get("/learner", include_in_schema=False)
async def learner_home(request: Request, session: BrowserLearner,
                       pages: PagesService) -> Response:
    if session is None:
        return render(request, "signin.html")
    return await pages.home(request, session)


@router.post("/learner/sign-in", include_in_schema=False)
async def request_link_form(request: Request, signin: SignInService,
                            lang: Language) -> Response:
    email = (await _form(request)).get("email", "").strip()
    try:
        SignInRequest(email=email)
    except ValueError:
        return render(request, "signin.html", status=400, email=email, invalid=True)
    await signin.request(email, lang)
    t = translator(lang)
    return render(request, "message.html", heading=t("signin.sent.title"),
                  paragraphs=[t("signin.sent.body", minutes=signin.link_minutes)])


@router.post("/learner/sign-out", include_in_schema=False)
async def sign_out_form(request: Request, signin: SignInService, base: BaseUrl) -> Response:
    await signin.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{base}/learner", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/learner/credentials/{credential_id}/{action}", include_in_schema=False)
async def act(credential_id: uuid.UUID, action: str, request: Request,
              session: BrowserLearner, wallet: WalletService, pages: PagesService,
              base: BaseUrl) -> Response:
    """The list's forms: change a credential's visibility, or make a share link."""
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    form = await _form(request)
    new_link = None
    if action == "visibility" and form.get("visibility") in VISIBILITIES:
        await wallet.set_visibility(session, credential_id, form["visibility"])
    elif action == "shares":
        _, link = await wallet.new_link(session, credential_id)
        new_link = link["url"]
    else:
        await wallet.held(session, credential_id)  # still only for the holder
    return await pages.home(request, session, new_link)


@router.post("/learner/credentials/{credential_id}/wallets/lcw", include_in_schema=False)
async def add_to_lcw(credential_id: uuid.UUID, request: Request, session: BrowserLearner,
                     wallet: WalletService, exchanges: ExchangeService, base: BaseUrl,
                     lang: Language) -> Response:
    """"Add to the Learner Credential Wallet": a new single-use exchange (the API's
    `POST /v1/learner/credentials/{id}/exchanges`), as its deep link and QR code."""
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    row = await wallet.held(session, credential_id)
    opened = await exchanges.start(session, credential_id)
    title, _ = listed(dict(row.document), lang, row.title)
    link = opened["deep_link"]
    return render(request, "wallet_lcw.html", headers={"Cache-Control": "no-store"},
                  title=title, link=link, qr=qr.inline(link, translator(lang)("lcw.qr")),
                  back=credential_url(base, credential_id),
                  expires=opened["expires_at"][:16].replace("T", " "))


@router.post("/learner/credentials/{credential_id}/links/new", include_in_schema=False)
async def new_link(credential_id: uuid.UUID, request: Request, session: BrowserLearner,
                   wallet: WalletService, pages: PagesService, base: BaseUrl) -> Response:
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    changed, link = await wallet.new_link(session, credential_id)
    # Shown once, in this answer: the token is kept only as its digest.
    return await pages.owner_page(request, changed.row, new_link=link["url"])


@router.post("/learner/credentials/{credential_id}/employers/{employer_id}/remove",
             include_in_schema=False)
async def stop_sharing(credential_id: uuid.UUID, employer_id: str, request: Request,
                       session: BrowserLearner, wallet: WalletService, pages: PagesService,
                       base: BaseUrl, lang: Language) -> Response:
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    # The API's use case (DELETE .../employers/{id}).
    changed = await wallet.stop_sharing(session, credential_id, employer_id)
    async with pages.engine.connect() as conn:
        name = await directory.employer_name(conn, employer_id)
    return await pages.owner_page(request, changed.row, notice=translator(lang)(
        "employers.removed", employer=name))


@router.post("/learner/credentials/{credential_id}/employers/add", include_in_schema=False)
async def start_sharing(credential_id: uuid.UUID, request: Request, session: BrowserLearner,
                        wallet: WalletService, pages: PagesService, base: BaseUrl,
                        lang: Language) -> Response:
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    employer_id = (await _form(request)).get("employer_id", "")
    if not EMPLOYER_ID.match(employer_id):
        raise invalid_employer_id("choose an employer from the list")
    # The API's use case (PUT .../employers/{id}): approved employers only. One suspended
    # since the page was drawn is refused in words, not a problem body.
    try:
        row = (await wallet.share_with(session, credential_id, employer_id)).row
        said = "employers.added"
    except UnknownEmployer:
        row = await wallet.held(session, credential_id)
        said = "employers.unavailable"
    async with pages.engine.connect() as conn:
        name = await directory.employer_name(conn, employer_id)
    return await pages.owner_page(request, row, notice=translator(lang)(said, employer=name))


@router.post("/learner/credentials/{credential_id}/links/{share_id}/revoke",
             include_in_schema=False)
async def revoke_link(credential_id: uuid.UUID, share_id: uuid.UUID, request: Request,
                      session: BrowserLearner, wallet: WalletService, pages: PagesService,
                      base: BaseUrl, lang: Language) -> Response:
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    # The API's own revocation (DELETE .../shares/{id}); a link already revoked (a second
    # click, another tab) is simply no longer listed.
    row, done = await wallet.revoke_link(session, credential_id, share_id)
    return await pages.owner_page(request, row, notice=translator(lang)(
        "owner.link_revoked" if done else "owner.link_already_revoked"))
