from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field

from microcred_shared.settings import REPO_ROOT, ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "assessment"
    default_port: ClassVar[int] = 8101
    seed_file: str = Field(str(REPO_ROOT / "deploy" / "seed" / "providers.json"),
                           validation_alias=AliasChoices("MICROCRED_SEED_FILE"))
    # Results dated further in the future than this are refused (clock skew allowance).
    clock_skew_seconds: int = 300
