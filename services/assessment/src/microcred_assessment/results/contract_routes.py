"""The machine-readable contract for partner institutions that publish results: the
AsyncAPI 3.0 document of every topic, message and header (generated from the code, the same
as docs/asyncapi.yaml), so a publisher can be built from it alone."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from fastapi.responses import Response

from microcred_shared.contract import asyncapi

router = APIRouter(tags=["contract"])


@cache
def _document() -> tuple[str, str]:
    doc = asyncapi.document()
    return asyncapi.to_yaml(doc), asyncapi.to_json(doc)


@router.get("/asyncapi.yaml", response_class=Response,
            responses={200: {"content": {"application/yaml": {}}}})
async def asyncapi_yaml() -> Response:
    """The AsyncAPI 3.0 document (YAML)."""
    return Response(_document()[0], media_type="application/yaml")


@router.get("/asyncapi.json", response_class=Response,
            responses={200: {"content": {"application/json": {}}}})
async def asyncapi_json() -> Response:
    """The AsyncAPI 3.0 document (JSON)."""
    return Response(_document()[1], media_type="application/json")
