"""Status changes by the issuing provider (revoke, suspend, reinstate)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from microcred_issuance.deps import Provider, Runtime
from microcred_issuance.status import handlers
from microcred_issuance.status.domain import InvalidTransition, NotSuspendable
from microcred_shared import problems
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of

router = APIRouter()


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["revoke", "suspend", "unsuspend"]
    reason: str = Field(min_length=3, max_length=1000)


@router.post("/v1/credentials/{credential_id}/status", responses=problems.responses(403, 404, 409))
async def change_status(credential_id: uuid.UUID, change: StatusChange,
                        provider_id: Provider, rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None and rt.relay is not None
    try:
        async with rt.engine.begin() as conn:
            changed = await handlers.change_status(
                conn, rt.signer, credential_id, change.action, change.reason,
                provider_id=provider_id, followers=rt.status_followers,
                traceparent=traceparent_of())
    except handlers.NotFound as exc:
        raise Problem(404, "Not found", f"no credential {credential_id}",
                      kind="not-found") from exc
    except handlers.NotTheIssuer as exc:
        await handlers.record_refusal(rt.engine, credential_id, change.action,
                                      provider_id=provider_id, issuer=exc.issuer,
                                      traceparent=traceparent_of())
        rt.relay.wake()
        raise Problem(403, "Forbidden", "only the issuing provider may change the "
                      "status of this credential", kind="forbidden") from exc
    except NotSuspendable as exc:
        raise Problem(409, "Cannot be suspended", str(exc), kind="not-suspendable") from exc
    except InvalidTransition as exc:
        raise Problem(409, "Conflict", str(exc), kind="invalid-transition") from exc
    rt.relay.wake()
    return {"credential_id": str(credential_id), "status": changed.status, "changed_at":
            changed.changed_at.isoformat(), "reason": change.reason}
