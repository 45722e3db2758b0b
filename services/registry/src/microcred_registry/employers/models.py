"""The registry's projection of the employer directory (`microcred.employers.v1`, published
by notify, which registers and approves employers): enough to name an employer to a learner
and to know whether it may be shared with. Nothing else of an employer reaches the registry."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

TZ = sa.DateTime(timezone=True)


class EmployerEntry(SQLModel, table=True):
    __tablename__ = "employer_directory"
    employer_id: str = Field(primary_key=True)
    organisation: str
    status: str  # pending | approved | suspended
    website: str | None = None
    updated_at: datetime = Field(sa_type=TZ)  # the record's published_at
