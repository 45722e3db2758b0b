"""VC-API issue: a provider signs a credential of its own through the issuing use case."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from microcred_issuance.deps import Provider, Runtime
from microcred_issuance.issuing import handlers
from microcred_issuance.issuing.domain import Refused, WrongIssuer
from microcred_shared import problems
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of
from microcred_shared.vc.errors import VcError

router = APIRouter()


class IssueOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cryptosuite: Literal["eddsa-rdfc-2022", "eddsa-jcs-2022"] | None = None
    credentialId: str | None = None  # noqa: N815 (VC-API name)


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any]
    options: IssueOptions = IssueOptions()


def _issuing(rt: Runtime) -> handlers.Issuing:
    return handlers.Issuing(live=rt.catalog, keys=rt.keys, signer=rt.signer)


IssuingContext = Annotated[handlers.Issuing, Depends(_issuing)]


@router.post("/credentials/issue", responses=problems.responses(403), status_code=201)
async def issue(request: IssueRequest, provider_id: Provider, rt: Runtime,
                ctx: IssuingContext) -> JSONResponse:
    assert rt.engine is not None and rt.relay is not None
    try:
        async with rt.engine.begin() as conn:
            signed = await handlers.issue_submitted(
                conn, ctx, provider_id, request.credential,
                requested_id=request.options.credentialId,
                cryptosuite=request.options.cryptosuite, traceparent=traceparent_of())
    except Refused as exc:
        raise Problem(400, "Invalid credential", str(exc), kind="invalid-credential",
                      errors=[{"detail": p} for p in exc.problems]) from exc
    except WrongIssuer as exc:
        raise Problem(403, "Forbidden", str(exc), kind="forbidden") from exc
    except VcError as exc:
        raise Problem(400, "Invalid credential", str(exc), kind="invalid-credential") from exc
    rt.relay.wake()
    return JSONResponse({"verifiableCredential": signed}, status_code=201)
