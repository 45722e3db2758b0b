"""Builds the unsigned Open Badges 3.0 `OpenBadgeCredential` for an achieved assessment.

Native OB 3.0 fields carry what OB defines (title, criteria, alignment, credits, result,
issuer address); the rest of the European micro-credential elements (workload, level,
assessment type, participation, quality assurance, CIP/NOC codes) use terms of our own
JSON-LD context so that no term is undefined. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from microcred_issuance.keys.domain import issuer_id, issuer_profile
from microcred_issuance.status.domain import status_entries
from microcred_shared.catalog import Definition, Partner, Provider, Text
from microcred_shared.contract.events import AssessmentDecided, KnownLearner
from microcred_shared.vc.contexts import microcred_context_url

VC_V2 = "https://www.w3.org/ns/credentials/v2"
OB_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
OB_EXTENSIONS = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json"


def contexts(base_url: str) -> list[str]:
    """Published contexts, then ours as this deployment publishes it (ADR 22)."""
    return [VC_V2, OB_V3, OB_EXTENSIONS, microcred_context_url(base_url)]

OB_SCHEMA = ("https://purl.imsglobal.org/spec/ob/v3p0/schema/json/"
             "ob_v3p0_achievementcredential_schema.json")

__all__ = ["achievement", "badge_url", "build", "build_stack", "identity", "image", "issuer_id",
           "issuer_profile", "profile_of"]


def _fr(target: dict[str, Any], term: str, text: Text | None) -> None:
    if text is not None and text.fr:
        target[term + "Fr"] = text.fr


def _narrative(d: Definition, lang: str) -> str:
    outcomes = [(o.fr if lang == "fr" else o.en) or o.en for o in d.learning_outcomes]
    head = "Résultats d'apprentissage atteints :" if lang == "fr" else \
        "Achieved learning outcomes:"
    return head + "\n" + "\n".join(f"- {line}" for line in outcomes)


def _result_description(d: Definition, rd_id: str) -> dict[str, Any]:
    rule = d.pass_rule
    rd: dict[str, Any] = {"id": rd_id, "type": ["ResultDescription"]}
    if rule is None:  # a stack: completed when its components are
        rd |= {"name": "Stack completed", "resultType": "Status",
               "allowedValue": ["Completed"]}
    elif rule.kind == "score":
        rd |= {"name": "Final score", "resultType": "ScaledScore",
               "valueMin": "0", "valueMax": f"{rule.max_score:g}",
               "requiredValue": f"{rule.min_score:g}"}
    elif rule.kind == "rubric":
        assert rule.levels
        rd |= {"name": "Rubric level", "resultType": "RubricCriterionLevel",
               "allowedValue": list(rule.levels), "requiredValue": rule.min_level}
    else:
        rd |= {"name": "Outcome", "resultType": "Status", "allowedValue": ["Completed"]}
    return rd


def _result(decision: AssessmentDecided, rd_id: str, d: Definition) -> dict[str, Any]:
    assert d.pass_rule is not None
    if d.pass_rule.kind == "score":
        value = f"{decision.score:g}"
    elif d.pass_rule.kind == "rubric":
        value = str(decision.rubric_level)
    else:
        value = "Completed"
    out: dict[str, Any] = {"type": ["Result"], "resultDescription": rd_id, "value": value}
    if d.pass_rule.kind == "pass_fail":
        out = {"type": ["Result"], "resultDescription": rd_id, "status": "Completed"}
    return out


def identity(email: str, salt: str) -> dict[str, Any]:
    digest = hashlib.sha256((email.strip().lower() + salt).encode()).hexdigest()
    return {"type": "IdentityObject", "identityType": "emailAddress", "hashed": True,
            "identityHash": "sha256$" + digest, "salt": salt}


def badge_url(base_url: str, d: Definition) -> str:
    """The badge the registry draws for a definition version (title, provider, level):
    stable per version, so every credential of that version names the same image."""
    return f"{base_url}/badges/{d.id}/v{d.version}.svg"


def badge_caption(d: Definition, provider_name: str | None) -> str:
    """The image's text alternative: what the badge shows, in words."""
    parts = [f"Badge of the micro-credential {d.title.en}"]
    if provider_name:
        parts.append(f"from {provider_name}")
    text = " ".join(parts)
    if d.level is not None:
        text += f", {d.level.framework} {d.level.value}"
    return text


def image(d: Definition, base_url: str, provider_name: str | None = None) -> dict[str, Any]:
    """OB 3.0 `Image`: the provider's own image when the definition names one, else ours."""
    return {"id": d.image or badge_url(base_url, d), "type": "Image",
            "caption": badge_caption(d, provider_name)}


def achievement(d: Definition, base_url: str,
                provider_name: str | None = None) -> dict[str, Any]:
    ach: dict[str, Any] = {
        "id": f"{base_url}/achievements/{d.id}/v{d.version}",
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": d.title.en,
        "description": d.description.en,
        "image": image(d, base_url, provider_name),
        "criteria": {"narrative": _narrative(d, "en")},
        "inLanguage": d.language,
        "version": str(d.version),
        "assessmentMethod": d.assessment_method.en,
        "assessmentType": d.assessment_type,
        "participationForm": d.participation_form,
        "notionalWorkload": {k: v for k, v in d.workload.model_dump().items() if v is not None},
    }
    _fr(ach, "name", d.title)
    _fr(ach, "description", d.description)
    if any(o.fr for o in d.learning_outcomes):
        ach["criteria"]["narrativeFr"] = _narrative(d, "fr")
    if d.credits is not None:
        ach["creditsAvailable"] = d.credits
    if d.level is not None:
        ach["level"] = {"framework": d.level.framework, "value": d.level.value}
    if d.alignments:
        ach["alignment"] = [
            {"type": ["Alignment"], "targetName": a.name, "targetUrl": a.url,
             "targetFramework": a.framework, "targetType": a.type,
             **({"targetCode": a.code} if a.code else {})}
            for a in d.alignments
        ]
    for term, value in (("cipCode", d.cip_code), ("nocCode", d.noc_code),
                        ("identityVerification", d.identity_verification),
                        ("furtherInformation", d.further_information)):
        if value:
            ach[term] = value
    if d.prerequisites is not None:
        ach["prerequisites"] = d.prerequisites.en
    if d.partners:
        ach["partners"] = [_partner(p, base_url) for p in d.partners]
    return ach


def _partner(p: Partner, base_url: str) -> dict[str, Any]:
    """A co-issuing or endorsing partner; a provider of the backbone is named by its issuer
    profile URL, another organisation by its own URL when it has one."""
    node: dict[str, Any] = {"name": p.name.en, "role": p.role}
    ident = issuer_id(base_url, p.provider_id) if p.provider_id else p.url
    if ident:
        node = {"id": ident, **node}
    _fr(node, "name", p.name)
    return node


def build(*, decision: AssessmentDecided, definition: Definition, provider: Provider,
          profile: dict[str, Any], credential_id: uuid.UUID, issued_at: datetime,
          base_url: str, status_index: int, salt: str) -> dict[str, Any]:
    rd_id = f"{base_url}/achievements/{definition.id}/v{definition.version}#result"
    subject = _subject(definition, provider, base_url, rd_id, decision.learner, salt,
                       _result(decision, rd_id, definition), decision.assessed_at)
    return _document(definition, provider, profile, credential_id, issued_at, base_url,
                     status_index, subject)


def build_stack(*, definition: Definition, provider: Provider, profile: dict[str, Any],
                credential_id: uuid.UUID, issued_at: datetime, base_url: str,
                status_index: int, salt: str, learner: KnownLearner, components: list[str],
                completed_at: datetime) -> dict[str, Any]:
    """A stacked credential: issued by the stack's owner, listing the component credentials
    (their registry URLs) that completed it, in `components` (our context, @id)."""
    rd_id = f"{base_url}/achievements/{definition.id}/v{definition.version}#result"
    result = {"type": ["Result"], "resultDescription": rd_id, "status": "Completed"}
    subject = _subject(definition, provider, base_url, rd_id, learner, salt, result,
                       completed_at)
    doc = _document(definition, provider, profile, credential_id, issued_at, base_url,
                    status_index, subject)
    doc["components"] = list(components)
    return doc


# The achievement of a definition version as its issuer names it: the same in every
# credential of that version, so built once and shared by them (a burst's credentials of
# one definition, issue 12). Keyed by the objects themselves, held in the entry so that
# their ids are not reused while it lives: a new version, or a provider renamed, is a new
# object in the catalog projection, hence a new entry. Shared: nothing may modify a built
# credential's achievement (nothing does; `sign` copies what it changes).
_ACHIEVEMENTS: dict[tuple[int, int, str, str], tuple[Definition, Provider, dict[str, Any]]] = {}
_ACHIEVEMENTS_MAX = 1024


def _achievement_with_results(definition: Definition, provider: Provider, base_url: str,
                              rd_id: str) -> dict[str, Any]:
    key = (id(definition), id(provider), base_url, rd_id)
    entry = _ACHIEVEMENTS.get(key)
    if entry is not None and entry[0] is definition and entry[1] is provider:
        return entry[2]
    ach = achievement(definition, base_url, provider.name.en)
    ach["resultDescription"] = [_result_description(definition, rd_id)]
    if len(_ACHIEVEMENTS) >= _ACHIEVEMENTS_MAX:
        _ACHIEVEMENTS.clear()
        _ACHIEVEMENT_JSON.clear()
    _ACHIEVEMENTS[key] = (definition, provider, ach)
    _ACHIEVEMENT_JSON[id(ach)] = (ach, _DOCUMENT_JSON.dump_json(ach))
    return ach


# The JSON of each shared achievement above, written once: the announcement of every
# credential of that version carries it (`announce`; issue 12). By the id of the object,
# held in the entry (an id is not reused while its object lives).
_ACHIEVEMENT_JSON: dict[int, tuple[dict[str, Any], bytes]] = {}
_DOCUMENT_JSON = TypeAdapter(dict[str, Any])  # as `CredentialIssued.credential` is written


def shared_achievement_json(ach: Any) -> bytes | None:
    """The JSON of `ach` when it is one of the shared achievements, else None."""
    entry = _ACHIEVEMENT_JSON.get(id(ach))
    return entry[1] if entry is not None and entry[0] is ach else None


# The issuer's profile as every credential of that issuer names it: built once per provider
# (the catalog projection's object, held in the entry like the achievements above) and
# shared by its credentials; nothing modifies a built credential's issuer.
_PROFILES: dict[tuple[int, str], tuple[Provider, dict[str, Any]]] = {}
_PROFILES_MAX = 1024


def profile_of(provider: Provider, base_url: str) -> dict[str, Any]:
    """`issuer_profile(provider, base_url)`, built once per provider object (issue 12)."""
    key = (id(provider), base_url)
    entry = _PROFILES.get(key)
    if entry is not None and entry[0] is provider:
        return entry[1]
    profile = issuer_profile(provider, base_url)
    if len(_PROFILES) >= _PROFILES_MAX:
        _PROFILES.clear()
    _PROFILES[key] = (provider, profile)
    return profile


def _subject(definition: Definition, provider: Provider, base_url: str, rd_id: str,
             learner: KnownLearner, salt: str, result: dict[str, Any],
             ended: datetime) -> dict[str, Any]:
    ach = _achievement_with_results(definition, provider, base_url, rd_id)
    subject: dict[str, Any] = {
        "type": ["AchievementSubject"],
        "name": learner.full_name,
        "identifier": [identity(learner.email, salt)],
        "achievement": ach,
        "result": [result],
        "activityEndDate": _iso(ended),
    }
    if definition.credits is not None:
        subject["creditsEarned"] = definition.credits
    return subject


def _document(definition: Definition, provider: Provider, profile: dict[str, Any],
              credential_id: uuid.UUID, issued_at: datetime, base_url: str,
              status_index: int, subject: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": contexts(base_url),
        "id": f"urn:uuid:{credential_id}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": definition.title.en,
        "issuer": profile,
        "validFrom": _iso(issued_at),
        "awardedDate": _iso(issued_at),
        "credentialSubject": subject,
        "jurisdiction": provider.jurisdiction,
        "qualityAssurance": {
            "type": "ExternalQualityAssurance",
            "name": provider.quality_assurance.type,
            "body": provider.quality_assurance.body,
            "status": provider.quality_assurance.status,
        },
        "definitionVersion": definition.version,
        "credentialStatus": status_entries(base_url, provider.id, status_index,
                                            suspendable=definition.suspendable),
        "credentialSchema": [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
    }
    _fr(doc, "name", definition.title)
    if definition.validity_months:
        doc["validUntil"] = _iso(_add_months(issued_at, definition.validity_months))
    return doc


@lru_cache(maxsize=256)  # a batch's credentials share their issuance time: 3-4 per credential
def _iso(moment: datetime) -> str:
    # timespec: the text of `moment.replace(microsecond=0).isoformat()` without building
    # that datetime (each decision's own assessment time misses the cache: issue 12).
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _add_months(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.month - 1 + months, 12)
    return moment.replace(year=moment.year + year, month=month + 1, day=min(moment.day, 28))
