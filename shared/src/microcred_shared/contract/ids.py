"""Ids the backbone makes per record: the same values and text as the `uuid` module's.

`uuid.uuid5` imports `hashlib` on every call, reads its namespace's `bytes` property and
builds the result through `UUID.__init__`'s checks, and `str()` formats it once more;
`uuid.uuid4` reads the operating system's random source once per id. Every result costs
assessment two name-based ids and every outgoing record a random one: about 9 % of
assessment's samples in the e2e profile (issue 12, wave 18). These give what `uuid` gives
(tested equal on many names), for less.
"""

from __future__ import annotations

import os
import threading
import uuid
from hashlib import sha1

_VERSION_5 = 0x5000 << 64  # the version nibble (bits 76-79) of a version-5 id
_RFC_4122 = 0x8000 << 48  # the variant bits (62-63): 10
_KEEP = ~((0xF000 << 64) | (0xC000 << 48))  # every other bit of the hash
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def name_id(namespace: bytes, name: str) -> uuid.UUID:
    """`uuid.uuid5(uuid.UUID(bytes=namespace), name)`, the same value and object type.

    Built as pydantic builds the UUIDs it parses: the value set on a bare instance,
    without `UUID.__init__`'s argument checks (the value is 128 bits by construction)."""
    value = int.from_bytes(sha1(namespace + name.encode()).digest()[:16], "big")
    made = _new(uuid.UUID)
    _set(made, "int", value & _KEEP | _VERSION_5 | _RFC_4122)
    _set(made, "is_safe", _UNKNOWN)
    return made


def name_id_text(namespace: bytes, name: str) -> str:
    """`str(uuid.uuid5(uuid.UUID(bytes=namespace), name))`."""
    h = sha1(namespace + name.encode()).hexdigest()
    return (f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}")


# The variant's two bits replace the top two of the hex digit at position 16.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}

# Random ids are cut from one read of the OS's random source per 256 ids (`os.urandom`,
# as `uuid.uuid4` reads it, 16 bytes a call). The lock keeps two threads from cutting
# the same bytes; a forked child drops what its parent read, so the two never share ids.
_POOL_BYTES = 4096
_lock = threading.Lock()
_pool = b""
_at = 0


def _forget_pool() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def random_id() -> str:
    """`str(uuid.uuid4())`: 122 random bits from the OS's random source, version 4."""
    global _pool, _at
    with _lock:
        if _at >= len(_pool):
            _pool, _at = os.urandom(_POOL_BYTES), 0
        h = _pool[_at:_at + 16].hex()
        _at += 16
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
