"""What the registry serves about a credential, as pure rules (no database, no HTTP): the
credential's own URL, the issuer's controller document (which keys verify what), the entry
a learner list shows, and the registration announced once a credential is stored."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from microcred_registry.credentials.linkedin import add_to_profile, credential_name
from microcred_shared.contract.events import CredentialIssued, CredentialRegistered
from microcred_shared.vc import controller as controllers
from microcred_shared.vc.didweb import did_web
from microcred_shared.vc.keys import multikey_decode

LD_JSON = "application/ld+json"
VC_JSON = "application/vc+ld+json"
DID_JSON = "application/did+ld+json"
MICROCRED_CONTEXT = "https://w3id.org/microcred/v1"


def credential_url(base: str, credential_id: uuid.UUID | str) -> str:
    """The credential's own URL: its JSON for programs, its page for people."""
    return f"{base}/v1/credentials/{credential_id}"


def status_list_url(base: str, provider_id: str, purpose: str, list_no: int) -> str:
    return f"{base}/status/{provider_id}/{purpose}/{list_no}"


def registration(e: CredentialIssued, base: str, now: datetime,
                 wallet: tuple[str, str] | None = None) -> CredentialRegistered:
    """What notify needs to tell the learner: the credential is stored, where, how to add
    it to a LinkedIn profile, and (`wallet`: deep link, QR code URL) to a wallet."""
    url = credential_url(base, e.credential_id)
    return CredentialRegistered(
        credential_id=e.credential_id, provider_id=e.provider_id,
        definition_id=e.definition_id, learner_key=e.learner_key,
        learner_email=e.learner_email, learner_name=e.learner_name,
        learner_language=e.learner_language,
        # The mails name it in the learner's language (the register keeps the English).
        title=credential_name(e.credential, e.learner_language) or e.title,
        url=url, registered_at=now, linkedin_url=add_to_profile(
            e.credential, url, str(e.credential_id), e.learner_language) or None,
        wallet_url=wallet[0] if wallet else None, wallet_qr_url=wallet[1] if wallet else None)


def listing(row: Any, base: str) -> dict[str, Any]:
    """One credential in an operator's list of a learner's credentials."""
    return {"id": str(row.credential_id), "title": row.title, "provider": row.provider_id,
            "status": row.status, "issued_at": row.issued_at.isoformat(),
            "url": credential_url(base, row.credential_id), "credential": row.document}


def listing_json(learner_key: str, rows: list[Any], base: str) -> str:
    """`{"learner", "count", "credentials": [listing...]}` as JSON text, each row's
    `document` already JSON text (spliced in as it is, not parsed and encoded again)."""
    items = []
    for r in rows:
        entry = json.dumps({"id": str(r["credential_id"]), "title": r["title"],
                            "provider": r["provider_id"], "status": r["status"],
                            "issued_at": r["issued_at"].isoformat(),
                            "url": credential_url(base, r["credential_id"])},
                           ensure_ascii=False, separators=(",", ":"))
        items.append(f'{entry[:-1]},"credential":{r["document"]}}}')
    head = json.dumps({"learner": learner_key, "count": len(rows)}, ensure_ascii=False,
                      separators=(",", ":"))
    return f'{head[:-1]},"credentials":[{",".join(items)}]}}'


def issuer_url(base: str, provider_id: str) -> str:
    """The issuer's profile URL (and, for credentials issued before ADR 22, its id)."""
    return f"{base}/issuers/{provider_id}"


def issuer_did(base: str, provider_id: str) -> str:
    """The issuer's did:web, whose document is `{issuer_url}/did.json` (ADR 22)."""
    return did_web(base, "issuers", provider_id)


def controller_document(issuer: Any, base: str) -> dict[str, Any]:
    """Profile + controller document at the issuer's https URL: what credentials issued
    before ADR 22 name as their issuer; it lists the same keys as the DID document."""
    profile = {k: v for k, v in issuer.profile.items() if k != "id"}
    url = issuer_url(base, issuer.provider_id)
    also = [issuer_did(base, issuer.provider_id)] if base.startswith("https://") else []
    return controllers.controller_document(url, issuer_keys(issuer), **profile,
                                           **({"alsoKnownAs": also} if also else {}))


def did_document(issuer: Any, base: str) -> dict[str, Any]:
    """The issuer's DID document: its keys, nothing else (the profile is at its URL)."""
    return controllers.did_document(issuer_did(base, issuer.provider_id), issuer_keys(issuer),
                                    also_known_as=[issuer_url(base, issuer.provider_id)])


def issuer_keys(issuer: Any) -> list[controllers.IssuerKey]:
    """Every key the issuer had. Retired keys stay listed with `expires`, so what they
    signed before keeps verifying; a compromised key is listed as `revoked` (ADR 8)."""
    keys = []
    for key in issuer.keys:
        retired = key.get("retired_at")
        keys.append(controllers.IssuerKey(
            key_id=key["key_id"], public_key=multikey_decode(key["public_multikey"]),
            expires=retirement(retired) if key["status"] == "retired" else None,
            revoked=retirement(retired) if key["status"] == "compromised" else None))
    return keys


def retirement(value: str | None) -> datetime | None:
    """The retirement moment, rounded up to the second: credentials carry second-precision
    times, and one signed in the same second just before the rotation must still verify."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment
