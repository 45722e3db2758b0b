"""LinkedIn's "Add to profile" link for a credential: LinkedIn's certification form,
pre-filled with the credential's name, the issuing organisation, the issue and expiry
month, the credential's URL and its id. Pure: read from the signed document."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from microcred_registry.credentials.document import localised, moment

ADD_TO_PROFILE = "https://www.linkedin.com/profile/add"


def credential_name(doc: dict[str, Any], lang: str = "en") -> str:
    """The achievement's name in `lang` where the credential has it (else English)."""
    subject: Any = doc.get("credentialSubject") or {}
    subject = subject[0] if isinstance(subject, list) and subject else subject
    ach = subject.get("achievement") if isinstance(subject, dict) else None
    return localised(ach, "name", lang) or localised(doc, "name", lang)


def add_to_profile(doc: dict[str, Any], cert_url: str, cert_id: str, lang: str = "en") -> str:
    """The link, or "" when the document lacks a name or an issue date. The name and the
    organisation follow the learner's language where the credential has it; a credential
    without `validUntil` has no expiration fields (LinkedIn then shows no expiry)."""
    name = credential_name(doc, lang)
    issued = moment(doc.get("awardedDate")) or moment(doc.get("validFrom"))
    if not name or issued is None:
        return ""
    params: dict[str, str | int] = {"startTask": "CERTIFICATION_NAME", "name": name}
    organisation = localised(doc.get("issuer"), "name", lang)
    if organisation:
        params["organizationName"] = organisation
    params |= {"issueYear": issued.year, "issueMonth": issued.month}
    expires = moment(doc.get("validUntil"))
    if expires is not None:
        params |= {"expirationYear": expires.year, "expirationMonth": expires.month}
    params |= {"certUrl": cert_url, "certId": cert_id}
    return f"{ADD_TO_PROFILE}?{urlencode(params)}"
