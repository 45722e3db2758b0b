"""Registry HTTP API: credentials, learners' lists, issuer controller documents, status
lists, verification, and our JSON-LD context."""

import uuid
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import col

from microcred_registry.models import CredentialRecord, IssuerRecord, StatusListRecord
from microcred_registry.rendering import wants_json_page
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.verification import Resolver, as_json, controller_document
from microcred_shared.auth import operator_dependency
from microcred_shared.problems import PROBLEM, TYPE_BASE, Problem
from microcred_shared.vc import contexts
from microcred_shared.vc.verify import verify_credential

LD_JSON = "application/ld+json"
VC_JSON = "application/vc+ld+json"
MICROCRED_CONTEXT = "https://w3id.org/microcred/v1"

# The operator dependency is built per app (it needs the settings), so FastAPI gets it from
# annotations evaluated inside routes(); mypy sees what it resolves to.
if TYPE_CHECKING:
    Operator: TypeAlias = None


def routes(app: FastAPI, rt: RegistryRuntime) -> None:
    token = rt.settings.operator_token
    if not TYPE_CHECKING:
        Operator = operator_dependency(token.get_secret_value() if token else None)
    base = rt.settings.public_base_url.rstrip("/")

    def resolver() -> Resolver:
        assert rt.engine is not None
        return Resolver(rt.engine, base)

    async def credential_doc(credential_id: uuid.UUID) -> dict[str, Any]:
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            doc = (await conn.execute(sa.select(col(CredentialRecord.document)).where(
                col(CredentialRecord.credential_id) == credential_id))).scalar_one_or_none()
        if doc is None:
            raise Problem(404, "Not found", f"no credential {credential_id}", kind="not-found")
        return dict(doc)

    @app.get("/v1/credentials/{credential_id}")
    async def get_credential(credential_id: uuid.UUID, request: Request) -> Response:
        """Programs get the signed JSON (anyone holding the unguessable id: it is the
        credential's own URL); people asking for HTML get the page, which follows the
        holder's visibility choice (ADR 9)."""
        if not wants_json_page(request, default=True):
            return await request.app.state.credential_pages.by_id(request, credential_id)
        return JSONResponse(await credential_doc(credential_id), media_type=VC_JSON,
                            headers={"Vary": "Accept"})

    @app.get("/v1/credentials/{credential_id}/verification")
    async def verification(credential_id: uuid.UUID) -> dict[str, Any]:
        doc = await credential_doc(credential_id)
        return as_json(await verify_credential(doc, resolve_document=resolver()))

    @app.get("/v1/verify")
    async def verify_url(url: str = Query(description="a credential URL (https)")
                         ) -> dict[str, Any]:
        """The verification result for any credential URL."""
        try:
            doc = await resolver()(url) if not url.startswith(base + "/v1/credentials/") \
                else await credential_doc(uuid.UUID(url.rsplit("/", 1)[1]))
        except (ValueError, LookupError, OSError) as exc:
            raise Problem(422, "Cannot fetch credential", str(exc), kind="unfetchable") from exc
        return as_json(await verify_credential(doc, resolve_document=resolver()))

    @app.post("/credentials/verify")
    async def verify(request: Request) -> JSONResponse:
        """VC-API: 200 when the credential verifies, 400 with the failed checks when not."""
        try:
            body = await request.json()
        except ValueError as exc:
            raise Problem(400, "Invalid request body", "the body is not JSON") from exc
        doc = body.get("verifiableCredential") if isinstance(body, dict) else None
        if not isinstance(doc, dict):
            raise Problem(400, "Invalid request body",
                          "expected {\"verifiableCredential\": {...}, \"options\": {...}}")
        result = as_json(await verify_credential(doc, resolve_document=resolver()))
        if result["verified"]:
            return JSONResponse(result)
        return JSONResponse({"type": TYPE_BASE + "verification-failed",
                             "title": "Verification failed", "status": 400,
                             "detail": "; ".join(result["problems"]), **result},
                            status_code=400, media_type=PROBLEM)

    @app.get("/v1/learners/{learner_key}/credentials")
    async def learner_credentials(learner_key: str, _: Operator) -> dict[str, Any]:
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                col(CredentialRecord.credential_id), col(CredentialRecord.title),
                col(CredentialRecord.provider_id), col(CredentialRecord.status),
                col(CredentialRecord.issued_at), col(CredentialRecord.document),
            ).where(col(CredentialRecord.learner_key) == learner_key).order_by(
                col(CredentialRecord.issued_at)))).all()
        return {"learner": learner_key, "count": len(rows), "credentials": [
            {"id": str(r.credential_id), "title": r.title, "provider": r.provider_id,
             "status": r.status, "issued_at": r.issued_at.isoformat(),
             "url": f"{base}/v1/credentials/{r.credential_id}", "credential": r.document}
            for r in rows]}

    @app.get("/issuers/{provider_id}")
    async def issuer(provider_id: str) -> JSONResponse:
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            row = (await conn.execute(sa.select(IssuerRecord).where(
                col(IssuerRecord.provider_id) == provider_id))).first()
        if row is None:
            raise Problem(404, "Not found", f"no issuer {provider_id!r}", kind="not-found")
        return JSONResponse(controller_document(row), media_type=LD_JSON,
                            headers={"Cache-Control": "public, max-age=300"})

    @app.get("/status/{provider_id}/{purpose}/{list_no}")
    async def status_list(provider_id: str, purpose: str, list_no: int,
                          request: Request) -> Response:
        assert rt.engine is not None
        url = f"{base}/status/{provider_id}/{purpose}/{list_no}"
        async with rt.engine.connect() as conn:
            row = (await conn.execute(sa.select(
                col(StatusListRecord.credential), col(StatusListRecord.version)).where(
                col(StatusListRecord.url) == url))).first()
        if row is None:
            raise Problem(404, "Not found", f"no status list at {url}", kind="not-found")
        etag = f'"{row.version}"'
        headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return JSONResponse(row.credential, media_type=VC_JSON, headers=headers)

    @app.get("/contexts/microcred/v1")
    async def microcred_context() -> Response:
        return Response(contexts.context_file_bytes(MICROCRED_CONTEXT), media_type=LD_JSON,
                        headers={"Cache-Control": "public, max-age=86400"})
