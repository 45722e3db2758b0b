"""Composition root of the assessment service."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from microcred_assessment import api
from microcred_assessment.handlers import on_results
from microcred_assessment.models import MIGRATIONS
from microcred_assessment.settings import Settings
from microcred_shared import topics
from microcred_shared.auth import KeyVerifier
from microcred_shared.catalog import load_catalog
from microcred_shared.events import AssessmentResultSubmitted
from microcred_shared.runtime import ServiceRuntime


def build(settings: Settings | None = None) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or Settings()
    rt = ServiceRuntime(settings, MIGRATIONS)
    catalog = load_catalog(settings.seed_file)
    rt.catalog = catalog  # type: ignore[attr-defined]
    handler = partial(on_results, catalog=catalog,
                      skew=timedelta(seconds=settings.clock_skew_seconds))
    rt.subscribe(topics.RESULTS, handler, AssessmentResultSubmitted)

    async def keys(r: ServiceRuntime) -> None:
        assert r.engine is not None
        r.key_verifier = KeyVerifier(r.engine)  # type: ignore[attr-defined]

    rt.on_start(keys)
    return rt.app("microcred assessment", api.routes), rt
