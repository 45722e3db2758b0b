"""The wallet exchange as pure rules (ADR 27): the deep link the Learner Credential Wallet
opens, the DID-authentication request it is answered with, the states an exchange goes
through, and the answer that carries the holder-bound credential. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus, urlsplit

LCW_REQUEST = "https://lcw.app/request.html"
VC_V2 = "https://www.w3.org/ns/credentials/v2"
# A wallet gets this many tries at a presentation before the exchange closes (a wallet
# retries a failure or two; a guesser does not get more).
MAX_FAILURES = 5


def exchange_url(base_url: str, exchange_id: str) -> str:
    return f"{base_url}/exchanges/{exchange_id}"


def exchange_domain(base_url: str) -> str:
    """The `domain` a wallet's proof must carry: the registry's host (and port), which is
    what the wallet shows its user as the site it proves its DID to."""
    return urlsplit(base_url).netloc


@lru_cache(maxsize=64)
def _link_head(base_url: str) -> str:
    return f"{LCW_REQUEST}?issuer={quote_plus(exchange_domain(base_url))}&auth_type=bearer"


@lru_cache(maxsize=64)
def _quoted(text: str) -> str:
    return quote_plus(text)


def deep_link(base_url: str, url: str, challenge: str) -> str:
    """The link (and QR code) that opens the exchange in the Learner Credential Wallet:
    `LCW_REQUEST` and the query `urlencode` writes (`quote_plus` of each value) for its
    issuer, auth_type, challenge and vc_request_url. Built for every mailed credential
    (issue 12): what is the same for all of them, quoted once."""
    head, slash, tail = url.rpartition("/")
    return (f"{_link_head(base_url)}&challenge={quote_plus(challenge)}"
            f"&vc_request_url={_quoted(head + slash)}{quote_plus(tail)}")


def presentation_request(challenge: str, domain: str, url: str) -> dict[str, Any]:
    """VC-API: the exchange's first answer, a DID-authentication query."""
    return {"verifiablePresentationRequest": {
        "query": [{"type": "DIDAuthentication",
                   "acceptedMethods": [{"method": "key"}],
                   "acceptedCryptosuites": [{"cryptosuite": "eddsa-rdfc-2022"},
                                            {"cryptosuite": "eddsa-jcs-2022"}]}],
        "challenge": challenge, "domain": domain,
        "interact": {"service": [{"type": "UnmediatedHttpPresentationService2021",
                                  "serviceEndpoint": url}]}}}


def delivered(credential: dict[str, Any]) -> dict[str, Any]:
    """VC-API: the exchange's last answer, the credential in a presentation."""
    return {"verifiablePresentation": {"@context": [VC_V2], "type": ["VerifiablePresentation"],
                                       "verifiableCredential": [credential]}}


@dataclass(frozen=True)
class State:
    expires_at: datetime
    used_at: datetime | None
    failures: int


def closed(state: State, now: datetime) -> tuple[int, str, str, str] | None:
    """Why the exchange takes no presentation any more (status, title, detail, kind), or
    None while it is open."""
    if state.used_at is not None:
        return (409, "Exchange already used", "this exchange delivered its credential "
                "already; start a new one from your credential's page", "exchange-used")
    if now >= state.expires_at:
        return (410, "Exchange expired", "this exchange has expired; start a new one from "
                "your credential's page", "exchange-expired")
    if state.failures >= MAX_FAILURES:
        return (410, "Exchange closed", f"{MAX_FAILURES} presentations failed; start a new "
                "exchange from your credential's page", "exchange-closed")
    return None


def holder_of(vp: dict[str, Any]) -> str | None:
    holder = vp.get("holder")
    holder = holder.get("id") if isinstance(holder, dict) else holder
    return holder if isinstance(holder, str) else None
