"""The FastAPI dependencies every issuance route uses: the runtime (from the app state),
the provider its API key authenticates, the operator."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from microcred_issuance.runtime import IssuanceRuntime
from microcred_shared import problems
from microcred_shared.auth import bearer, require_operator, require_provider
from microcred_shared.problems import Problem
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


def _service(request: Request, rt: Runtime) -> None:
    """Only the service token (MICROCRED_SERVICE_TOKEN: the registry); none set, nobody."""
    secret = rt.settings.service_token
    expected, given = secret.get_secret_value() if secret else "", bearer(request)
    if not (expected and given and hmac.compare_digest(given.encode(), expected.encode())):
        raise Problem(401, "Unauthorized", "this internal endpoint admits only the "
                      "backbone's services (service token)", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})


# The provider id its API key authenticates (401 problem otherwise).
Provider = Annotated[str, Depends(_provider)]
# Admits only the operator token (401 problem otherwise).
Operator = Annotated[None, Depends(_operator)]
# Admits only another service of the backbone (its service token; 401 problem otherwise).
Service = Annotated[None, Depends(_service)]
