"""VC Data Model checks for VC-API issue input: 2.0, and 1.1 (`@context` starting with
`https://www.w3.org/2018/credentials/v1`, dates in `issuanceDate`/`expirationDate`), which
issuers in the ecosystem still sign and the VC-API test suites still send.

These are the refusals the W3C VC 2.0 test suite expects from an issuer (it posts each
`*-fail.json` input and expects an error). JSON-LD-level problems — a type or property
no context defines, a redefined protected term, a context we do not have — are found when
the credential is canonicalized for signing; this module covers the JSON shape.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from . import related
from .contexts import VC_V1_URL, VC_V2_URL
from .related import is_url

# The dateTimeStamp pattern the VC 2.0 spec gives (an offset or Z is required).
DATETIME_STAMP = re.compile(
    r"^-?([1-9][0-9]{3,}|0[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?|(24:00:00(\.0+)?))"
    r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$")
# Objects that VC 2.0 says MUST have a type; credentialSchema also needs a URL id.
TYPED_OBJECTS = ("credentialStatus", "termsOfUse", "evidence", "refreshService",
                 "credentialSchema", "proof")
_LANGUAGE_KEYS = frozenset({"@value", "@language", "@direction"})


def parse_datetime(value: str) -> datetime:
    """An XSD dateTimeStamp as an aware datetime (raises ValueError)."""
    if not DATETIME_STAMP.match(value):
        raise ValueError(f"{value!r} is not an XML Schema dateTimeStamp")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_id(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, list):
        problems.append(f"{where}.id must be a single URL, not several values")
    elif not is_url(value):
        problems.append(f"{where}.id must be a URL, got {value!r}")


def _check_text(value: Any, where: str, problems: list[str]) -> None:
    """name/description: a string or language value object(s)."""
    for item in _as_list(value):
        if isinstance(item, str):
            continue
        if not (isinstance(item, dict) and "@value" in item and _LANGUAGE_KEYS.issuperset(item)):
            problems.append(f"{where} must be a string or a language value object")


def _check_typed(document: dict[str, Any], key: str, problems: list[str]) -> None:
    if key not in document:
        return
    values = document[key]
    if values == [] or values is None:
        problems.append(f"{key} must not be empty")
        return
    for n, item in enumerate(_as_list(values)):
        where = f"{key}[{n}]" if isinstance(values, list) else key
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object with a type")
            continue
        types = item.get("type")
        if not types or not all(isinstance(t, str) and t for t in _as_list(types)):
            problems.append(f"{where}.type is required (a string or an array of strings)")
        if "id" in item or key == "credentialSchema":
            _check_id(item.get("id"), where, problems)


def _check_subjects(document: dict[str, Any], problems: list[str]) -> None:
    subjects = document.get("credentialSubject")
    if subjects is None or subjects == []:
        problems.append("credentialSubject is required")
        return
    for n, subject in enumerate(_as_list(subjects)):
        where = f"credentialSubject[{n}]" if isinstance(subjects, list) else "credentialSubject"
        if not isinstance(subject, dict) or not subject:
            problems.append(f"{where} must be an object with at least one claim")
        elif "id" in subject:
            _check_id(subject["id"], where, problems)


def _check_issuer(document: dict[str, Any], problems: list[str]) -> None:
    issuer = document.get("issuer")
    if issuer is None:
        problems.append("issuer is required")
    elif isinstance(issuer, dict):
        if "id" not in issuer:
            problems.append("issuer.id is required when issuer is an object")
        else:
            _check_id(issuer["id"], "issuer", problems)
        for key in ("name", "description"):
            if key in issuer:
                _check_text(issuer[key], f"issuer.{key}", problems)
    elif not is_url(issuer):
        problems.append(f"issuer must be a URL or an object with a URL id, got {issuer!r}")


def is_v1(document: dict[str, Any]) -> bool:
    """A VC Data Model 1.1 credential (or presentation): its first context is VC v1."""
    context = document.get("@context")
    first = context[0] if isinstance(context, list) and context else context
    return first == VC_V1_URL


def valid_from(document: dict[str, Any]) -> Any:
    """When the credential starts to be valid: validFrom, or 1.1's issuanceDate."""
    return document.get("validFrom", document.get("issuanceDate") if is_v1(document) else None)


def valid_until(document: dict[str, Any]) -> Any:
    """When it stops: validUntil, or 1.1's expirationDate."""
    return document.get("validUntil",
                        document.get("expirationDate") if is_v1(document) else None)


def _check_validity(document: dict[str, Any], problems: list[str]) -> None:
    moments: dict[str, datetime] = {}
    keys: tuple[str, ...] = ("validFrom", "validUntil")
    if is_v1(document):
        keys += ("issuanceDate", "expirationDate")
    elif "issuanceDate" in document or "expirationDate" in document:
        problems.append("issuanceDate and expirationDate are VC 1.1 terms: a VC 2.0 "
                        "credential says validFrom and validUntil")
    for key in keys:
        if key not in document:
            continue
        if not isinstance(document[key], str):
            problems.append(f"{key} must be a dateTimeStamp string")
            continue
        try:
            moments[key] = parse_datetime(document[key])
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    for start, end in (("validFrom", "validUntil"), ("issuanceDate", "expirationDate")):
        if start in moments and end in moments and moments[end] < moments[start]:
            problems.append(f"{end} is before {start}")


def _check_context(document: dict[str, Any], problems: list[str]) -> None:
    context = document.get("@context")
    if context is None:
        problems.append("@context is required")
    elif not isinstance(context, list) or not context or context[0] not in (VC_V2_URL,
                                                                            VC_V1_URL):
        problems.append(f"@context must be an array whose first item is {VC_V2_URL} "
                        f"(or, for VC 1.1, {VC_V1_URL})")
    elif not all(isinstance(c, str | dict) for c in context[1:]):
        problems.append("@context items must be URLs or context objects")


def credential_problems(document: Any) -> list[str]:
    """Why `document` is not an acceptable VC 2.0 (or 1.1) credential to issue (empty: fine)."""
    if not isinstance(document, dict):
        return ["a credential must be a JSON object"]
    problems: list[str] = []
    _check_context(document, problems)
    types = document.get("type")
    if types is None:
        problems.append("type is required")
    elif not all(isinstance(t, str) for t in _as_list(types)) or (
            "VerifiableCredential" not in _as_list(types)):
        problems.append("type must include VerifiableCredential")
    if "id" in document:
        _check_id(document["id"], "credential", problems)
    _check_issuer(document, problems)
    _check_subjects(document, problems)
    _check_validity(document, problems)
    for key in ("name", "description"):
        if key in document:
            _check_text(document[key], key, problems)
    for key in TYPED_OBJECTS:
        _check_typed(document, key, problems)
    if "relatedResource" in document:
        shape = related.problems(document["relatedResource"])
        # Digests of the resources we hold (our vendored contexts) are compared now: a
        # credential must not go out pinning a context to the wrong bytes.
        problems += shape or related.mismatches(document["relatedResource"])[0]
    return problems
