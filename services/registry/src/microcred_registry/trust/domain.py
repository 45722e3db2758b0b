"""Who is on the trust list and what its entries say (ADR 26). Pure: no I/O.

A provider is listed while it is active and its quality assurance is in good standing:
suspending it (or recording an adverse quality-assurance outcome) removes it at once, and
reactivating it lists it again. The entry is keyed by the provider's did:web (ADR 22), the
`issuer.id` of every credential it issues, which is what wallets look up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from microcred_shared.catalog import Provider
from microcred_shared.vc.didweb import did_web

# Quality-assurance outcomes that are not "in good standing". The status is the QA body's
# word (free text: accredited, endorsed, approved, …); these are the ones that withdraw it.
ADVERSE_QA = frozenset({"suspended", "revoked", "withdrawn", "expired", "lapsed", "probation",
                        "denied", "refused", "pending", "under review"})

# English names for the `location` wallets show (the pages keep both languages).
PROVINCES = {
    "CA-AB": "Alberta", "CA-BC": "British Columbia", "CA-MB": "Manitoba",
    "CA-NB": "New Brunswick", "CA-NL": "Newfoundland and Labrador", "CA-NS": "Nova Scotia",
    "CA-NT": "Northwest Territories", "CA-NU": "Nunavut", "CA-ON": "Ontario",
    "CA-PE": "Prince Edward Island", "CA-QC": "Quebec", "CA-SK": "Saskatchewan",
    "CA-YT": "Yukon",
}
REGISTRY_PATH = "/trust/registry.json"
FETCH_PATH = "/trust/fetch"
LIST_PATH = "/trust/list"
FEDERATION_PATH = "/.well-known/openid-federation"
ENTITY_STATEMENT_JWT = "application/entity-statement+jwt"
NAME = "microcred registry of quality-assured providers"


def in_good_standing(provider: Provider) -> bool:
    return (provider.status == "active"
            and provider.quality_assurance.status.strip().lower() not in ADVERSE_QA)


def issuer_did(base: str, provider_id: str) -> str:
    """The `issuer.id` of the provider's credentials: its did:web (ADR 22), or behind a
    plain-http public URL (no did:web there) its profile URL, as issuance names it."""
    if not base.startswith("https://"):
        return f"{base}/issuers/{provider_id}"
    return did_web(base, "issuers", provider_id)


def location(provider: Provider) -> str:
    return f"{PROVINCES.get(provider.jurisdiction, provider.jurisdiction)}, Canada"


def listed(providers: list[Provider]) -> list[Provider]:
    """The providers on the list, in a stable order (by id)."""
    return sorted((p for p in providers if in_good_standing(p)), key=lambda p: p.id)


def entry(provider: Provider, base: str) -> dict[str, Any]:
    """One provider in the DCC registry format. `name`, `location` and `url` are what the
    DCC registry client reads; the rest says what "quality-assured" means here."""
    qa = provider.quality_assurance
    return {
        "name": provider.name.en,
        "location": location(provider),
        "url": provider.url,
        **({"nameFr": provider.name.fr} if provider.name.fr else {}),
        "jurisdiction": provider.jurisdiction,
        "qualityAssurance": {"type": qa.type, "body": qa.body, "status": qa.status},
        "profile": f"{base}/issuers/{provider.id}",
    }


def dcc_registry(providers: list[Provider], base: str, *, created: datetime | None,
                 updated: datetime | None) -> dict[str, Any]:
    """The whole list in the DCC registry JSON format (`dcc-legacy` in the DCC registry
    client): `{"meta": {...}, "registry": {<DID>: {name, location, url, ...}}}`."""
    return {
        "meta": {"created": _iso(created), "updated": _iso(updated), "name": NAME,
                 "federation": f"{base}{FEDERATION_PATH}"},
        "registry": {issuer_did(base, p.id): entry(p, base) for p in listed(providers)},
    }


def known_registries(base: str) -> list[dict[str, str]]:
    """How a wallet or verifier names this list in its `knownDIDRegistries` (the shape of
    the DCC known-registries file that the Learner Credential Wallet loads)."""
    return [{"type": "oidf", "name": NAME, "trustAnchorEC": f"{base}{FEDERATION_PATH}"},
            {"type": "dcc-legacy", "name": NAME, "url": f"{base}{REGISTRY_PATH}"}]


def federation_metadata(base: str) -> dict[str, Any]:
    """The registry's own metadata: a trust anchor with fetch and list endpoints."""
    return {"federation_entity": {
        "organization_name": NAME, "homepage_uri": base,
        "federation_fetch_endpoint": f"{base}{FETCH_PATH}",
        "federation_list_endpoint": f"{base}{LIST_PATH}"}}


def subordinate_metadata(provider: Provider, base: str) -> dict[str, Any]:
    """A provider's metadata in its subordinate statement, in the shape the DCC registry
    client returns as the matching issuer."""
    qa = provider.quality_assurance
    return {
        "federation_entity": {"organization_name": provider.name.en,
                              "homepage_uri": provider.url, "location": location(provider)},
        "institution_additional_information": {
            "legal_name": provider.name.en,
            **({"legal_name_fr": provider.name.fr} if provider.name.fr else {}),
            "jurisdiction": provider.jurisdiction,
            "quality_assurance": {"type": qa.type, "body": qa.body, "status": qa.status},
            "profile": f"{base}/issuers/{provider.id}"},
    }


def provider_of(sub: str, base: str, providers: list[Provider]) -> Provider | None:
    """The listed provider whose DID is `sub`. Some clients put the DID in the query string
    unencoded, so `%3A` in it arrives decoded: both spellings name the same issuer."""
    for p in listed(providers):
        did = issuer_did(base, p.id)
        if sub in (did, did.replace("%3A", ":").replace("%3a", ":")):
            return p
    return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
