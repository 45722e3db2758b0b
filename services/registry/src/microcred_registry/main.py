"""Composition root of the registry service."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from microcred_registry import api, learner_app
from microcred_registry.employer_directory import on_employer_published
from microcred_registry.handlers import (
    on_issued,
    on_issuer_keys,
    on_status_changed,
    on_status_list,
)
from microcred_registry.models import MIGRATIONS
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.settings import Settings
from microcred_shared import topics
from microcred_shared.events import (
    CredentialIssued,
    CredentialStatusChanged,
    IssuerKeysPublished,
    StatusListPublished,
)
from microcred_shared.events_employers import EmployerPublished


def build(settings: Settings | None = None) -> tuple[FastAPI, RegistryRuntime]:
    settings = settings or Settings()
    rt = RegistryRuntime(settings, MIGRATIONS)
    base = settings.public_base_url.rstrip("/")
    rt.subscribe(topics.CREDENTIALS_ISSUED, partial(on_issued, base_url=base), CredentialIssued)
    rt.subscribe(topics.ISSUER_KEYS, on_issuer_keys, IssuerKeysPublished)
    rt.subscribe(topics.STATUS_LISTS, on_status_list, StatusListPublished)
    rt.subscribe(topics.CREDENTIAL_STATUS, on_status_changed, CredentialStatusChanged)
    rt.subscribe(topics.EMPLOYERS, on_employer_published, EmployerPublished)
    return rt.app("microcred registry", routes), rt


def routes(app: FastAPI, rt: RegistryRuntime) -> None:
    learner_app.routes(app, rt)  # before api: the credential page lives in app.state
    api.routes(app, rt)
