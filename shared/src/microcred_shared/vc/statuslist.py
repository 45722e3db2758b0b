"""W3C Bitstring Status List v1.0: lists, entries and the status list credential.

Bit order: index 0 is the left-most (most significant) bit of the first byte, as the
spec and the JavaScript implementation read it. `encodedList` is multibase base64url
('u', no padding) of the gzip-compressed bitstring; gzip's mtime is fixed at 0 so the
same list always encodes to the same string (status list credentials get re-signed).
"""

from __future__ import annotations

import base64
import gzip
import zlib
from datetime import datetime
from typing import Any, Literal

from .contexts import VC_V2_URL
from .errors import VcError
from .proofs import format_datetime

MIN_BITS = 131_072  # 16 KiB: the spec's minimum, for herd privacy
StatusPurpose = Literal["revocation", "suspension"]
PURPOSES: tuple[str, ...] = ("revocation", "suspension")


class StatusListError(VcError):
    """An encodedList or index that cannot be used."""


def new_list(size: int = MIN_BITS) -> bytearray:
    if size < MIN_BITS or size % 8:
        raise StatusListError(f"a status list has at least {MIN_BITS} bits, a multiple of 8")
    return bytearray(size // 8)


def _check_index(bits: bytes | bytearray, index: int) -> None:
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"status index {index} is outside a list of {len(bits) * 8} bits")


def get_bit(bits: bytes | bytearray, index: int) -> bool:
    _check_index(bits, index)
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def set_bit(bits: bytearray, index: int, value: bool = True) -> None:
    _check_index(bits, index)
    mask = 0x80 >> (index % 8)
    if value:
        bits[index // 8] |= mask
    else:
        bits[index // 8] &= ~mask & 0xFF


def encode_list(bits: bytes | bytearray) -> str:
    if len(bits) * 8 < MIN_BITS:
        raise StatusListError(f"a status list has at least {MIN_BITS} bits")
    packed = gzip.compress(bytes(bits), mtime=0)
    return "u" + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def decode_list(encoded: object, *, max_bytes: int = 16 * 1024 * 1024) -> bytearray:
    """The bitstring of an encodedList. Refuses lists that inflate past `max_bytes`
    (a status list is fetched from elsewhere: a gzip bomb must not exhaust memory)."""
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url (starting with 'u')")
    body = encoded[1:]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj(wbits=31)  # gzip container
        bits = inflater.decompress(packed, max_bytes)
    except (ValueError, zlib.error) as exc:
        raise StatusListError(f"encodedList is not base64url gzip: {exc}") from exc
    if inflater.unconsumed_tail:
        raise StatusListError(f"status list is larger than {max_bytes} bytes")
    return bytearray(bits)


def status_entry(*, status_list_credential: str, index: int,
                 purpose: StatusPurpose = "revocation",
                 entry_id: str | None = None) -> dict[str, Any]:
    """A `credentialStatus` entry; statusListIndex is a string, as the spec requires."""
    if purpose not in PURPOSES:
        raise StatusListError(f"statusPurpose must be one of {PURPOSES}")
    if index < 0:
        raise StatusListError("statusListIndex must not be negative")
    return {
        "id": entry_id or f"{status_list_credential}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": status_list_credential,
    }


def status_list_credential(*, url: str, issuer: str, purpose: StatusPurpose,
                           encoded_list: str, valid_from: datetime,
                           valid_until: datetime | None = None,
                           ttl_ms: int | None = None) -> dict[str, Any]:
    """An unsigned BitstringStatusListCredential (sign it with `proofs.sign`).

    `credentialSubject.type` is a plain string: the JavaScript checker compares it with
    `=== 'BitstringStatusList'`, so an array would be refused there.
    """
    subject: dict[str, Any] = {"id": f"{url}#list", "type": "BitstringStatusList",
                               "statusPurpose": purpose, "encodedList": encoded_list}
    if ttl_ms is not None:
        subject["ttl"] = ttl_ms
    credential: dict[str, Any] = {
        "@context": [VC_V2_URL],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": format_datetime(valid_from),
        "credentialSubject": subject,
    }
    if valid_until is not None:
        credential["validUntil"] = format_datetime(valid_until)
    return credential
