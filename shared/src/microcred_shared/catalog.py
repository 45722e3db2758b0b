"""Providers and credential definitions: the catalogue every service projects.

assessment owns it (admin API, ADR 11) and publishes every change on compacted topics;
services keep their own projection (`microcred_shared.projection`). The seed file in the
same format is imported once into an empty system. A provider has a kind and an ISO 3166-2
jurisdiction; definitions belong to one provider, may be co-issued or endorsed by partners,
are versioned, and may be stacks of other definitions.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

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


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    phone: str | None = Field(default=None, max_length=40)


class Provider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: Text
    kind: ProviderKind
    jurisdiction: str
    url: str
    email: str = Field(description="public address shown on the issuer profile")
    quality_assurance: QualityAssurance
    contact: Contact | None = Field(default=None, description="who the operator calls")
    status: Literal["active", "suspended"] = "active"
    status_reason: str | None = None
    version: int = Field(default=1, ge=1, description="bumped on every change")

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


class Partner(BaseModel):
    """An employer or sector partner that built the credential with the owner. A co-issuer
    that is a provider on the backbone may also submit results for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["co-issuer", "endorser"]
    name: Text
    provider_id: str | None = Field(default=None, description="when it is a provider here")
    url: str | None = None


class StackSpec(BaseModel):
    """A larger credential made of components: all of them, or any `k`, optionally earned
    within `window_days` of each other (first to last issue date)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: Literal["all_of", "k_of_n"] = "all_of"
    components: list[str] = Field(min_length=2)
    k: int | None = Field(default=None, ge=1)
    window_days: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _k(self) -> StackSpec:
        if len(set(self.components)) != len(self.components):
            raise ValueError("stack components must be distinct")
        if self.rule == "k_of_n" and not (self.k and self.k <= len(self.components)):
            raise ValueError("a k_of_n stack needs 1 <= k <= number of components")
        return self

    @property
    def needed(self) -> int:
        return len(self.components) if self.rule == "all_of" else int(self.k or 0)


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,100}$")
    provider_id: str
    version: int = Field(default=1, ge=1)
    status: Literal["active", "retired"] = "active"
    title: Text
    description: Text
    learning_outcomes: list[Text] = Field(min_length=1)
    assessment_method: Text
    assessment_type: str = Field(description="e.g. 'practical demonstration', 'written exam'")
    pass_rule: PassRule | None = Field(default=None, description="required unless a stack")
    workload: Workload
    credits: float | None = None
    level: Level | None = None
    participation_form: Literal["online", "onsite", "blended"]
    alignments: list[Alignment] = []
    cip_code: str | None = None
    noc_code: str | None = None
    language: Literal["en", "fr"] = "en"
    validity_months: int | None = None
    suspendable: bool = Field(default=False, description=(
        "whether the issuer may suspend (and reinstate) its credentials, as for a licence "
        "or certification that lapses and comes back; otherwise they can only be revoked. "
        "A suspendable credential carries a second status entry, which the OB 3.0 JSON "
        "Schema (one credentialStatus object) does not allow: ADR 8"))
    prerequisites: Text | None = None
    identity_verification: str | None = None
    further_information: str | None = None
    partners: list[Partner] = []
    stack: StackSpec | None = None
    image: str | None = Field(default=None, max_length=2000, description=(
        "the provider's badge image (https URL of a PNG or SVG); without one the backbone "
        "draws a badge with the title, provider and level"))

    @field_validator("image")
    @classmethod
    def _https_image(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise ValueError("image must be an https URL without user information")
        return value

    @model_validator(mode="after")
    def _rule_or_stack(self) -> Definition:
        if (self.pass_rule is None) == (self.stack is None):
            raise ValueError("a definition has a pass_rule, or is a stack, not both")
        return self

    def co_issuers(self) -> set[str]:
        return {p.provider_id for p in self.partners if p.role == "co-issuer" and p.provider_id}

    def may_submit(self, provider_id: str) -> bool:
        """Only the owner and its co-issuing providers may report results for it."""
        return provider_id == self.provider_id or provider_id in self.co_issuers()


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    providers: list[Provider]
    definitions: list[Definition]

    @model_validator(mode="after")
    def _owned(self) -> Catalog:
        ids = {p.id for p in self.providers}
        known = {d.id for d in self.definitions}
        for d in self.definitions:
            if d.provider_id not in ids:
                raise ValueError(f"definition {d.id} names unknown provider {d.provider_id}")
            if d.co_issuers() - ids:
                raise ValueError(f"definition {d.id} names an unknown co-issuer")
            if d.stack and set(d.stack.components) - known:
                raise ValueError(f"stack {d.id} names an unknown component")
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

    def stacks_with(self, component_id: str) -> list[Definition]:
        """Active stack definitions that `component_id` counts towards."""
        return [d for d in self.definitions if d.stack and d.status == "active"
                and component_id in d.stack.components]

    @classmethod
    def of(cls, providers: list[Provider], definitions: list[Definition]) -> Catalog:
        """A catalogue from already validated parts (a projection): during a replay a
        definition may arrive before its provider, which must not hide the others."""
        return cls.model_construct(providers=providers, definitions=definitions)


def load_catalog(path: str | Path) -> Catalog:
    return Catalog.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
