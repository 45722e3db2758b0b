"""FastAPI dependencies of notify, read from the app state (`ServiceRuntime.app` puts the
runtime there): the runtime, the operator, and the authenticated employer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from microcred_notify.runtime import NotifyRuntime
from microcred_shared import problems
from microcred_shared.auth import bearer, require_operator
from microcred_shared.problems import Problem
from microcred_shared.runtime import runtime_of


def _runtime(request: Request) -> NotifyRuntime:
    rt = runtime_of(request)
    assert isinstance(rt, NotifyRuntime)
    return rt


Runtime = Annotated[NotifyRuntime, Depends(_runtime)]


@problems.declares(401)
def _operator(request: Request, rt: Runtime) -> None:
    require_operator(request, rt.settings.operator_token)


@problems.declares(401)
async def _employer(request: Request, rt: Runtime) -> str:
    token = bearer(request)
    found = await rt.employers.verifier(rt).employer_for(token) if token is not None else None
    if not found:
        raise Problem(401, "Unauthorized", "a valid key of an approved employer is "
                      "required (Authorization: Bearer mce_...)", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    return found


Operator = Annotated[None, Depends(_operator)]
# The id of the approved employer whose API key authenticated the request.
Employer = Annotated[str, Depends(_employer)]
