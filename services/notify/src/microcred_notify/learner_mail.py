"""Mail a learner the one-time sign-in link the registry asked for (`LearnerSignInRequested`).

It rides the same delivery state machine as credential mail (a `notifications` row of kind
`learner-signin`, keyed by the request id in `credential_id`), so it gets the same SMTP
pool, retries and stable Message-ID. The link is a bearer secret for a few minutes: it is
kept in the row only until it is sent (later batches blank the spent ones), never in
`source_payload`, and a link that already expired is not mailed at all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_notify.models import Notification

if TYPE_CHECKING:
    from microcred_notify.messages import Mail
from microcred_shared.cloudevents import encode
from microcred_shared.consumer import Incoming
from microcred_shared.events_learners import LearnerSignInRequested

KIND = "learner-signin"

SUBJECT = {"en": "Your sign-in link for microcred", "fr": "Votre lien de connexion microcred"}
BODY = {
    "en": ("Hello,\n\nSomeone (we hope you) asked to sign in to the micro-credentials held "
           "for this address. Open this link to sign in:\n{link}\n\nIt works once, within "
           "{minutes} minutes. If you did not ask for it, ignore this message: nothing "
           "happens without the link.\n\n— microcred\n"),
    "fr": ("Bonjour,\n\nQuelqu'un (vous, nous l'espérons) a demandé à se connecter aux "
           "microcertifications détenues pour cette adresse. Ouvrez ce lien pour vous "
           "connecter :\n{link}\n\nIl fonctionne une fois, pendant {minutes} minutes. Si "
           "vous n'avez rien demandé, ignorez ce message : rien ne se passe sans le lien."
           "\n\n— microcred\n"),
}


async def on_signin_requested(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    now = datetime.now(UTC)
    await _blank_spent_links(conn, now)
    for item in items:
        e = item.event
        assert isinstance(e, LearnerSignInRequested)
        if e.expires_at <= now:
            continue  # arrived too late to be of use: mailing it would only confuse
        nid = uuid.uuid4()
        scrubbed = e.model_copy(update={"link": ""})
        await conn.execute(pg_insert(Notification).values(
            id=nid, credential_id=e.request_id, kind=KIND, recipient=e.email,
            learner_name="", language=e.language, title="", url=e.link, status="pending",
            attempts=0, next_attempt_at=now, detail=e.expires_at.isoformat(),
            message_id=f"<{nid}@microcred.local>", traceparent=item.traceparent,
            source_topic=item.record.topic, source_payload=encode(scrubbed),
        ).on_conflict_do_nothing())
    return {}


async def _blank_spent_links(conn: AsyncConnection, now: datetime) -> None:
    await conn.execute(sa.update(Notification).where(
        col(Notification.kind) == KIND, col(Notification.url) != "",
        sa.or_(col(Notification.status) != "pending",
               col(Notification.created_at) < now - timedelta(hours=1))).values(url=""))


def signin_message(n: Any, sender: str) -> Mail:
    from microcred_notify.messages import compose  # messages imports this module

    lang = n.language if n.language in SUBJECT else "en"
    minutes = 15
    try:
        expires = datetime.fromisoformat(n.detail or "")
        minutes = max(1, round((expires - n.created_at).total_seconds() / 60))
    except (TypeError, ValueError):
        pass
    return compose(sender=sender, recipient=n.recipient, subject=SUBJECT[lang],
                   body=BODY[lang].format(link=n.url, minutes=minutes),
                   message_id=n.message_id, language=lang)
