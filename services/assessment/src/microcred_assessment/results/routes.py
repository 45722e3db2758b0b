"""HTTP ingest: providers POST results; each accepted one enters the same Kafka pipeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from microcred_assessment.deps import ProviderId, Runtime
from microcred_assessment.results import handlers
from microcred_assessment.results.domain import InvalidResult, Refused
from microcred_shared import problems
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.problems import Problem
from microcred_shared.telemetry import trace_id_of, traceparent_of

router = APIRouter()


@router.post("/v1/assessment-results", responses=problems.responses(403), status_code=202)
async def submit(result: AssessmentResultSubmitted, provider_id: ProviderId, rt: Runtime,
                 request: Request) -> JSONResponse:
    assert rt.engine is not None and rt.relay is not None
    try:
        submitted = await handlers.submit(
            rt.engine, result, provider_id, catalog=rt.catalog.current,
            skew=timedelta(seconds=rt.settings.clock_skew_seconds),
            traceparent=traceparent_of())
    except Refused as exc:
        rt.relay.wake()  # the audit record
        raise Problem(exc.status, "Forbidden" if exc.status == 403 else "Result refused",
                      str(exc), kind="forbidden") from exc
    except InvalidResult as exc:
        raise Problem(422, "Result refused", str(exc), kind="invalid-result") from exc
    rt.relay.wake()
    return JSONResponse(status_code=202, content={
        "event_id": submitted.event_id, "assessment_id": str(submitted.assessment_id),
        "trace_id": trace_id_of(traceparent_of()),
        "status_url": str(request.url_for("result_status", result_id=result.result_id)),
    })


@router.get("/v1/assessment-results/{result_id}",
            responses=problems.responses(404), name="result_status")
async def result_status(result_id: str, provider_id: ProviderId,
                        rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    return await handlers.status_of(rt.engine, provider_id, result_id)
