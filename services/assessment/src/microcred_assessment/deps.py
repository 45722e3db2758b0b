"""FastAPI dependencies of the assessment service: its runtime (from the app state) and
who is calling (an authenticated provider, or the operator). Every refused caller is
audited (access.authn)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from microcred_assessment.access import authn
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared import problems
from microcred_shared.auth import bearer
from microcred_shared.runtime import runtime_of


async def get_runtime(request: Request) -> AssessmentRuntime:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hand-off
    # on every request for a dictionary lookup (issue 12)
    rt = runtime_of(request)
    assert isinstance(rt, AssessmentRuntime)
    return rt


Runtime = Annotated[AssessmentRuntime, Depends(get_runtime)]


@problems.declares(401)
async def authenticated_provider(request: Request) -> str:
    """The provider whose API key the request bears (401 otherwise). On every request of
    ingest: the runtime is read here, not solved as a dependency of its own, and the
    request's URL is only built for the audit record of a refusal (issue 12)."""
    rt = await get_runtime(request)
    token = bearer(request)
    found = await rt.key_verifier.provider_for(token) if token else None
    if found:
        return found
    assert rt.engine is not None
    return await authn.provider(rt.engine, rt.key_verifier, token, path=request.url.path)


@problems.declares(401)
async def authenticated_operator(request: Request, rt: Runtime) -> str:
    """"operator" for a request bearing MICROCRED_OPERATOR_TOKEN (401 otherwise)."""
    assert rt.engine is not None
    token = rt.settings.operator_token
    return await authn.operator(rt.engine, rt.key_verifier, bearer(request),
                                token.get_secret_value() if token else None,
                                path=request.url.path, method=request.method)


ProviderId = Annotated[str, Depends(authenticated_provider)]
Operator = Annotated[str, Depends(authenticated_operator)]
