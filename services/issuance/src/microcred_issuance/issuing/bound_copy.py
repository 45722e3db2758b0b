"""The holder-bound copy of a credential (ADR 27), as pure rules: what the registry may ask
to have copied, and the copy itself (no I/O)."""

from __future__ import annotations

import uuid
from typing import Any

from microcred_shared.vc.errors import VcError
from microcred_shared.vc.keys import resolve_did_key


class NotCopied(ValueError):
    """Why a copy is refused (the registry turns it into a problem for the wallet)."""


def check_holder(holder: str) -> None:
    """Only a did:key: its key is in its name, so the copy binds to what was proved."""
    if not holder.startswith("did:key:"):
        raise NotCopied(f"the holder must be a did:key, not {holder[:40]!r}")
    try:
        resolve_did_key(holder)
    except (VcError, ValueError) as exc:
        raise NotCopied(f"the holder {holder[:60]!r} is not a valid Ed25519 did:key") from exc


def check_original(doc: dict[str, Any], *, issuer: str,
                   status: dict[str, Any] | list[dict[str, Any]]) -> None:
    """The document is the credential this register holds: its issuer and status entries
    are the ones issuance gave it, and it has one subject."""
    given = doc.get("issuer")
    given_id = given.get("id") if isinstance(given, dict) else given
    if given_id != issuer:
        raise NotCopied(f"the credential's issuer {given_id!r} is not {issuer!r}")
    if doc.get("credentialStatus") != status:
        raise NotCopied("the credential's status entries are not the ones it was issued with")
    if not isinstance(doc.get("credentialSubject"), dict):
        raise NotCopied("only a credential with one subject can be bound to one holder")


def cryptosuite_of(doc: dict[str, Any]) -> str | None:
    proofs = doc.get("proof")
    first = proofs[0] if isinstance(proofs, list) and proofs else proofs
    suite = first.get("cryptosuite") if isinstance(first, dict) else None
    return suite if isinstance(suite, str) else None


def bound_copy(doc: dict[str, Any], copy_id: uuid.UUID, holder: str) -> dict[str, Any]:
    """The unsigned copy: a new id, `credentialSubject.id` = the holder's DID, all else
    (status entries included, so a revocation reaches it) as the original says."""
    unsigned = {k: v for k, v in doc.items() if k != "proof"}
    subject = {"id": holder, **{k: v for k, v in doc["credentialSubject"].items()
                                if k != "id"}}
    return {**unsigned, "id": f"urn:uuid:{copy_id}", "credentialSubject": subject}
