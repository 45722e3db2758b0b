"""Composition root of the registry service."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from microcred_shared import topics
from microcred_shared.events import CredentialIssued, IssuerKeysPublished
from microcred_shared.runtime import ServiceRuntime

from microcred_registry import api
from microcred_registry.handlers import on_issued, on_issuer_keys
from microcred_registry.models import MIGRATIONS
from microcred_registry.settings import Settings


def build(settings: Settings | None = None) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or Settings()
    rt = ServiceRuntime(settings, MIGRATIONS)
    base = settings.public_base_url.rstrip("/")
    rt.subscribe(topics.CREDENTIALS_ISSUED, partial(on_issued, base_url=base), CredentialIssued)
    rt.subscribe(topics.ISSUER_KEYS, on_issuer_keys, IssuerKeysPublished)
    return rt.app("microcred registry", api.routes), rt
