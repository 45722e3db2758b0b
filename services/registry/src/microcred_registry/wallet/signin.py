"""Learner sign-in by one-time e-mailed link, and the sessions it opens.

A sign-in token is 256 random bits, stored as its SHA-256, valid once and for
`MICROCRED_SIGNIN_TTL_SECONDS`. Exchanging it opens a session: a random id (stored hashed)
carried by an HttpOnly cookie for browsers and returned as a bearer token to programs.
The request always answers the same way, whether or not the address holds credentials.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from microcred_registry.credentials.models import CredentialRecord
from microcred_registry.settings import Settings
from microcred_registry.wallet.domain import BEARER_PREFIX, Session, SignInPolicy, signin_language
from microcred_registry.wallet.models import LearnerSession, SignInAttempt, SignInToken
from microcred_shared import outbox
from microcred_shared.auth import digest
from microcred_shared.contract import topics
from microcred_shared.contract.events import learner_key
from microcred_shared.contract.events_learners import LearnerSignInRequested
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of

SOURCE = "/microcred/registry"


def policy_of(settings: Settings) -> SignInPolicy:
    return SignInPolicy(
        link_ttl=timedelta(seconds=settings.signin_ttl_seconds),
        session_ttl=timedelta(seconds=settings.session_ttl_seconds),
        rate_limit=settings.signin_rate_limit,
        rate_window=timedelta(seconds=settings.signin_rate_window_seconds),
    )


class SignIn:
    """`wake_relay` is called after a transaction that wrote to the outbox."""

    def __init__(self, engine: AsyncEngine, base_url: str, policy: SignInPolicy,
                 wake_relay: Callable[[], None]) -> None:
        self._engine, self._base, self.policy = engine, base_url, policy
        self._wake = wake_relay

    @property
    def link_minutes(self) -> int:
        """How long a sign-in link works, as the learner is told."""
        return max(1, int(self.policy.link_ttl.total_seconds() // 60))

    async def request(self, email: str, language: str) -> None:
        """Record the attempt; mail a link if the address holds credentials. Raises 429 past
        the limit: attempts are counted for every address, so the limit reveals nothing."""
        key, now = learner_key(email), datetime.now(UTC)
        async with self._engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                               {"k": "signin:" + key})
            since = now - self.policy.rate_window
            await conn.execute(sa.delete(SignInAttempt).where(
                col(SignInAttempt.learner_key) == key, col(SignInAttempt.at) < since))
            recent = (await conn.execute(sa.select(sa.func.count()).select_from(
                SignInAttempt).where(col(SignInAttempt.learner_key) == key))).scalar_one()
            if recent >= self.policy.rate_limit:
                raise Problem(429, "Too many sign-in requests",
                              "too many sign-in links were asked for this address; try again "
                              "later", kind="rate-limited", headers={
                                  "Retry-After": str(int(self.policy.rate_window.total_seconds()))})
            await conn.execute(sa.insert(SignInAttempt).values(learner_key=key, at=now))
            known = (await conn.execute(sa.select(col(CredentialRecord.credential_id)).where(
                col(CredentialRecord.learner_key) == key).limit(1))).first()
            if known is None:
                return
            token = secrets.token_urlsafe(32)
            expires = now + self.policy.link_ttl
            await conn.execute(sa.insert(SignInToken).values(
                id=uuid.uuid4(), token_sha256=digest(token), learner_key=key, created_at=now,
                expires_at=expires))
            lang = signin_language(language)
            # The link keeps the language: the pages it opens speak the mail's language.
            event = LearnerSignInRequested(
                request_id=uuid.uuid4(), learner_key=key, email=email.strip(), language=lang,
                link=f"{self._base}/learner/sign-in/{token}?lang={lang}", expires_at=expires)
            await outbox.write(conn, [outbox.event_record(
                topics.LEARNER_SIGNIN, event, SOURCE, traceparent=traceparent_of())])
        self._wake()

    async def usable(self, token: str) -> bool:
        """Whether a link would sign in now, without spending it (the confirmation page)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(col(SignInToken.id)).where(
                col(SignInToken.token_sha256) == digest(token), col(SignInToken.used_at).is_(None),
                col(SignInToken.expires_at) > datetime.now(UTC)))).first()
        return row is not None

    async def exchange(self, token: str) -> tuple[str, Session]:
        """Spend the link (once: the UPDATE is the single-use guard) and open a session."""
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            key = (await conn.execute(sa.update(SignInToken).where(
                col(SignInToken.token_sha256) == digest(token), col(SignInToken.used_at).is_(None),
                col(SignInToken.expires_at) > now).values(used_at=now).returning(
                col(SignInToken.learner_key)))).scalar_one_or_none()
            if key is None:
                raise Problem(410, "Sign-in link not valid",
                              "this sign-in link has expired, was already used, or was never "
                              "issued; ask for a new one", kind="signin-link-invalid")
            secret = secrets.token_urlsafe(32)
            session = Session(key, now + self.policy.session_ttl)
            await conn.execute(sa.insert(LearnerSession).values(
                id_sha256=digest(secret), learner_key=key, created_at=now,
                expires_at=session.expires_at))
        return BEARER_PREFIX + secret, session

    async def session(self, credential: str | None) -> Session | None:
        if not credential or not credential.startswith(BEARER_PREFIX):
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(
                col(LearnerSession.learner_key), col(LearnerSession.expires_at)).where(
                col(LearnerSession.id_sha256) == digest(credential[len(BEARER_PREFIX):]),
                col(LearnerSession.ended_at).is_(None),
                col(LearnerSession.expires_at) > datetime.now(UTC)))).first()
        return Session(row.learner_key, row.expires_at) if row else None

    async def end(self, credential: str | None) -> None:
        if not credential or not credential.startswith(BEARER_PREFIX):
            return
        async with self._engine.begin() as conn:
            await conn.execute(sa.update(LearnerSession).where(
                col(LearnerSession.id_sha256) == digest(credential[len(BEARER_PREFIX):])).values(
                ended_at=datetime.now(UTC)))
