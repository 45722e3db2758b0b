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


_MEMBER = b',"credential":'


def document_text(payload: bytes) -> bytes | None:
    """The `credential` member's JSON text cut out of a `credentials.issued` record as
    issuance writes it (compact, the credential last), or None where it cannot be cut
    safely: the database then takes the member out of the whole record, as it always did.
    Byte for byte what PostgreSQL's `-> 'credential'` gives (its `json` keeps the text as
    written), so the stored document is the same either way; the server parses ~4 KB once
    instead of ~5 KB twice (to check the record, then to find the member): issue 12, wave 17.

    Only for a record already parsed into a `CredentialIssued` (its other fields scalars,
    no field it does not know): inside a JSON string a `"` is always escaped (`\\"`), so
    `,"credential":` is never in one, and with no `{` or `[` before it the first is the
    member at the top level. The rest must be one object closing the record: a repeated
    scalar field after it would end the rest with something other than `}`, a repeated
    `credential` would put that name in it, spelt plainly or with a `\\u` escape (the only
    escape that writes a letter); each of those, and a document holding a `"credential"`
    key or a `\\u` escape of its own, take the database's path (where, as for the parser,
    the last of repeated keys counts). Other escapes are cut like any text: every
    credential issuance signs has one (`\\n` in its criteria's narrative), and until wave
    19 any backslash sent the record the old way, i.e. every record (issue 12)."""
    start = payload.find(_MEMBER)
    if start < 0 or not payload.startswith(b"{") or not payload.endswith(b"}"):
        return None
    head = payload[1:start]
    if b"{" in head or b"[" in head:
        return None
    text = payload[start + len(_MEMBER):-1]
    if not text.startswith(b"{") or not text.endswith(b"}") or b'"credential"' in text:
        return None
    # Each backslash found with memchr (a signed credential has a few): a search for the
    # two bytes `\u` over ~4 KB costs more. An escape is two bytes unless it is `\u`,
    # so stepping over each keeps the search on escapes' first bytes (`\\u`, an escaped
    # backslash and a letter u, is no `\u` escape).
    at = text.find(b"\\")
    while at >= 0:
        if text[at + 1:at + 2] == b"u":
            return None
        at = text.find(b"\\", at + 2)
    return text


def custom_id(e: CredentialIssued) -> str | None:
    """The signed document's `id` where it is not the `urn:uuid:<credential id>` issuance
    gives by default (a VC-API caller may name its own), else None: what the registry
    indexes to find a credential by its `id` (ob_api's upsert) without parsing every
    stored document for an expression index (migration 16)."""
    doc_id = e.credential.get("id")
    if not isinstance(doc_id, str) or doc_id == f"urn:uuid:{e.credential_id}":
        return None
    return doc_id


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
