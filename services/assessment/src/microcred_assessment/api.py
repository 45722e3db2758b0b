"""HTTP ingest: providers POST results; each accepted one enters the same Kafka pipeline."""


from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlmodel import col

from microcred_assessment import admin_api, audit, provider_api
from microcred_assessment.authn import provider_auth
from microcred_assessment.domain import InvalidResult, Refused, check
from microcred_assessment.handlers import assessment_id_for
from microcred_assessment.models import ResultRecord
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared import outbox, topics
from microcred_shared.events import AssessmentResultSubmitted
from microcred_shared.problems import Problem
from microcred_shared.telemetry import trace_id_of, traceparent_of

# The auth dependencies are built per app (they need the runtime), so FastAPI gets them
# from annotations evaluated inside routes(); mypy sees what they resolve to.
if TYPE_CHECKING:
    Provider = str


def routes(app: FastAPI, rt: AssessmentRuntime) -> None:
    skew = timedelta(seconds=rt.settings.clock_skew_seconds)

    if not TYPE_CHECKING:
        Provider = provider_auth(rt)
    admin_api.routes(app, rt)
    provider_api.routes(app, rt, Provider)

    @app.post("/v1/assessment-results", status_code=202)
    async def submit(result: AssessmentResultSubmitted, provider_id: Provider,
                     request: Request) -> JSONResponse:
        source = f"/providers/{provider_id}"
        try:
            check(result, source, rt.catalog.current, datetime.now(UTC), skew)
        except Refused as exc:
            assert rt.engine is not None
            await audit.record_now(
                rt.engine, channel="http", actor=f"provider:{provider_id}",
                provider_id=result.provider_id, action=exc.action, reason=str(exc),
                traceparent=traceparent_of(),
                details={"result_id": result.result_id, "definition_id": result.definition_id})
            assert rt.relay is not None
            rt.relay.wake()
            raise Problem(exc.status, "Forbidden" if exc.status == 403 else "Result refused",
                          str(exc), kind="forbidden") from exc
        except InvalidResult as exc:
            raise Problem(422, "Result refused", str(exc), kind="invalid-result") from exc
        record = outbox.event_record(topics.RESULTS, result, source,
                                     traceparent=traceparent_of())
        event_id = (dict(record.headers)["ce_id"] or b"").decode()
        assert rt.engine is not None and rt.relay is not None
        async with rt.engine.begin() as conn:
            await outbox.write(conn, [record])
        rt.relay.wake()
        aid = assessment_id_for(provider_id, result.result_id)
        return JSONResponse(status_code=202, content={
            "event_id": event_id, "assessment_id": str(aid),
            "trace_id": trace_id_of(traceparent_of()),
            "status_url": str(request.url_for("result_status", result_id=result.result_id)),
        })

    @app.get("/v1/assessment-results/{result_id}", name="result_status")
    async def result_status(result_id: str, provider_id: Provider) -> dict[str, Any]:
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            row = (await conn.execute(sa.select(ResultRecord).where(
                col(ResultRecord.provider_id) == provider_id,
                col(ResultRecord.result_id) == result_id))).mappings().first()
        if row is None:
            return {"result_id": result_id, "status": "pending"}
        return {"result_id": result_id, "status": "decided", "achieved": row["achieved"],
                "reason": row["reason"], "assessment_id": str(row["assessment_id"]),
                "submissions": row["submissions"], "trace_id": row["trace_id"]}
