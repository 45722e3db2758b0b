"""issuance HTTP API: VC-API issue, status changes by the issuing provider, key rotation."""

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col

from microcred_issuance import lifecycle, stacks, status
from microcred_issuance.credential import STATUS_LIST_SIZE, issuer_id, status_entries
from microcred_issuance.handlers import allocate
from microcred_issuance.models import IssuedCredential, StackAward
from microcred_issuance.runtime import IssuanceRuntime
from microcred_shared import outbox, topics
from microcred_shared.audit import audit_event, audit_record
from microcred_shared.auth import operator_dependency, provider_dependency
from microcred_shared.events import NAMESPACE, CredentialIssued
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of
from microcred_shared.vc import vcdm
from microcred_shared.vc.errors import VcError

SOURCE = "/microcred/issuance"

# The auth dependencies are built per app (they need the runtime), so FastAPI gets them
# from annotations evaluated inside routes(); mypy sees what they resolve to.
if TYPE_CHECKING:
    Provider = str
    Operator: TypeAlias = None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["revoke", "suspend", "unsuspend"]
    reason: str = Field(min_length=3, max_length=1000)


class IssueOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cryptosuite: Literal["eddsa-rdfc-2022", "eddsa-jcs-2022"] | None = None
    credentialId: str | None = None  # noqa: N815 (VC-API name)


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any]
    options: IssueOptions = IssueOptions()


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compromised: bool = False


def routes(app: FastAPI, rt: IssuanceRuntime) -> None:
    token = rt.settings.operator_token
    if not TYPE_CHECKING:
        Provider = provider_dependency(lambda: rt.key_verifier)
        Operator = operator_dependency(token.get_secret_value() if token else None)
    base = rt.settings.public_base_url.rstrip("/")

    @app.post("/v1/credentials/{credential_id}/status")
    async def change_status(credential_id: uuid.UUID, change: StatusChange,
                            provider_id: Provider) -> dict[str, Any]:
        assert rt.engine is not None and rt.relay is not None
        async with rt.engine.begin() as conn:
            row = await lifecycle.locked(conn, credential_id)
            if row is None:
                raise Problem(404, "Not found", f"no credential {credential_id}",
                              kind="not-found")
            if row.provider_id != provider_id:
                await _refused(conn, provider_id, row.provider_id, change.action,
                               credential_id)
            try:
                changed, records = await lifecycle.apply(
                    conn, row, change.action, change.reason, base_url=base,
                    sign_list=rt.sign_list, traceparent=traceparent_of())
            except lifecycle.InvalidTransition as exc:
                raise Problem(409, "Conflict", str(exc), kind="invalid-transition") from exc
            # Stacks made of this credential follow it (policy: stacks.py, ADR 12).
            records += await stacks.follow_components(
                conn, rt.catalog.current, changed, base_url=base,
                sign_list=rt.sign_list, traceparent=traceparent_of())
            if row.definition_id and (await _own_stack_award(conn, credential_id)):
                await _mark_award(conn, credential_id, changed.status)
            await outbox.write(conn, records)
        rt.relay.wake()
        return {"credential_id": str(credential_id), "status": changed.status, "changed_at":
                changed.changed_at.isoformat(), "reason": change.reason}

    async def _refused(conn: Any, provider_id: str, issuer: str, action: str,
                       credential_id: uuid.UUID) -> None:
        """Audited in its own transaction: the request's transaction is rolled back."""
        event = audit_event("issuance", channel="http", actor=f"provider:{provider_id}",
                            provider_id=provider_id, action=f"credential.{action}",
                            reason=f"credential {credential_id} was issued by {issuer!r}",
                            details={"credential_id": str(credential_id)})
        assert rt.engine is not None and rt.relay is not None
        async with rt.engine.begin() as other:
            await outbox.write(other, [audit_record(event, traceparent=traceparent_of())])
        rt.relay.wake()
        raise Problem(403, "Forbidden", "only the issuing provider may change the "
                      "status of this credential", kind="forbidden")

    @app.post("/credentials/issue", status_code=201)
    async def issue(request: IssueRequest, provider_id: Provider) -> JSONResponse:
        doc = dict(request.credential)
        problems = vcdm.credential_problems(doc)
        if "proof" in doc:
            problems.append("the credential to issue must not carry a proof")
        if problems:
            raise Problem(400, "Invalid credential", "; ".join(problems),
                          kind="invalid-credential",
                          errors=[{"detail": p} for p in problems])
        mine = issuer_id(base, provider_id)
        given = doc["issuer"]["id"] if isinstance(doc["issuer"], dict) else doc["issuer"]
        if given != mine:
            raise Problem(403, "Forbidden", f"this key issues as {mine}, not {given}",
                          kind="forbidden")
        cid = uuid.uuid4()
        doc.setdefault("id", request.options.credentialId or f"urn:uuid:{cid}")
        doc.setdefault("validFrom", datetime.now(UTC).replace(microsecond=0).isoformat()
                       .replace("+00:00", "Z"))
        subject = doc["credentialSubject"]
        subject_id = subject.get("id") if isinstance(subject, dict) else None
        learner = str(uuid.uuid5(NAMESPACE, f"subject:{subject_id or cid}"))
        assert rt.engine is not None and rt.relay is not None
        key = rt.keys.active(provider_id)
        async with rt.engine.begin() as conn:
            index = await allocate(conn, provider_id, 1)
            created = await status.ensure_lists(conn, provider_id, {index // STATUS_LIST_SIZE})
            if "credentialStatus" not in doc:
                doc["credentialStatus"] = status_entries(base, provider_id, index)
            try:
                signed = rt.sign(doc, key, request.options.cryptosuite)
            except VcError as exc:
                raise Problem(400, "Invalid credential", str(exc),
                              kind="invalid-credential") from exc
            await conn.execute(sa.insert(IssuedCredential).values(
                credential_id=cid, provider_id=provider_id, learner_key=learner,
                key_id=key.key_id, status_index=index, issued_at=datetime.now(UTC)))
            records = [await status.publish(conn, provider_id=provider_id, purpose=p,
                                            list_no=n, base_url=base, sign=rt.sign_list)
                       for p, n in created]
            title = doc.get("name") if isinstance(doc.get("name"), str) else "credential"
            records.append(outbox.event_record(topics.CREDENTIALS_ISSUED, CredentialIssued(
                credential_id=cid, provider_id=provider_id, learner_key=learner,
                title=title, issued_at=datetime.now(UTC), credential=signed),
                SOURCE, traceparent=traceparent_of(), subject=str(cid)))
            await outbox.write(conn, records)
        rt.relay.wake()
        return JSONResponse({"verifiableCredential": signed}, status_code=201)

    @app.post("/v1/admin/providers/{provider_id}/keys/rotate")
    async def rotate(provider_id: str, body: Rotation, _: Operator) -> dict[str, Any]:
        from microcred_issuance.main import profile, publish_keys

        if rt.catalog.current.provider(provider_id) is None:
            raise Problem(404, "Not found", f"no provider {provider_id!r}", kind="not-found")
        key = await rt.keys.rotate(provider_id, compromised=body.compromised)
        await publish_keys(rt, rt.keys, {provider_id: profile(rt, provider_id)})
        assert rt.relay is not None
        rt.relay.wake()
        return {"provider_id": provider_id, "active_key": key.key_id,
                "previous_key": "compromised" if body.compromised else "retired"}


async def _own_stack_award(conn: Any, credential_id: uuid.UUID) -> bool:
    return (await conn.execute(sa.select(col(StackAward.credential_id)).where(
        col(StackAward.credential_id) == credential_id))).first() is not None


async def _mark_award(conn: Any, credential_id: uuid.UUID, status: str) -> None:
    """The issuer changed a stacked credential itself: a suspension of its own is never
    lifted by a component's reinstatement."""
    await conn.execute(sa.update(StackAward).where(
        col(StackAward.credential_id) == credential_id).values(status=status,
                                                          held_by_components=False))
