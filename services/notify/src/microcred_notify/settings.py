from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field

from microcred_notify.employer_feed.settings import EmployerSettings
from microcred_notify.learner_mail.settings import MailSettings
from microcred_shared.settings import ServiceSettings


class Settings(MailSettings, EmployerSettings, ServiceSettings):
    service: ClassVar[str] = "notify"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_NOTIFY_DATABASE_URL"))
    http_port: int = Field(8104, validation_alias=AliasChoices("MICROCRED_NOTIFY_HTTP_PORT"))
