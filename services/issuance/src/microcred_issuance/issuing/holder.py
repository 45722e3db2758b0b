"""Holder-bound copies (ADR 28): the registry hands a wallet a credential bound to the
holder's DID. Issuance signs it, and only what it signed itself: the credential must be in
its register, not revoked, and carry a valid proof of its issuer's key; the copy differs
from it only in `credentialSubject.id` (the holder) and its new proof, so its id and status
entries are the original's and a revocation reaches every copy."""

from __future__ import annotations

import copy
import hmac
import re
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from microcred_issuance.deps import Runtime
from microcred_issuance.keys.domain import issuer_id
from microcred_shared import problems
from microcred_shared.problems import Problem
from microcred_shared.vc import proofs
from microcred_shared.vc.errors import VcError
from microcred_shared.vc.keys import multikey_decode

router = APIRouter()

# A DID (W3C DID syntax, the method-specific id without path, query or fragment).
DID = re.compile(r"^did:[a-z0-9]+:[A-Za-z0-9._%:-]+$")


class BindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any]
    holder: str = Field(pattern=DID.pattern, max_length=2000)


@problems.declares(401)
def _registry(request: Request, rt: Runtime) -> None:
    """Only the registry's holder-binding token passes (none set: nobody)."""
    secret = rt.settings.holder_binding_token
    token = secret.get_secret_value() if secret else ""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not (token and scheme.lower() == "bearer"
            and hmac.compare_digest(given.encode(), token.encode())):
        raise Problem(401, "Unauthorized", "holder-bound copies are made for the registry "
                      "only", kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


Registry = Annotated[None, Depends(_registry)]

_ROW = sa.text("SELECT provider_id, status FROM issued_credentials "
               "WHERE credential_id = CAST(:id AS uuid)")


def _credential_id(doc: dict[str, Any]) -> uuid.UUID:
    value = doc.get("id")
    if isinstance(value, str) and value.startswith("urn:uuid:"):
        try:
            return uuid.UUID(value.removeprefix("urn:uuid:"))
        except ValueError:
            pass
    raise Problem(400, "Invalid credential", "the credential id is not one of ours",
                  kind="invalid-credential")


def bound_copy(doc: dict[str, Any], holder: str) -> dict[str, Any]:
    """The credential without its proof, its subject now the holder's DID."""
    out = copy.deepcopy({k: v for k, v in doc.items() if k != "proof"})
    subject = out.get("credentialSubject")
    if not isinstance(subject, dict):
        raise Problem(400, "Invalid credential", "only a credential with one subject can be "
                      "bound to a holder", kind="invalid-credential")
    out["credentialSubject"] = {"id": holder, **{k: v for k, v in subject.items() if k != "id"}}
    return out


@router.post("/holder-bindings", status_code=201, responses=problems.responses(404, 409))
async def bind(request: BindRequest, _: Registry, rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    doc = request.credential
    async with rt.engine.connect() as conn:
        row = (await conn.execute(_ROW, {"id": str(_credential_id(doc))})).first()
    if row is None:
        raise Problem(404, "Not found", "no such credential issued here", kind="not-found")
    if row.status == "revoked":
        raise Problem(409, "Revoked", "a revoked credential is not copied", kind="revoked")
    issuer = issuer_id(rt.base_url, row.provider_id)
    named = doc.get("issuer")
    if (named.get("id") if isinstance(named, dict) else named) != issuer:
        raise Problem(400, "Invalid credential", "not its issuer's credential",
                      kind="invalid-credential")
    keys = {k["key_id"]: k["public_multikey"] for k in await rt.keys.public_keys(row.provider_id)}

    async def resolve(vm: str) -> Ed25519PublicKey:
        did, _, key_id = vm.partition("#")
        if did != issuer or not keys.get(key_id):
            raise VcError(f"{vm} is not a key of the issuer")
        return multikey_decode(str(keys[key_id]))

    try:
        result = await proofs.verify_proof(doc, resolve)
    except VcError as exc:
        raise Problem(400, "Invalid credential", str(exc), kind="invalid-credential") from exc
    if not result.ok:
        raise Problem(400, "Invalid credential", f"its proof does not verify: {result.reason}",
                      kind="invalid-credential")
    await rt.keys.ensure_loaded(row.provider_id)
    signed = rt.signer.credential(bound_copy(doc, request.holder),
                                  rt.keys.active(row.provider_id), result.cryptosuite)
    return {"verifiableCredential": signed}
