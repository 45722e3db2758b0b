from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class IssuerKey(SQLModel, table=True):
    """A provider's Ed25519 signing key. The private half is AES-256-GCM encrypted under
    the key-encryption key from settings; it never leaves this table in clear."""

    __tablename__ = "issuer_keys"
    provider_id: str = Field(primary_key=True)
    key_id: str = Field(primary_key=True)
    public_multikey: str
    private_encrypted: bytes = Field(sa_type=sa.LargeBinary)
    nonce: bytes = Field(sa_type=sa.LargeBinary)
    status: str = "active"  # active | retired | compromised
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    retired_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
