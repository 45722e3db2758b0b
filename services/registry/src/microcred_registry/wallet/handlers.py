"""Use cases of the learner's wallet, one per action, reached from the learner API and
from the learner's own pages alike: list, export and download my credentials, choose who
sees one, share it with an approved employer or stop, make and revoke share links, and my
public profile. Every change that others must learn of is published through the outbox
(microcred_registry.wallet.sharing) and the relay is woken once it is committed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_registry.employers import handlers as directory
from microcred_registry.employers.domain import share_json, shareable
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import (
    EMPLOYER_ID,
    Session,
    export_bundle,
    link_json,
    share_expiry,
    summary,
)
from microcred_shared.problems import Problem


class UnknownEmployer(Problem):
    """A new direct share with an employer the directory does not list as approved."""

    def __init__(self, employer_id: str) -> None:
        super().__init__(404, "Unknown employer", f"no approved employer {employer_id} "
                         "(GET /v1/learner/employers lists those you can share with)",
                         kind="employer-not-found")


def invalid_employer_id(detail: str = "an employer id is 2-64 characters of a-z, 0-9 "
                        "and -") -> Problem:
    return Problem(400, "Invalid employer id", detail, kind="invalid-request")


@dataclass(frozen=True)
class Changed:
    """A credential after a change: its row, and its state as the learner API shows it."""
    row: Any
    state: dict[str, Any]


class Wallet:
    def __init__(self, engine: AsyncEngine, base: str, wake_relay: Callable[[], None]) -> None:
        self.engine, self.base, self._wake = engine, base, wake_relay

    async def _state(self, conn: AsyncConnection, row: Any) -> dict[str, Any]:
        visibility, shared = await sharing.visibility_of(conn, row.credential_id)
        return summary(row, visibility, shared, self.base)

    async def mine(self, session: Session) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = await sharing.my_credentials(conn, session.learner_key)
        return {"count": len(rows), "credentials": [
            summary(r, r.visibility or "private", list(r.shared_with or []), self.base)
            for r in rows]}

    async def export(self, session: Session) -> tuple[str, dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await sharing.my_credentials(conn, session.learner_key)
        return export_bundle([dict(r.document) for r in rows], datetime.now(UTC))

    async def held(self, session: Session, credential_id: uuid.UUID) -> Any:
        """The learner's own credential (404 problem for any other)."""
        async with self.engine.connect() as conn:
            return await sharing.owned(conn, session.learner_key, credential_id)

    async def credential(self, session: Session, credential_id: uuid.UUID) -> dict[str, Any]:
        """One credential with its share links and direct shares, by employer name."""
        async with self.engine.connect() as conn:
            row = await sharing.owned(conn, session.learner_key, credential_id)
            links = await sharing.links_of(conn, credential_id)
            employers = await sharing.employer_shares(conn, credential_id)
            named = await directory.entries(conn, [e for e, _ in employers])
            out = await self._state(conn, row)
        return {**out, "shares": [link_json(link, self.base) for link in links],
                "employer_shares": [share_json(e, since, named.get(e))
                                    for e, since in employers],
                "credential": row.document}

    async def set_visibility(self, session: Session, credential_id: uuid.UUID,
                             visibility: str) -> Changed:
        async with self.engine.begin() as conn:
            row = await sharing.owned(conn, session.learner_key, credential_id)
            await sharing.change(conn, row, visibility=visibility)
            out = await self._state(conn, row)
        self._wake()
        return Changed(row, out)

    async def share_with(self, session: Session, credential_id: uuid.UUID,
                         employer_id: str) -> Changed:
        """A new direct share needs an employer an operator approved (in the directory
        notify publishes); sharing again with one already shared with changes nothing."""
        if not EMPLOYER_ID.match(employer_id):
            raise invalid_employer_id()
        async with self.engine.begin() as conn:
            row = await sharing.owned(conn, session.learner_key, credential_id)
            _, shared = await sharing.visibility_of(conn, credential_id)
            if employer_id not in shared and not shareable(
                    await directory.entry(conn, employer_id)):
                raise UnknownEmployer(employer_id)
            await sharing.change(conn, row, share_with=employer_id)
            out = await self._state(conn, row)
        self._wake()
        return Changed(row, out)

    async def stop_sharing(self, session: Session, credential_id: uuid.UUID,
                           employer_id: str) -> Changed:
        """Stopping a share always works, whatever became of the employer: the event it
        publishes withdraws the credential from the employer's feed and webhooks (ADR 10)."""
        if not EMPLOYER_ID.match(employer_id):
            raise invalid_employer_id()
        async with self.engine.begin() as conn:
            row = await sharing.owned(conn, session.learner_key, credential_id)
            await sharing.change(conn, row, unshare=employer_id)
            out = await self._state(conn, row)
        self._wake()
        return Changed(row, out)

    async def new_link(self, session: Session, credential_id: uuid.UUID,
                       expires_at: datetime | None = None, expires_in_days: int | None = None,
                       ) -> tuple[Changed, dict[str, Any]]:
        """A new share link, its URL shown once (the token is kept only as its digest).
        Making a link is asking for it to work: a private credential opens to links."""
        try:
            expires = share_expiry(expires_at, expires_in_days, datetime.now(UTC))
        except ValueError as exc:
            raise Problem(400, "Invalid expiry", str(exc), kind="invalid-request") from exc
        async with self.engine.begin() as conn:
            row = await sharing.owned(conn, session.learner_key, credential_id)
            link, token = await sharing.open_link(conn, row, expires)
            out = await self._state(conn, row)
        self._wake()
        return Changed(row, out), link_json(link, self.base, token)

    async def links(self, session: Session, credential_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            await sharing.owned(conn, session.learner_key, credential_id)
            links = await sharing.links_of(conn, credential_id)
        return [link_json(link, self.base) for link in links]

    async def revoke_link(self, session: Session, credential_id: uuid.UUID,
                          share_id: uuid.UUID) -> tuple[Any, bool]:
        """(the credential, whether a live link was revoked): one already revoked (a second
        click, another tab) is simply no longer listed."""
        async with self.engine.begin() as conn:
            row = await sharing.owned(conn, session.learner_key, credential_id)
            done = await sharing.revoke_link(conn, credential_id, share_id)
        return row, done

    async def shareable_employers(self) -> list[dict[str, Any]]:
        """The employers a learner can share a credential with directly, by name."""
        async with self.engine.connect() as conn:
            rows = await directory.shareable_employers(conn)
        return [{"id": r.employer_id, "name": r.organisation, "website": r.website}
                for r in rows]

    async def profile_url(self, session: Session) -> str:
        async with self.engine.begin() as conn:
            slug = await sharing.profile_slug(conn, session.learner_key)
        return f"{self.base}/p/{slug}"
