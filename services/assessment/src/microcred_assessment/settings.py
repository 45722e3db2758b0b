from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field

from microcred_shared.settings import REPO_ROOT, ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "assessment"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_ASSESSMENT_DATABASE_URL"))
    http_port: int = Field(8101, validation_alias=AliasChoices("MICROCRED_ASSESSMENT_HTTP_PORT"))
    seed_file: str = Field(str(REPO_ROOT / "deploy" / "seed" / "providers.json"),
                           validation_alias=AliasChoices("MICROCRED_SEED_FILE"))
    # Results dated further in the future than this are refused (clock skew allowance).
    clock_skew_seconds: int = Field(
        300, validation_alias=AliasChoices("MICROCRED_CLOCK_SKEW_SECONDS"))
