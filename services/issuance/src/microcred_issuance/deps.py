"""The FastAPI dependencies every issuance route uses: the runtime (from the app state),
the provider its API key authenticates, the operator."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from microcred_issuance.runtime import IssuanceRuntime
from microcred_shared import problems
from microcred_shared.auth import require_operator, require_provider
from microcred_shared.runtime import runtime_of


def _runtime(request: Request) -> IssuanceRuntime:
    rt = runtime_of(request)
    assert isinstance(rt, IssuanceRuntime)
    return rt


Runtime = Annotated[IssuanceRuntime, Depends(_runtime)]


@problems.declares(401)
async def _provider(request: Request, rt: Runtime) -> str:
    return await require_provider(request, rt.key_verifier)


@problems.declares(401)
def _operator(request: Request, rt: Runtime) -> None:
    require_operator(request, rt.settings.operator_token)


# The provider id its API key authenticates (401 problem otherwise).
Provider = Annotated[str, Depends(_provider)]
# Admits only the operator token (401 problem otherwise).
Operator = Annotated[None, Depends(_operator)]
