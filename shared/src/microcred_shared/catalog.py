"""Providers and credential definitions: the catalogue every service projects.

Loaded from a seed file for now; the model is multi-provider and multi-province from the
start (a provider has a kind and an ISO 3166-2 jurisdiction; definitions belong to one
provider and are versioned).
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProviderKind = Literal["college", "university", "indigenous_institute", "industry_association",
                       "sector_board", "employer", "polytechnic", "cegep"]
JURISDICTION = re.compile(r"^CA-(AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT)$")


class Text(BaseModel):
    """A string in English and, where the provider gives it, French."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    en: str = Field(min_length=1)
    fr: str | None = None


class QualityAssurance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str = Field(description="e.g. 'provincial quality assurance review'")
    body: str
    status: str = "accredited"


class Provider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: Text
    kind: ProviderKind
    jurisdiction: str
    url: str
    email: str
    quality_assurance: QualityAssurance
    status: Literal["active", "suspended"] = "active"

    @field_validator("jurisdiction")
    @classmethod
    def _iso_3166_2(cls, value: str) -> str:
        if not JURISDICTION.match(value):
            raise ValueError("jurisdiction must be a Canadian ISO 3166-2 code such as CA-ON")
        return value


class PassRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["score", "rubric", "pass_fail"]
    min_score: float | None = None
    max_score: float | None = None
    levels: list[str] | None = Field(default=None, description="rubric levels, lowest first")
    min_level: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> PassRule:
        if self.kind == "score" and (self.min_score is None or self.max_score is None
                                     or not 0 <= self.min_score <= self.max_score):
            raise ValueError("a score rule needs 0 <= min_score <= max_score")
        if self.kind == "rubric" and (not self.levels or self.min_level not in self.levels):
            raise ValueError("a rubric rule needs levels and a min_level among them")
        return self


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    hours: float | None = Field(default=None, gt=0)
    ects: float | None = Field(default=None, gt=0)


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    framework: str = Field(description="EQF, NQF or a provincial framework")
    value: str


class Alignment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    url: str
    framework: str
    code: str | None = None
    type: str = "ext:ESCO"


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,100}$")
    provider_id: str
    version: int = 1
    title: Text
    description: Text
    learning_outcomes: list[Text] = Field(min_length=1)
    assessment_method: Text
    assessment_type: str = Field(description="e.g. 'practical demonstration', 'written exam'")
    pass_rule: PassRule
    workload: Workload
    credits: float | None = None
    level: Level | None = None
    participation_form: Literal["online", "onsite", "blended"]
    alignments: list[Alignment] = []
    cip_code: str | None = None
    noc_code: str | None = None
    language: Literal["en", "fr"] = "en"
    validity_months: int | None = None
    prerequisites: Text | None = None
    identity_verification: str | None = None
    further_information: str | None = None


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    providers: list[Provider]
    definitions: list[Definition]

    @model_validator(mode="after")
    def _owned(self) -> Catalog:
        ids = {p.id for p in self.providers}
        for d in self.definitions:
            if d.provider_id not in ids:
                raise ValueError(f"definition {d.id} names unknown provider {d.provider_id}")
        return self

    @cached_property
    def _providers(self) -> dict[str, Provider]:
        return {p.id: p for p in self.providers}

    @cached_property
    def _definitions(self) -> dict[str, Definition]:
        return {d.id: d for d in self.definitions}

    def provider(self, provider_id: str) -> Provider | None:
        return self._providers.get(provider_id)

    def definition(self, definition_id: str) -> Definition | None:
        return self._definitions.get(definition_id)


def load_catalog(path: str | Path) -> Catalog:
    return Catalog.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
