"""`relatedResource` (VC Data Model 2.0, "Integrity of Related Resources"): objects naming
a resource by `id` with a digest of its bytes, `digestSRI` (W3C Subresource Integrity:
`sha384-<base64>`) and/or `digestMultibase` (a multibase-encoded multihash).

Nothing is fetched: at issue and at verification the shape and the digests' syntax are
checked, and a digest is compared with the resource only when we hold its bytes (the JSON-LD
contexts we vendor — the usual use of relatedResource is pinning a credential's contexts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from typing import Any

import base58

from . import contexts

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$")


def is_url(value: Any) -> bool:
    return isinstance(value, str) and bool(_URL.match(value))

# SRI algorithms (W3C SRI) and multihash codes (multicodec table) → (hashlib name, size).
SRI = {"sha256": ("sha256", 32), "sha384": ("sha384", 48), "sha512": ("sha512", 64)}
MULTIHASH = {0x12: ("sha256", 32), 0x20: ("sha384", 48), 0x13: ("sha512", 64),
             0x16: ("sha3_256", 32), 0x15: ("sha3_384", 48), 0x14: ("sha3_512", 64)}

Holder = Callable[[str], bytes | None]


def _sri_parts(value: Any) -> list[tuple[str, bytes]]:
    """[(hashlib name, digest)] of an SRI metadata string; ValueError when malformed."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("digestSRI must be a non-empty string")
    out = []
    for token in value.split():
        alg, sep, b64 = token.partition("-")
        if not sep or alg not in SRI:
            raise ValueError(f"digestSRI {token!r} must be sha256-, sha384- or sha512-<base64>")
        b64 = b64.split("?", 1)[0]  # SRI allows options after '?'
        try:
            digest = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"digestSRI {token!r} is not base64") from None
        name, size = SRI[alg]
        if len(digest) != size:
            raise ValueError(f"digestSRI {token!r} is not a {alg} digest ({size} bytes)")
        out.append((name, digest))
    return out


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            break
    raise ValueError("bad varint")


def _multibase_part(value: Any) -> tuple[str, bytes]:
    """(hashlib name, digest) of a digestMultibase; ValueError when malformed."""
    if not isinstance(value, str) or len(value) < 2:
        raise ValueError("digestMultibase must be a multibase string")
    try:
        if value[0] == "u":
            raw = base64.urlsafe_b64decode(value[1:] + "=" * (-len(value[1:]) % 4))
        elif value[0] == "z":
            raw = base58.b58decode(value[1:])
        else:
            raise ValueError
        code, at = _varint(raw, 0)
        length, at = _varint(raw, at)
    except (ValueError, binascii.Error):
        raise ValueError(f"digestMultibase {value!r} is not a base64url ('u') or base58btc "
                         "('z') multihash") from None
    if code not in MULTIHASH:
        raise ValueError(f"digestMultibase {value!r} uses multihash code {code:#x}, not a "
                         "SHA-2 or SHA-3 digest")
    name, size = MULTIHASH[code]
    if length != size or len(raw) - at != size:
        raise ValueError(f"digestMultibase {value!r} has the wrong length for {name}")
    return name, raw[at:]


def problems(value: Any) -> list[str]:
    """Why a `relatedResource` value is malformed (empty: fine). One object or an array of
    objects (VC 2.0: "one or more objects"), each with a URL `id` unique among them and
    at least one well-formed digest."""

    items = value if isinstance(value, list) else [value]
    if value == [] or not all(isinstance(i, dict) for i in items):
        return ["relatedResource must be one or more objects (an id and a digest each)"]
    out, seen = [], set()
    for n, item in enumerate(items):
        where = f"relatedResource[{n}]" if isinstance(value, list) else "relatedResource"
        rid = item.get("id")
        if not is_url(rid):
            out.append(f"{where}.id must be a URL, got {rid!r}")
        elif rid in seen:
            out.append(f"{where}.id {rid} appears twice")
        else:
            seen.add(rid)
        if "digestSRI" not in item and "digestMultibase" not in item:
            out.append(f"{where} needs a digestSRI or a digestMultibase")
        try:
            if "digestSRI" in item:
                _sri_parts(item["digestSRI"])
            if "digestMultibase" in item:
                _multibase_part(item["digestMultibase"])
        except ValueError as exc:
            out.append(f"{where}: {exc}")
        if "mediaType" in item and not isinstance(item["mediaType"], str):
            out.append(f"{where}.mediaType must be a string")
    return out


def held_context(url: str) -> bytes | None:
    """The bytes of a JSON-LD context we vendor (what a relatedResource usually pins)."""
    try:
        return contexts.context_file_bytes(url)
    except Exception:  # noqa: BLE001 - not one of ours: not held
        return None


def mismatches(value: Any, holder: Holder = held_context) -> tuple[list[str], int]:
    """(digests that do not match the bytes we hold, how many resources were compared).
    Malformed entries are reported by `problems`, not here."""
    wrong, compared = [], 0
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        content = holder(item["id"])
        if content is None:
            continue
        compared += 1
        try:
            digests = _sri_parts(item["digestSRI"]) if "digestSRI" in item else []
            if "digestMultibase" in item:
                digests.append(_multibase_part(item["digestMultibase"]))
        except ValueError:
            continue
        for name, digest in digests:
            if hashlib.new(name, content).digest() != digest:
                wrong.append(f"the {name} digest of {item['id']} does not match the resource")
    return wrong, compared
