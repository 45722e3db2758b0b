"""Composition of the learner-facing part of the registry: sign-in, the learner API, the
credential pages. Kept apart from main.py so the wiring there stays one line."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from microcred_registry import learners, owner_pages, pages, signin_routes
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.signin import SignIn, SignInPolicy


def routes(app: FastAPI, rt: RegistryRuntime) -> None:
    s = rt.settings
    policy = SignInPolicy(
        link_ttl=timedelta(seconds=s.signin_ttl_seconds),
        session_ttl=timedelta(seconds=s.session_ttl_seconds),
        rate_limit=s.signin_rate_limit,
        rate_window=timedelta(seconds=s.signin_rate_window_seconds),
    )

    def wake() -> None:
        if rt.relay:
            rt.relay.wake()

    signin = SignIn(lambda: rt.engine, s.public_base_url.rstrip("/"), policy, wake)
    credential_pages = pages.CredentialPages(rt, signin)
    # The existing credential route negotiates: people get this page (api.py).
    app.state.credential_pages = credential_pages
    signin_routes.routes(app, rt, signin)
    learners.routes(app, rt, signin)
    pages.routes(app, rt, credential_pages)
    owner_pages.routes(app, rt, signin, credential_pages)
