"""VC-API issue: a provider signs a credential of its own through the issuing use case; and
the registry's internal call for a holder-bound copy (ADR 27, ADR 31)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from microcred_issuance.deps import Provider, Runtime, Service
from microcred_issuance.issuing import binding, handlers
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


class BindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any]
    holder: str


@router.post("/internal/v1/credentials/{credential_id}/bound-copies", status_code=201,
             include_in_schema=False)
async def bound_copy(credential_id: uuid.UUID, request: BindRequest, _: Service,
                     rt: Runtime, ctx: IssuingContext) -> JSONResponse:
    """For the registry's wallet exchange and OpenID4VCI (ADR 31): the credential, signed
    again by its issuer as a new credential bound to the DID its holder proved control of.
    Service token only."""
    assert rt.engine is not None
    try:
        async with rt.engine.begin() as conn:
            signed = await binding.bind(conn, ctx, credential_id, request.credential,
                                        request.holder)
    except binding.Unknown as exc:
        raise Problem(404, "Not found", str(exc), kind="not-found") from exc
    except binding.NotActive as exc:
        raise Problem(409, "Credential not active", str(exc), kind="not-active") from exc
    except (binding.NotCopied, VcError) as exc:
        raise Problem(422, "Cannot bind this credential", str(exc),
                      kind="not-bindable") from exc
    return JSONResponse({"verifiableCredential": signed}, status_code=201)
