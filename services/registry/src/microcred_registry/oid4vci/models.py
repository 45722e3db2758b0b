"""Tables of the OpenID4VCI context (ADR 28). Secrets (pre-authorized code, transaction
code, access token) are kept only as SHA-256 digests, like the other learner secrets (ADR 9):
the code and token are 256-bit random values; the 6-digit transaction code is guarded by
the few attempts an offer allows, not by its hash."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow

TZ = sa.DateTime(timezone=True)


class CredentialOffer(SQLModel, table=True):
    """A pre-authorized code: one credential of one learner, single use, short-lived. The
    access token it is exchanged for lives on the same row."""

    __tablename__ = "oid4vci_offers"
    code_sha256: str = Field(primary_key=True)
    credential_id: uuid.UUID = Field(index=True)
    learner_key: str = Field(index=True)
    tx_code_sha256: str | None = None
    tx_failures: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    redeemed_at: datetime | None = Field(default=None, sa_type=TZ)
    token_sha256: str | None = Field(default=None, unique=True)
    token_expires_at: datetime | None = Field(default=None, sa_type=TZ)
    credential_issued_at: datetime | None = Field(default=None, sa_type=TZ)


class Nonce(SQLModel, table=True):
    """A `c_nonce` from the nonce endpoint: one proof of possession may use it, once."""

    __tablename__ = "oid4vci_nonces"
    nonce: str = Field(primary_key=True)
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)


OID4VCI_TABLES: list[type[SQLModel]] = [CredentialOffer, Nonce]
