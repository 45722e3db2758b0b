"""A signed credential's announcement (`CredentialIssued`) as its outbox record.

The payload is the event's JSON, byte for byte what `cloudevents.encode` writes. Most of a
credential's JSON is its achievement, the same object in every credential of a definition
version (`credential._achievement_with_results`): its JSON is written once per version
and put in place of a placeholder, instead of being written again for every credential
(issue 12). A credential with an achievement of its own (VC-API) is written whole.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from microcred_issuance.issuing import credential
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events import CredentialIssued
from microcred_shared.outbox import Outgoing

SOURCE = "/microcred/issuance"

# Per process and unguessable, and no signed credential holds it (signing refuses U+0000);
# a payload where it is not found exactly once is written whole all the same.
_PLACEHOLDER = "\x00microcred-achievement-" + secrets.token_hex(16)
_PLACEHOLDER_JSON = TypeAdapter(str).dump_json(_PLACEHOLDER)


def record(*, credential_id: uuid.UUID, assessment_id: uuid.UUID | None, provider_id: str,
           definition_id: str | None, definition_version: int | None, learner_key: str,
           learner_email: str | None, learner_name: str | None,
           learner_language: Literal["en", "fr"], title: str, issued_at: datetime,
           signed: dict[str, Any], traceparent: str | None) -> Outgoing:
    """The outbox record announcing `signed`: what `outbox.event_record` builds for the
    `CredentialIssued` event, its payload byte for byte `cloudevents.encode`'s."""
    subject = signed.get("credentialSubject")
    written = credential.shared_achievement_json(
        subject.get("achievement") if isinstance(subject, dict) else None)
    held = signed if written is None else {
        **signed, "credentialSubject": {**subject, "achievement": _PLACEHOLDER}}  # type: ignore[dict-item]
    event = CredentialIssued(
        credential_id=credential_id, assessment_id=assessment_id, provider_id=provider_id,
        definition_id=definition_id, definition_version=definition_version,
        learner_key=learner_key, learner_email=learner_email, learner_name=learner_name,
        learner_language=learner_language, title=title, issued_at=issued_at, credential=held)
    text = encode(event)
    if written is not None:
        if text.count(_PLACEHOLDER_JSON) == 1:
            text = text.replace(_PLACEHOLDER_JSON, written)
        else:  # cannot happen (see _PLACEHOLDER); written whole all the same
            text = encode(event.model_copy(update={"credential": signed}))
    env = new_envelope(event, SOURCE, subject=str(credential_id), traceparent=traceparent)
    return Outgoing(topic=topics.CREDENTIALS_ISSUED, key=event.key(), headers=env.headers(),
                    payload=text)
