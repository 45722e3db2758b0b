"""What the VC-API issue endpoint accepts from a provider, and what it fills in. Pure: no
I/O. (The Open Badges document issuance composes itself is in credential.py.)"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from microcred_issuance.keys.domain import issuer_id
from microcred_shared.contract.events import NAMESPACE
from microcred_shared.vc import schema, vcdm
from microcred_shared.vc.contexts import STATUS_V1_URL


class Refused(ValueError):
    """The credential cannot be issued as submitted (`problems`, in plain words)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class WrongIssuer(PermissionError):
    pass


def check_submitted(doc: dict[str, Any], *, base_url: str, provider_id: str) -> None:
    """A well-formed, unsigned credential naming the caller as its issuer: the provider's
    key only ever issues as that provider."""
    problems = vcdm.credential_problems(doc)
    if "proof" in doc:
        problems.append("the credential to issue must not carry a proof")
    if problems:
        raise Refused(problems)
    mine = issuer_id(base_url, provider_id)
    given = doc["issuer"]["id"] if isinstance(doc["issuer"], dict) else doc["issuer"]
    if given != mine:
        raise WrongIssuer(f"this key issues as {mine}, not {given}")


def check_signed(signed: dict[str, Any]) -> None:
    """A VC 2.0 Open Badge must conform to the OB 3.0 JSON Schema, as every verifier of
    ours checks it (a VC 1.1 one is not checked against that VC 2.0 schema)."""
    if schema.is_open_badge(signed) and not vcdm.is_v1(signed):
        problems = schema.schema_problems(signed)
        if problems:
            raise Refused([f"Open Badges 3.0 schema: {p}" for p in problems])


def completed(doc: dict[str, Any], credential_id: uuid.UUID, *, requested_id: str | None,
              now: datetime) -> dict[str, Any]:
    """The submitted credential with an id and a validFrom (VC 1.1: issuanceDate, which
    1.1 requires) when it has none."""
    out = dict(doc)
    out.setdefault("id", requested_id or f"urn:uuid:{credential_id}")
    moment = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    if not vcdm.is_v1(out):
        out.setdefault("validFrom", moment)
    elif "issuanceDate" not in out and "validFrom" not in out:
        out["issuanceDate"] = moment
    return out


def with_status(doc: dict[str, Any],
                entries: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """`doc` pointing at its status list bits. VC 2.0's context defines
    BitstringStatusListEntry; a VC 1.1 credential needs the status list context for it."""
    if "credentialStatus" in doc:
        return doc
    out = {**doc, "credentialStatus": entries}
    if vcdm.is_v1(doc) and STATUS_V1_URL not in doc["@context"]:
        out["@context"] = [*doc["@context"], STATUS_V1_URL]
    return out


def subject_learner_key(doc: dict[str, Any], credential_id: uuid.UUID) -> str:
    """The learner key of a VC-API credential: derived from its subject's id, or from the
    credential itself when the subject has none (no email is known here)."""
    subject = doc["credentialSubject"]
    subject_id = subject.get("id") if isinstance(subject, dict) else None
    return str(uuid.uuid5(NAMESPACE, f"subject:{subject_id or credential_id}"))


def title_of(doc: dict[str, Any]) -> str:
    return doc["name"] if isinstance(doc.get("name"), str) else "credential"
