"""Registry HTTP API: credentials, learners' lists, issuer controller documents, contexts."""


import hmac
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from microcred_shared.problems import Problem
from microcred_shared.runtime import ServiceRuntime
from microcred_shared.vc import contexts

from microcred_registry.models import CredentialRecord, IssuerRecord

LD_JSON = "application/ld+json"
MICROCRED_CONTEXT = "https://w3id.org/microcred/v1"


def controller_document(issuer: IssuerRecord) -> dict[str, Any]:
    """The issuer's profile, also a controller document: `assertionMethod` lists every key
    that may have signed its credentials (retired ones included, so old credentials keep
    verifying); a compromised key is listed with the time it stopped being trusted."""
    profile = dict(issuer.profile)
    methods, assertion = [], []
    for key in issuer.keys:
        vm = {"id": f"{profile['id']}#{key['key_id']}", "type": "Multikey",
              "controller": profile["id"], "publicKeyMultibase": key["public_multikey"]}
        if key["status"] == "compromised":
            vm["revoked"] = key["retired_at"]
        methods.append(vm)
        assertion.append(vm["id"])
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
                     "https://w3id.org/security/multikey/v1", MICROCRED_CONTEXT],
        **profile, "verificationMethod": methods, "assertionMethod": assertion,
    }


def routes(app: FastAPI, rt: ServiceRuntime) -> None:
    token = rt.settings.operator_token  # type: ignore[attr-defined]

    def operator(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if not (token and scheme.lower() == "bearer"
                and hmac.compare_digest(given.encode(), token.get_secret_value().encode())):
            raise Problem(401, "Unauthorized", "an operator token is required",
                          kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})

    Operator = Annotated[None, Depends(operator)]

    @app.get("/v1/credentials/{credential_id}")
    async def get_credential(credential_id: uuid.UUID) -> JSONResponse:
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            doc = (await conn.execute(sa.select(CredentialRecord.document).where(
                CredentialRecord.credential_id == credential_id))).scalar_one_or_none()
        if doc is None:
            raise Problem(404, "Not found", f"no credential {credential_id}", kind="not-found")
        return JSONResponse(doc, media_type="application/vc+ld+json")

    @app.get("/v1/learners/{learner_key}/credentials")
    async def learner_credentials(learner_key: str, _: Operator) -> dict[str, Any]:
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                CredentialRecord.credential_id, CredentialRecord.title,
                CredentialRecord.provider_id, CredentialRecord.status,
                CredentialRecord.issued_at, CredentialRecord.document,
            ).where(CredentialRecord.learner_key == learner_key).order_by(
                CredentialRecord.issued_at))).all()
        base = rt.settings.public_base_url.rstrip("/")
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
                IssuerRecord.provider_id == provider_id))).scalar_one_or_none()
        if row is None:
            raise Problem(404, "Not found", f"no issuer {provider_id!r}", kind="not-found")
        return JSONResponse(controller_document(row), media_type=LD_JSON,
                            headers={"Cache-Control": "public, max-age=300"})

    @app.get("/contexts/microcred/v1")
    async def microcred_context() -> Response:
        return Response(contexts.context_file_bytes(MICROCRED_CONTEXT), media_type=LD_JSON,
                        headers={"Cache-Control": "public, max-age=86400"})
