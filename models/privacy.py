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
"""

from __future__ import annotations

import hashlib
import hmac
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
def _keyed(secret: bytes) -> Any:
    # HMAC's key schedule, done once per secret; each hash copies it.
    return hmac.new(secret, digestmod=hashlib.sha256)


@lru_cache(maxsize=16_384)
def keyed_hash(secret: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``secret``, as 32 hex characters (128 bits).

    128 bits is plenty against collisions among 205 M voters and halves the
    index's key size compared with the full digest. Recent results are
    cached: one event asks for the same hashes in several detectors.
    """
    h = _keyed(secret).copy()
    h.update(value.encode("utf-8"))
    return h.hexdigest()[:32]
