"""HTTP ingest: providers POST results, one per request or up to 1,000 in a batch; each
accepted one is decided at the door and its decision goes to issuance (ADR 40)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from microcred_assessment.deps import ProviderId, Runtime
from microcred_assessment.results import handlers
from microcred_assessment.results.domain import InvalidResult, Refused
from microcred_assessment.results.handlers import Conflict, Submitted
from microcred_shared import problems
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.lean import lean_route
from microcred_shared.problems import TYPE_BASE, Problem
from microcred_shared.telemetry import trace_id_of, traceparent_of

router = APIRouter()

MAX_BATCH = 1000
# Far above 1,000 results of the largest allowed size; refused before it is read whole.
MAX_BATCH_BYTES = 16 * 1024 * 1024


def _problem(exc: InvalidResult) -> Problem:
    if isinstance(exc, Refused):
        return Problem(exc.status, "Forbidden" if exc.status == 403 else "Result refused",
                       str(exc), kind="forbidden")
    if isinstance(exc, Conflict):
        return Problem(409, "Conflicting resubmission", str(exc), kind="conflicting-result")
    return Problem(422, "Result refused", str(exc), kind="invalid-result")


def _status_base(request: Request) -> str:
    """The status URL of a result is this plus its quoted id. Computed once per scheme,
    Host and root path (`url_for` walks every route, raising on each miss, and building
    `base_url` parses the URL anew: both showed in the profile of one result per
    request); a Host never seen is computed, and remembered while there are few."""
    scope = request.scope
    host = next((v for k, v in scope["headers"] if k == b"host"), b"")
    key = (scope.get("scheme"), host, scope.get("root_path", ""))
    state = request.app.state
    known: dict[Any, str] | None = getattr(state, "result_status_bases", None)
    if known is None:
        known = state.result_status_bases = {}
    base = known.get(key)
    if base is None:
        path = request.app.url_path_for("result_status", result_id="x")[:-1]
        url = request.base_url
        base = f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}{path}"
        if len(known) < 64:  # the Host header is the client's to choose
            known[key] = base
    return base


def _accepted(request: Request, result_id: str, s: Submitted, trace_id: str | None,
              ) -> dict[str, Any]:
    return {"event_id": s.event_id, "assessment_id": str(s.assessment_id),
            "outcome": "duplicate" if s.duplicate else "accepted", "trace_id": trace_id,
            "status_url": _status_base(request) + quote(result_id, safe="")}


# A LeanRoute: the plain request (a JSON body the model accepts) skips FastAPI's generic
# handling, anything else gets FastAPI's own answer (microcred_shared.lean, issue 12).
@lean_route(router, "/v1/assessment-results", methods=["POST"],
            responses=problems.responses(403, 409), status_code=202)
async def submit(result: AssessmentResultSubmitted, provider_id: ProviderId, rt: Runtime,
                 request: Request) -> JSONResponse:
    """One result. 202 once it is durably decided (its decision then goes to issuance);
    `outcome` says `duplicate` when the same result (same content) was received before:
    it is counted as a resubmission and never decided twice. The same `result_id` with
    other content is a 409."""
    assert rt.engine is not None and rt.relay is not None
    traceparent = traceparent_of()
    try:
        submitted = await handlers.submit(
            rt.engine, rt.ingest, result, provider_id, catalog=rt.catalog.current,
            skew=timedelta(seconds=rt.settings.clock_skew_seconds), traceparent=traceparent)
    except InvalidResult as exc:
        if isinstance(exc, Refused):
            rt.relay.wake()  # the audit record
        raise _problem(exc) from exc
    return JSONResponse(status_code=202, content=_accepted(
        request, result.result_id, submitted, trace_id_of(traceparent)))


class BatchProblem(BaseModel):
    """Why one result of a batch was refused: the problem its own request would get."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] = Field(default_factory=list)


class BatchOutcome(BaseModel):
    index: int = Field(description="position of the result in the request's `results`")
    result_id: str | None = Field(description="as sent, when it could be read")
    outcome: Literal["accepted", "duplicate", "refused"]
    event_id: str | None = Field(None, description="accepted and duplicate results")
    assessment_id: str | None = None
    status_url: str | None = None
    problem: BatchProblem | None = Field(None, description="refused results")


class BatchAnswer(BaseModel):
    accepted: int
    duplicates: int
    refused: int
    trace_id: str | None
    outcomes: list[BatchOutcome]


_BATCH_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["results"], "additionalProperties": False,
        "properties": {"results": {
            "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
            "items": {"$ref": "#/components/schemas/AssessmentResultSubmitted"},
            "description": f"1 to {MAX_BATCH} results; each gets its own outcome"}}}}},
}


def _item_problem(status: int, title: str, detail: str, kind: str,
                  errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": TYPE_BASE + kind, "title": title, "status": status,
                           "detail": detail}
    if errors:
        out["errors"] = errors
    return out


class _PlainBatch(BaseModel):
    """A batch body whose every result the model accepts, parsed from the bytes in one
    step (`_parse_plain`)."""

    model_config = ConfigDict(extra="forbid")
    results: list[AssessmentResultSubmitted]


def _parse_plain(body: bytes) -> list[AssessmentResultSubmitted] | None:
    """The results of a plain batch — `{"results": [...]}`, 1 to MAX_BATCH results that all
    parse — read from the bytes in one step (`model_validate_json`, as `LeanRoute` reads a
    single result: issue 12, item 2), or None: anything else takes the item-by-item path
    below, which says what is wrong with each one. The strict models parse alike from JSON
    bytes and from parsed JSON (ADR 23, `shared/tests/test_lean_route.py`), so a batch
    both paths read gets the same results from either."""
    try:
        results = _PlainBatch.model_validate_json(body).results
    except ValidationError:
        return None
    return results if 0 < len(results) <= MAX_BATCH else None


def _parse(raw: Any) -> AssessmentResultSubmitted | dict[str, Any]:
    """The result, or the problem its own request would have got (400: does not parse)."""
    if not isinstance(raw, dict):
        return _item_problem(400, "Invalid request body", "a result must be a JSON object",
                             "invalid-request")
    try:
        return AssessmentResultSubmitted.model_validate(raw)
    except ValidationError as exc:
        errors = [{"pointer": "/" + "/".join(str(p) for p in e["loc"]), "detail": e["msg"]}
                  for e in exc.errors()]
        return _item_problem(400, "Invalid request body",
                             f"{len(errors)} problem(s) in the result", "invalid-request",
                             errors)


def _parse_items(body: bytes) -> tuple[list[AssessmentResultSubmitted | dict[str, Any]],
                                       list[str | None]]:
    """A batch that is not plain, result by result: each result or the problem its own
    request would get, and each `result_id` as sent when it is a string; raises the
    problem of a body that is not a batch of 1 to MAX_BATCH results."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise Problem(400, "Invalid request body", "the body is not JSON",
                      kind="invalid-request") from exc
    raw = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(raw, list) or not raw or set(doc) != {"results"}:
        raise Problem(400, "Invalid request body", 'the body must be {"results": [...]} '
                      f"with 1 to {MAX_BATCH} results", kind="invalid-request",
                      errors=[{"pointer": "/results", "detail": "an array of results"}])
    if len(raw) > MAX_BATCH:
        raise Problem(413, "Batch too large", f"{len(raw)} results: a batch holds at most "
                      f"{MAX_BATCH}; split it", kind="batch-too-large")
    sent = [r.get("result_id") if isinstance(r, dict) else None for r in raw]
    return [_parse(r) for r in raw], [s if isinstance(s, str) else None for s in sent]


@router.post("/v1/assessment-results:batch", response_model=BatchAnswer,
             responses=problems.responses(413), openapi_extra={"requestBody": _BATCH_BODY})
async def submit_batch(provider_id: ProviderId, rt: Runtime, request: Request) -> JSONResponse:
    """Up to 1,000 results in one request, all of the provider the API key belongs to.
    Each result is checked as a single submission is and gets its own outcome, in order:
    `accepted`, `duplicate` (the same result was received before: counted, never decided
    twice) or `refused` with the problem its own request would have got (400 does not
    parse, 403 not the provider's to submit, 409 the same `result_id` with other content,
    422 cannot be judged). The answer comes once every accepted result is durably stored.
    More than 1,000 results, or a body over 16 MiB, is a 413 and nothing is stored."""
    assert rt.engine is not None and rt.relay is not None
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BATCH_BYTES:
        raise Problem(413, "Batch too large", f"a batch body may hold at most "
                      f"{MAX_BATCH_BYTES} bytes", kind="batch-too-large")
    body = await request.body()
    if len(body) > MAX_BATCH_BYTES:
        raise Problem(413, "Batch too large", f"a batch body may hold at most "
                      f"{MAX_BATCH_BYTES} bytes", kind="batch-too-large")
    plain = _parse_plain(body)
    if plain is not None:
        parsed: list[AssessmentResultSubmitted | dict[str, Any]] = list(plain)
        sent_ids: list[str | None] = [r.result_id for r in plain]
        results = plain
    else:
        parsed, sent_ids = _parse_items(body)
        results = [p for p in parsed if isinstance(p, AssessmentResultSubmitted)]
    traceparent = traceparent_of()
    outcomes = iter(await handlers.submit_many(
        rt.engine, rt.ingest, results, provider_id, catalog=rt.catalog.current,
        skew=timedelta(seconds=rt.settings.clock_skew_seconds), traceparent=traceparent))
    rows: list[dict[str, Any]] = []
    counts = {"accepted": 0, "duplicate": 0, "refused": 0}
    status_base = _status_base(request)
    for index, (item, result_id) in enumerate(zip(parsed, sent_ids, strict=True)):
        row: dict[str, Any] = {"index": index, "result_id": result_id}
        if not isinstance(item, AssessmentResultSubmitted):
            row |= {"outcome": "refused", "problem": item}
        else:
            got = next(outcomes)
            if isinstance(got, InvalidResult):
                p = _problem(got)
                row |= {"outcome": "refused",
                        "problem": _item_problem(p.status, p.title, p.detail, p.kind)}
            else:
                row |= {"outcome": "duplicate" if got.duplicate else "accepted",
                        "event_id": got.event_id, "assessment_id": str(got.assessment_id),
                        "status_url": status_base + quote(item.result_id, safe="")}
        counts[row["outcome"]] += 1
        rows.append(row)
    if counts["refused"]:
        rt.relay.wake()  # their audit records
    return JSONResponse({"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                         "refused": counts["refused"], "trace_id": trace_id_of(traceparent),
                         "outcomes": rows})


@router.get("/v1/assessment-results/{result_id}",
            responses=problems.responses(404), name="result_status")
async def result_status(result_id: str, provider_id: ProviderId,
                        rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    return await handlers.status_of(rt.engine, provider_id, result_id)
