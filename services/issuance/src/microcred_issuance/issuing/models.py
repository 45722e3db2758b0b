"""The register of holder-bound copies (who got which copy of which credential, when)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class BoundCopy(SQLModel, table=True):
    __tablename__ = "bound_copies"
    copy_id: uuid.UUID = Field(primary_key=True)
    credential_id: uuid.UUID = Field(index=True)
    provider_id: str
    holder: str
    key_id: str
    issued_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
