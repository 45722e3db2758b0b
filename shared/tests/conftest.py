"""Fixtures of the shared package's tests: the app of the shared runtime that serves a test
module's `router`, and an in-process HTTP client of it (the lean-route tests serve each
endpoint twice in it, as a plain APIRoute and as a lean route)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from microcred_shared.runtime import ServiceRuntime
from microcred_shared.settings import ServiceSettings


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Any:
    """The shared runtime's app with the asking test module's `router` (a module-level
    APIRouter) as its only router."""
    return ServiceRuntime(ServiceSettings(), []).app("test", routers=[request.module.router])


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        yield c
