"""Composition root of the assessment service: it builds the runtime, subscribes the
contexts' batch handlers and passes their routers to the app. No business code here."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from microcred_assessment.access import routes as access_routes
from microcred_assessment.access.handlers import principals_by_username
from microcred_assessment.access.kafka_admin import KafkaAdmin
from microcred_assessment.audit import routes as audit_routes
from microcred_assessment.audit.handlers import on_audit, on_broker_refusals
from microcred_assessment.audit.shipper import ship_forever
from microcred_assessment.catalogue import routes as catalogue_routes
from microcred_assessment.catalogue.seed import import_seed, load_seed
from microcred_assessment.models import MIGRATIONS
from microcred_assessment.results import contract_routes
from microcred_assessment.results import routes as results_routes
from microcred_assessment.results.handlers import on_conflicting_duplicates, on_results
from microcred_assessment.results.ingest import IngestStore
from microcred_assessment.runtime import AssessmentRuntime
from microcred_assessment.settings import Settings
from microcred_shared.auth import KeyVerifier
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.contract.events_providers import AuditRecorded, BrokerRefusalObserved
from microcred_shared.projection import LiveCatalog

# A provider's results topic is created when it gets a Kafka principal; the pattern
# subscription sees a new topic at its consumer's next metadata refresh (default: 5
# minutes). Only that consumer refreshes this often: the others need no new topics.
TOPIC_DISCOVERY_MS = 5000


def build(settings: Settings | None = None) -> tuple[FastAPI, AssessmentRuntime]:
    settings = settings or Settings()
    rt = AssessmentRuntime(settings, MIGRATIONS)
    skew = timedelta(seconds=settings.clock_skew_seconds)
    seed = load_seed(settings.seed_file)

    async def start(r: AssessmentRuntime) -> None:
        assert r.engine is not None
        r.key_verifier = KeyVerifier(r.engine)
        assert r.relay is not None
        r.ingest = IngestStore(r.engine, on_commit=r.relay.wake)
        r.kafka_admin = KafkaAdmin(
            settings.kafka_bootstrap_servers, **settings.kafka_client_options())
        live = LiveCatalog(r.engine)
        r.catalog = live
        await import_seed(r.engine, seed)
        await live.refresh(force=True)
        r.background(live.follow())
        handler = partial(on_results, live=live, skew=skew)
        r.subscribe(topics.RESULTS, handler, AssessmentResultSubmitted,
                    on_conflict=on_conflicting_duplicates)
        r.subscribe("provider-results", handler, AssessmentResultSubmitted,
                    pattern=topics.PROVIDER_RESULTS_PATTERN, discovery_ms=TOPIC_DISCOVERY_MS,
                    on_conflict=on_conflicting_duplicates)
        r.subscribe(topics.AUDIT, on_audit, AuditRecorded)
        r.subscribe(topics.KAFKA_REFUSALS,
                    partial(on_broker_refusals, principals=principals_by_username),
                    BrokerRefusalObserved)
        if settings.broker_audit_log:
            r.background(ship_forever(Path(settings.broker_audit_log),
                                      settings.kafka_bootstrap_servers,
                                      settings.kafka_client_options()))

    async def stop(r: AssessmentRuntime) -> None:
        await r.ingest.stop()

    rt.on_start(start)
    rt.on_stop(stop)
    # The routers' paths do not overlap, so their order is the order in which a request's
    # path is matched (and of the OpenAPI document): result ingest first, the path most
    # requests take (FastAPI tries each router's routes in turn: matching the operator's
    # routes first was a sixth of the CPU of one result per request, issue 12).
    return rt.app("microcred assessment", routers=[
        results_routes.router, contract_routes.router, catalogue_routes.router,
        access_routes.router, audit_routes.router]), rt
