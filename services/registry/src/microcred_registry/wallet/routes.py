"""The learner API: my credentials from every provider, download and export, visibility,
direct shares with employers (by name, from the employer directory), share links, my public
profile; and sign-in by e-mailed link. Signed-in learners only (session cookie or
`Authorization: Bearer mcl_...`), except asking for a link and signing out."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from microcred_registry.credentials.domain import VC_JSON
from microcred_registry.deps import Language, Learner, SignInService, WalletService
from microcred_registry.wallet.domain import SESSION_COOKIE
from microcred_registry.wallet.models import ShareCreate, SignInRequest, VisibilityChange
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter()


@router.post("/v1/learner/sign-in", responses=problems.responses(429), status_code=202)
async def request_link(body: SignInRequest, lang: Language,
                       signin: SignInService) -> dict[str, Any]:
    await signin.request(body.email, body.language or lang)
    return {"detail": "if this address holds credentials, a one-time sign-in link is on "
                      "its way to it", "link_valid_minutes": signin.link_minutes}


@router.post("/v1/learner/sign-out", status_code=204)
async def sign_out(request: Request, signin: SignInService) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    await signin.end(token if scheme.lower() == "bearer" else
                     request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/v1/learner/credentials")
async def list_mine(session: Learner, wallet: WalletService) -> dict[str, Any]:
    return await wallet.mine(session)


# Declared before `/v1/learner/credentials/{credential_id}`, which would otherwise take
# "export" for an id (and refuse it as not a UUID): the first matching route wins.
@router.get("/v1/learner/credentials/export")
async def export_all(session: Learner, wallet: WalletService) -> Response:
    name, bundle = await wallet.export(session)
    return Response(json.dumps(bundle, ensure_ascii=False, indent=2),
                    media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/v1/learner/credentials/{credential_id}", responses=problems.responses(404))
async def one(credential_id: uuid.UUID, session: Learner,
              wallet: WalletService) -> dict[str, Any]:
    return await wallet.credential(session, credential_id)


@router.get("/v1/learner/credentials/{credential_id}/download",
            responses={**problems.responses(404), **problems.media(200, VC_JSON)})
async def download(credential_id: uuid.UUID, session: Learner,
                   wallet: WalletService) -> Response:
    row = await wallet.held(session, credential_id)
    return JSONResponse(dict(row.document), media_type=VC_JSON, headers={
        "Content-Disposition": f'attachment; filename="credential-{credential_id}.json"'})


@router.put("/v1/learner/credentials/{credential_id}/visibility", responses=problems.responses(404))
async def set_visibility(credential_id: uuid.UUID, body: VisibilityChange,
                         session: Learner, wallet: WalletService) -> dict[str, Any]:
    return (await wallet.set_visibility(session, credential_id, body.visibility)).state


@router.put("/v1/learner/credentials/{credential_id}/employers/{employer_id}",
            responses=problems.responses(404))
async def share_with_employer(credential_id: uuid.UUID, employer_id: str,
                              session: Learner, wallet: WalletService) -> dict[str, Any]:
    return (await wallet.share_with(session, credential_id, employer_id)).state


@router.delete("/v1/learner/credentials/{credential_id}/employers/{employer_id}",
               responses=problems.responses(404))
async def unshare_employer(credential_id: uuid.UUID, employer_id: str,
                           session: Learner, wallet: WalletService) -> dict[str, Any]:
    return (await wallet.stop_sharing(session, credential_id, employer_id)).state


@router.post("/v1/learner/credentials/{credential_id}/shares",
             responses=problems.responses(404), status_code=201)
async def create_share(credential_id: uuid.UUID, body: ShareCreate,
                       session: Learner, wallet: WalletService) -> dict[str, Any]:
    changed, link = await wallet.new_link(session, credential_id, body.expires_at,
                                          body.expires_in_days)
    return {**link, "visibility": changed.state["visibility"]}


@router.get("/v1/learner/credentials/{credential_id}/shares", responses=problems.responses(404))
async def list_shares(credential_id: uuid.UUID, session: Learner,
                      wallet: WalletService) -> dict[str, Any]:
    return {"shares": await wallet.links(session, credential_id)}


@router.delete("/v1/learner/credentials/{credential_id}/shares/{share_id}",
               responses=problems.responses(404), status_code=204)
async def revoke_share(credential_id: uuid.UUID, share_id: uuid.UUID,
                       session: Learner, wallet: WalletService) -> Response:
    _, done = await wallet.revoke_link(session, credential_id, share_id)
    if not done:
        raise Problem(404, "Not found", f"no active share link {share_id}", kind="not-found")
    return Response(status_code=204)


@router.get("/v1/learner/employers")
async def employers(_: Learner, wallet: WalletService) -> dict[str, Any]:
    """The employers a learner can share a credential with directly, by name."""
    return {"employers": await wallet.shareable_employers()}


@router.get("/v1/learner/profile")
async def profile(session: Learner, wallet: WalletService) -> dict[str, Any]:
    return {"url": await wallet.profile_url(session),
            "shows": "credentials whose visibility is public"}
