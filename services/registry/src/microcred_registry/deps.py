"""The registry's FastAPI dependencies, read from the app state the runtime sets up: the
runtime, the operator, the signed-in learner (API and browser), who reads a credential by
its id (operator, holder, provider or employer key, or anyone), and the context services
built for a request (sign-in, wallet, pages)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.employers.keys import PREFIX as EMPLOYER_KEY_PREFIX
from microcred_registry.pages.handlers import Pages
from microcred_registry.pages.rendering import language
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.wallet.domain import (
    ANYONE,
    SESSION_COOKIE,
    Session,
    Viewer,
    same_origin,
)
from microcred_registry.wallet.handlers import Wallet
from microcred_registry.wallet.signin import SignIn, policy_of
from microcred_shared import auth, problems
from microcred_shared.auth import require_operator
from microcred_shared.problems import Problem
from microcred_shared.runtime import runtime_of


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, one hand-over per dependency per request (eight for a credential's page:
# about half the registry's CPU per read in bench/registry, issue 12).
async def _runtime(request: Request) -> RegistryRuntime:
    rt = runtime_of(request)
    assert isinstance(rt, RegistryRuntime)
    return rt


Runtime = Annotated[RegistryRuntime, Depends(_runtime)]


async def _engine(rt: Runtime) -> AsyncEngine:
    assert rt.engine is not None, "the service has not started"
    return rt.engine


Engine = Annotated[AsyncEngine, Depends(_engine)]


async def _reads(rt: Runtime) -> AsyncEngine:
    assert rt.engine is not None, "the service has not started"
    return rt.reads


# The engine of the hot reads, one round trip each (microcred_registry.reads): reads only.
Reads = Annotated[AsyncEngine, Depends(_reads)]


def base_url(rt: RegistryRuntime) -> str:
    return rt.settings.public_base_url.rstrip("/")


async def _base_url(rt: Runtime) -> str:
    return base_url(rt)


# The public base URL the registry's links start with (no trailing slash).
BaseUrl = Annotated[str, Depends(_base_url)]


def _is_operator(rt: RegistryRuntime, given: str) -> bool:
    secret = rt.settings.operator_token
    token = secret.get_secret_value() if secret else None
    return bool(token) and hmac.compare_digest(given.encode(), (token or "").encode())



@problems.declares(401)
async def _operator(request: Request, rt: Runtime) -> None:
    """Only the operator token (MICROCRED_OPERATOR_TOKEN) passes; none set, nobody does."""
    require_operator(request, rt.settings.operator_token)


Operator = Annotated[None, Depends(_operator)]


async def _language(request: Request) -> str:
    return language(request)


# The language a person reads: `?lang=` first, then Accept-Language, then English.
Language = Annotated[str, Depends(_language)]


def signin_of(rt: RegistryRuntime) -> SignIn:
    assert rt.engine is not None, "the service has not started"
    return SignIn(rt.engine, base_url(rt), policy_of(rt.settings), rt.wake_relay)


async def _signin(rt: Runtime, engine: Engine) -> SignIn:
    return SignIn(engine, base_url(rt), policy_of(rt.settings), rt.wake_relay)


SignInService = Annotated[SignIn, Depends(_signin)]


async def _wallet(rt: Runtime, engine: Engine) -> Wallet:
    return Wallet(engine, base_url(rt), rt.wake_relay)


WalletService = Annotated[Wallet, Depends(_wallet)]


async def _pages(rt: Runtime, engine: Engine, signin: SignInService) -> Pages:
    return Pages(engine, base_url(rt), signin, reads=rt.reads)


PagesService = Annotated[Pages, Depends(_pages)]


def _origin_allowed(request: Request, rt: RegistryRuntime) -> bool:
    return same_origin(request.method, request.headers.get("origin"), base_url(rt),
                       f"{request.url.scheme}://{request.url.netloc}")


@problems.declares(401, 403)
async def _learner(request: Request, rt: Runtime, signin: SignInService) -> Session:
    """Bearer token first, then the session cookie. A cookie-authenticated change must come
    from our own pages: SameSite=Lax already keeps cross-site forms out, the Origin check
    covers the browsers that send one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    from_cookie = not (scheme.lower() == "bearer" and token)
    if from_cookie:
        token = request.cookies.get(SESSION_COOKIE, "")
    session = await signin.session(token)
    if session is None:
        raise Problem(401, "Sign-in required", "sign in with the link we e-mail you "
                      "(POST /v1/learner/sign-in)", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    if from_cookie and not _origin_allowed(request, rt):
        raise Problem(403, "Cross-site request refused", "another site may not act for a "
                      "signed-in learner", kind="cross-site")
    return session


# The learner API: a signed-in learner or a 401 (403 for a cross-site cookie request).
Learner = Annotated[Session, Depends(_learner)]


async def _browser_learner(request: Request, rt: Runtime,
                           signin: SignInService) -> Session | None:
    """The learner's pages: the SameSite=Lax session cookie, and a change must not come
    from another Origin; None sends the browser to the sign-in page."""
    session = await signin.session(request.cookies.get(SESSION_COOKIE))
    return session if session and _origin_allowed(request, rt) else None


BrowserLearner = Annotated[Session | None, Depends(_browser_learner)]


@problems.declares(401)
async def _viewer(request: Request, rt: Runtime, signin: SignInService) -> Viewer:
    """Who reads a credential by its id (no Origin check: reading changes nothing). A
    bearer token is the operator's, a provider's API key (`mcp_...`), an employer's
    (`mce_...`) or a learner's session (`mcl_...`); one that is none of these valid is a
    401, so a client learns that its key is wrong rather than reading less. Without one,
    the session cookie (browsers), else anyone. (ADR 9: who may read what.)"""
    return await viewer_of(request, rt, signin)


async def viewer_of(request: Request, rt: RegistryRuntime, signin: SignIn) -> Viewer:
    """`_viewer`, called directly (CredentialRead)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        if _is_operator(rt, token):
            return Viewer(operator=True)
        if token.startswith(auth.PREFIX):
            if provider := await rt.provider_keys.provider_for(token):
                return Viewer(provider_id=provider)
        elif token.startswith(EMPLOYER_KEY_PREFIX):
            if employer := await rt.employer_keys.employer_for(token):
                return Viewer(employer_id=employer)
        elif session := await signin.session(token):
            return Viewer(learner_key=session.learner_key)
        raise Problem(401, "Unauthorized", "the bearer token is not a valid operator token, "
                      "provider or employer API key, or learner session", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    session = await signin.session(request.cookies.get(SESSION_COOKIE))
    return Viewer(learner_key=session.learner_key) if session else ANYONE


# Who asks for a credential by its id: what they may read is wallet.domain.may_read.
CredentialViewer = Annotated[Viewer, Depends(_viewer)]


@dataclass(frozen=True)
class CredentialReader:
    """What a read of a credential by its id needs (its JSON, page or verification): the
    runtime, the public base URL, the read engine and who asks."""

    rt: RegistryRuntime
    base: str
    reads: AsyncEngine
    viewer: Viewer

    def pages(self) -> Pages:
        assert self.rt.engine is not None, "the service has not started"
        return Pages(self.rt.engine, self.base, signin_of(self.rt), reads=self.reads)


@problems.declares(401)
async def _credential_reader(request: Request) -> CredentialReader:
    """Runtime, BaseUrl, Reads and CredentialViewer as one dependency, for the hot reads.
    FastAPI solves every node of a dependency tree on its own (the runtime again under
    each dependency that needs it, the query string, headers and cookies looked at for
    each): the four as separate dependencies were eleven nodes, a fifth of the registry's
    CPU per read in bench/registry (issue 12)."""
    rt = await _runtime(request)
    assert rt.engine is not None, "the service has not started"
    return CredentialReader(rt, base_url(rt), rt.reads,
                            await viewer_of(request, rt, signin_of(rt)))


# A read of a credential by its id (CredentialViewer's rules, ADR 9), in one dependency.
CredentialRead = Annotated[CredentialReader, Depends(_credential_reader)]


@dataclass(frozen=True)
class ReadContext:
    """BaseUrl and Reads as one value, for the hot reads that take no caller."""

    base: str
    reads: AsyncEngine


async def _read_context(request: Request) -> ReadContext:
    """BaseUrl and Reads in one dependency that takes only the request (what a
    LeanReadRoute calls directly, microcred_shared.lean)."""
    rt = await _runtime(request)
    assert rt.engine is not None, "the service has not started"
    return ReadContext(base_url(rt), rt.reads)


# The public base URL and the read engine (microcred_registry.reads).
ReadsAt = Annotated[ReadContext, Depends(_read_context)]


@problems.declares(401)
async def _operator_reads(request: Request) -> ReadContext:
    """Operator, BaseUrl and Reads in one dependency that takes only the request: the
    operator token checked first (401 otherwise), as Operator does."""
    rt = await _runtime(request)
    require_operator(request, rt.settings.operator_token)
    assert rt.engine is not None, "the service has not started"
    return ReadContext(base_url(rt), rt.reads)


# An operator's read: the operator token or a 401, then the base URL and the read engine.
OperatorReads = Annotated[ReadContext, Depends(_operator_reads)]
