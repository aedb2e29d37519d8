"""Pseudonymisation helpers shared by detectors: masked NIKs and keyed hashes.

NIKs and names are personal data (UU 27/2022). Detectors key their indexes on
``keyed_hash(secret, nik)`` and show ``mask_nik(nik)`` to people.

Examples
--------
>>> mask_nik("3273014501900001")
'3273**********01'
>>> mask_nik("12")
'**'
>>> keyed_hash(b"secret", "3273014501900001") == keyed_hash(b"secret", "3273014501900001")
True
>>> keyed_hash(b"secret", "3273014501900001") == keyed_hash(b"other", "3273014501900001")
False
>>> len(keyed_hash(b"secret", "x"))
32
>>> import hmac; long = b"k" * 100   # the same digest as the standard library's HMAC, long keys included
>>> keyed_hash(long, "x") == hmac.new(long, b"x", hashlib.sha256).hexdigest()[:32]
True
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any


def mask_nik(nik: str | None) -> str:
    """Keep the 4-digit regency prefix and the last two digits; mask the rest."""
    if not nik:
        return ""
    nik = str(nik)
    if len(nik) < 8:
        return "*" * len(nik)
    return nik[:4] + "*" * (len(nik) - 6) + nik[-2:]


@lru_cache(maxsize=64)
def _keyed(secret: bytes) -> tuple[Any, Any]:
    # HMAC's key schedule (RFC 2104), done once per secret: the inner and outer
    # SHA-256 states after the padded key. Each hash copies both, about twice
    # as fast as copying an ``hmac`` object.
    key = (hashlib.sha256(secret).digest() if len(secret) > 64 else secret).ljust(64, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key))


@lru_cache(maxsize=16_384)
def keyed_hash(secret: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``secret``, as 32 hex characters (128 bits).

    128 bits is plenty against collisions among 205 M voters and halves the
    index's key size compared with the full digest. Recent results are
    cached: one event asks for the same hashes in several detectors.
    """
    inner_state, outer_state = _keyed(secret)
    inner = inner_state.copy()
    inner.update(value.encode("utf-8"))
    outer = outer_state.copy()
    outer.update(inner.digest())
    return outer.hexdigest()[:32]
