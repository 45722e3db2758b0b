"""The FastAPI dependencies every issuance route uses: the runtime (from the app state),
the provider its API key authenticates, the operator."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from microcred_issuance.runtime import IssuanceRuntime
from microcred_shared.problems import Problem
from microcred_shared.runtime import runtime_of


def _runtime(request: Request) -> IssuanceRuntime:
    rt = runtime_of(request)
    assert isinstance(rt, IssuanceRuntime)
    return rt


Runtime = Annotated[IssuanceRuntime, Depends(_runtime)]


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


async def _provider(request: Request, rt: Runtime) -> str:
    token = _bearer(request)
    found = await rt.key_verifier.provider_for(token) if token is not None else None
    if not found:
        raise Problem(401, "Unauthorized", "a valid provider API key is required "
                      "(Authorization: Bearer mcp_...)", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    return found


async def _operator(request: Request, rt: Runtime) -> None:
    secret = rt.settings.operator_token
    expected = secret.get_secret_value() if secret else None
    given = _bearer(request)
    if not (expected and given is not None
            and hmac.compare_digest(given.encode(), expected.encode())):
        raise Problem(401, "Unauthorized", "an operator token is required",
                      kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


# The provider id its API key authenticates (401 problem otherwise).
Provider = Annotated[str, Depends(_provider)]
# Admits only the operator token (401 problem otherwise).
Operator = Annotated[None, Depends(_operator)]
