"""What a stranger's verifier fetches to check a credential the backbone issued, fetched the
way it would: over https from the registry's public URLs (did:web, ADR 22)."""

from __future__ import annotations

from typing import Any

import httpx

from microcred_shared.vc import didweb


async def served_documents(registry: httpx.AsyncClient, credential: dict[str, Any],
                           public_base_url: str) -> dict[str, Any]:
    """{what the credential names: the document served for it}: the issuer's DID document
    (under the DID), each status list, and our context under the deployment's origin."""
    issuer = credential["issuer"]
    issuer_id = issuer["id"] if isinstance(issuer, dict) else issuer
    urls = {issuer_id: didweb.document_url(issuer_id) if issuer_id.startswith("did:web:")
            else issuer_id}
    statuses = credential.get("credentialStatus", [])
    for entry in statuses if isinstance(statuses, list) else [statuses]:
        urls[entry["statusListCredential"]] = entry["statusListCredential"]
    urls |= {c: c for c in credential["@context"]
             if isinstance(c, str) and c.startswith(public_base_url)}
    docs = {}
    for key, url in urls.items():
        r = await registry.get(url)
        assert r.status_code == 200, url
        docs[key] = r.json()
    return docs
