"""Reading the audit log: the operator reads all of it; a provider reads the refusals that
concern it, so it can see what went wrong."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query

from microcred_assessment.audit import handlers as audit
from microcred_assessment.deps import Operator, ProviderId, Runtime

router = APIRouter()


@router.get("/v1/admin/audit")
async def audit_log(_: Operator, rt: Runtime, provider: str | None = None,
                    since: datetime | None = None,
                    outcome: Literal["refused", "changed"] | None = None,
                    limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    assert rt.engine is not None
    async with rt.engine.begin() as conn:
        entries = await audit.query(conn, provider=provider, since=since,
                                    outcome=outcome, limit=limit)
    return {"count": len(entries), "entries": entries}


@router.get("/v1/provider/audit")
async def own_audit(provider_id: ProviderId, rt: Runtime,
                    limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """The refusals that concern this provider, so it can see what went wrong."""
    assert rt.engine is not None
    async with rt.engine.connect() as conn:
        entries = await audit.query(conn, provider=provider_id, since=None,
                                    outcome="refused", limit=limit)
    return {"count": len(entries), "entries": entries}
