"""Events about what learners choose to show, and about reaching them (issue: learners own,
employers subscribe). Defined here so registry (which owns visibility) and notify (which
delivers to employers) agree on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from microcred_shared.contract.events import Event

Visibility = Literal["private", "link", "public", "employers"]


class CredentialVisibilityChanged(Event):
    """A learner changed who may see a credential. `employers` means visible to subscribed
    employers; `shared_with` lists employer ids the learner shared it with directly.

    When the new choice lets some employer see the credential (`public`, `employers` or a
    direct share) the registry adds what notify's employer feed tells of it: its
    `definition_id` and the signed document itself (`credential`, as stored). Otherwise
    both are absent: notify keeps no document of a credential no employer may see (ADR 10).
    Registries before issue 12 wave 17 never send them."""

    ce_type: ClassVar[str] = "ca.microcred.credential.visibility.changed.v1"
    credential_id: uuid.UUID
    learner_key: str
    provider_id: str
    visibility: Visibility
    shared_with: list[str] = []
    changed_at: datetime
    definition_id: str | None = None
    credential: dict[str, Any] | None = None

    def key(self) -> bytes:
        return self.learner_key.encode()


class LearnerSignInRequested(Event):
    """A learner asked for a one-time sign-in link; notify mails it (the link itself is in
    the payload: the topic is internal and the token is single-use and short-lived)."""

    ce_type: ClassVar[str] = "ca.microcred.learner.signin.requested.v1"
    request_id: uuid.UUID
    learner_key: str
    email: str
    language: Literal["en", "fr"] = "en"
    link: str
    expires_at: datetime

    def key(self) -> bytes:
        return self.learner_key.encode()


class WalletTxCodeIssued(Event):
    """A learner made an OpenID4VCI credential offer on their page; notify mails them its
    transaction code, a channel apart from the offer's QR code and link (ADR 31). The code
    is in the payload (the topic is internal; the code is single-use, worthless without the
    offer, and expires with it); notify keeps it only until the mail is sent."""

    ce_type: ClassVar[str] = "ca.microcred.learner.wallet-tx-code.issued.v1"
    offer_id: uuid.UUID
    credential_id: uuid.UUID
    learner_key: str
    language: Literal["en", "fr"] = "en"
    tx_code: str = Field(pattern=r"^[0-9]{4,8}$")
    expires_at: datetime
    # The credential's title in `language`, as the mail names it.
    title: str = ""

    def key(self) -> bytes:
        return self.learner_key.encode()
