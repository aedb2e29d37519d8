"""People and households (Kartu Keluarga) living in real villages, assigned to TPS.

Only members eligible on polling day are voters: 17 or older, or married (a few
married 16-year-olds are legitimately on the list). Children are generated too, so
that an injected under-age registration is a real child of a real household.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from . import names
from .clock import POLLING_DAY
from .nik import NikIssuer
from .regions import Village, name_of, place_name, random_district, regencies_of_province

TPS_CAP = 300  # maximum DPT per TPS in 2024
DEFAULT_DATES = ((1, 1), (7, 1), (12, 31))  # Dukcapil's defaults for an unknown birth date


def age_on(birth: dt.date, on: dt.date = POLLING_DAY) -> int:
    """Completed years on `on`."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def is_default_date(d: dt.date | None) -> bool:
    """1 Jan, 1 Jul or 31 Dec."""
    return d is not None and (d.month, d.day) in DEFAULT_DATES


@dataclass(slots=True)
class Person:
    """One resident; `voter()` renders the registration.v1 `voter` object."""

    pid: int
    nik: str
    nkk: str | None
    name: str
    sex: str
    birth: dt.date
    birth_place: str | None
    marital: str
    address: str | None
    rt: str | None
    rw: str | None
    disability: str | None
    village: Village
    household: int
    birth_date_shown: str | None = ""  # filled in __post_init__ unless hidden
    tps: str | None = None
    tags: set[str] = field(default_factory=set)
    age: int = field(init=False)  # on polling day; birth never changes after creation

    def __post_init__(self) -> None:
        if self.birth_date_shown == "":
            self.birth_date_shown = self.birth.isoformat()
        self.age = age_on(self.birth)

    @property
    def eligible(self) -> bool:
        return self.age >= 17 or self.marital in ("S", "P")

    def voter(self) -> dict:
        return {"nik": self.nik, "nkk": self.nkk, "name": self.name,
                "birth_place": self.birth_place, "birth_date": self.birth_date_shown,
                "sex": self.sex, "marital_status": self.marital, "address": self.address,
                "rt": self.rt, "rw": self.rw, "disability": self.disability}


@dataclass(slots=True)
class Household:
    """A Kartu Keluarga: members share NKK, address, RT/RW and (as voters) a TPS."""

    hid: int
    nkk: str | None
    village: Village
    members: list[Person]

    @property
    def voters(self) -> list[Person]:
        return [m for m in self.members if m.eligible]


_AGE_BANDS = ((17, 25, 1.0), (25, 45, 1.0), (45, 60, 0.8), (60, 70, 0.5), (70, 80, 0.22),
              (80, 96, 0.06), (96, 106, 0.004))


def birth_for_age(rng: random.Random, age: int, heaping: bool = True) -> dt.date:
    """A birth date giving `age` on polling day, with default-date heaping for the old."""
    b = POLLING_DAY - dt.timedelta(days=int(age * 365.25) + rng.randrange(365))
    if heaping:
        p = 0.25 if b.year < 1960 else 0.10 if b.year < 1980 else 0.03 if b.year < 1995 else 0.01
        if rng.random() < p:
            m, d = rng.choice(DEFAULT_DATES)
            cand = dt.date(b.year, m, d)
            # A default date may shift the age by a year, but never across 16/17 or 110/111.
            if (age_on(cand) >= 17) == (age >= 17) and age_on(cand) <= 110:
                b = cand
    return b


def adult_age(rng: random.Random, lo: int = 17, hi: int = 106) -> int:
    bands = [(a, b, w) for a, b, w in _AGE_BANDS if b > lo and a < hi]
    a, b, _ = rng.choices(bands, weights=[w * (min(b, hi) - max(a, lo)) for a, b, w in bands])[0]
    return rng.randrange(max(a, lo), min(b, hi))


class PopulationBuilder:
    """Builds households village by village; deterministic for a given rng."""

    def __init__(self, rng: random.Random, issuer: NikIssuer, moved_share: float = 0.08):
        self.rng = rng
        self.issuer = issuer
        self.moved_share = moved_share
        self._pid = 0
        self._hid = 0

    # -- people -----------------------------------------------------------------
    def person(self, village: Village, sex: str, age: int, *, marital: str,
               hh: Household | None = None, issue_district: str | None = None,
               name: str | None = None, birth: dt.date | None = None,
               birth_place: str | None = None, heaping: bool = True) -> Person:
        """One person with a NIK consistent with sex and birth date."""
        rng = self.rng
        birth = birth or birth_for_age(rng, age, heaping)
        district = issue_district or village.district
        if name is None:
            name = names.name_for(rng, sex)
            if age >= 35 and rng.random() < 0.05:
                name = names.with_honorific(rng, name, sex, age)
        if birth_place is None:
            reg = district[:4]
            if rng.random() < 0.8:
                birth_place = place_name(name_of(reg))
            else:
                birth_place = place_name(name_of(rng.choice(regencies_of_province(district[:2]))))
        self._pid += 1
        p = Person(pid=self._pid, nik=self.issuer.nik(district, birth, sex),
                   nkk=hh.nkk if hh else None, name=name, sex=sex, birth=birth,
                   birth_place=birth_place, marital=marital,
                   address=hh.members[0].address if hh and hh.members else None,
                   rt=hh.members[0].rt if hh and hh.members else None,
                   rw=hh.members[0].rw if hh and hh.members else None,
                   disability=self._disability(), village=village,
                   household=hh.hid if hh else 0)
        if district != village.district:
            p.tags.add("moved")
        if is_default_date(birth):
            p.tags.add("default_birth_date")
        return p

    def _disability(self) -> str | None:
        r = self.rng.random()
        if r < 0.012:
            return str(self.rng.randint(1, 6))  # KPU codes: fisik, intelektual, mental, wicara, rungu, netra
        return "0" if r < 0.7 else None

    def _gaps(self, p: Person) -> None:
        """Voter lists have gaps: a few optional fields missing, still schema-valid."""
        rng = self.rng
        r = rng.random()
        if r < 0.006:
            p.birth_date_shown = None
            p.tags.add("missing_birth_date")
        elif r < 0.010:
            p.birth_date_shown = ""
            p.tags.add("missing_birth_date")
        if rng.random() < 0.015:
            p.nkk = None
            p.tags.add("missing_nkk")
        if rng.random() < 0.01:
            p.birth_place = None
        if rng.random() < 0.005 and p.age >= 17:  # a blank status must not hide a married minor
            p.marital = ""

    # -- households -------------------------------------------------------------
    def household(self, village: Village, kind: str | None = None) -> Household:
        """One household in `village`; kind picked from realistic shares when None."""
        rng = self.rng
        kind = kind or rng.choices(("family", "elder", "young", "single", "extended"),
                                   cum_weights=(0.80, 0.86, 0.94, 0.99, 1.0))[0]
        moved = rng.random() < self.moved_share
        issue = None
        if moved:  # NIK issued elsewhere: mostly another regency of the same province
            issue = random_district(rng, village.province if rng.random() < 0.7 else None)
        self._hid += 1
        nkk_date = dt.date(rng.randint(2005, 2023), rng.randint(1, 12), rng.randint(1, 28))
        hh = Household(hid=self._hid, nkk=self.issuer.nkk(village.district, nkk_date),
                       village=village, members=[])
        rt, rw = f"{rng.randint(1, 15):03d}", f"{rng.randint(1, 10):03d}"
        addr = names.address(rng, village.kelurahan, village.name)

        def add(sex: str, age: int, marital: str, **kw) -> Person:
            p = self.person(village, sex, age, marital=marital, hh=hh, issue_district=issue, **kw)
            p.address, p.rt, p.rw, p.household, p.nkk = addr, rt, rw, hh.hid, hh.nkk
            if moved:
                p.tags.add("moved")
            hh.members.append(p)
            return p

        if kind == "elder":
            add(rng.choice("LPP"), adult_age(rng, 55, 106), "P")
        elif kind == "single":
            add(rng.choice("LP"), adult_age(rng, 20, 40), "B")
        else:
            lo, hi = (20, 31) if kind == "young" else (25, 76)
            head_age = int(rng.triangular(lo, hi, lo + 12))
            head = add("L", head_age, "S")
            wife_age = max(17, head_age - rng.randint(0, 8))
            add("P", wife_age, "S")
            n_kids = rng.choices(range(6), cum_weights=(0.04, 0.13, 0.38, 0.66, 0.85, 1.0))[0]
            if kind == "young":
                n_kids = min(n_kids, 2)
            if kind == "extended":
                n_kids = rng.randint(5, 8)
            self._children(hh, add, head, wife_age, n_kids)
            if kind == "extended" or rng.random() < 0.08:
                add(rng.choice("LPP"), min(105, head_age + rng.randint(22, 32)), "P")
            if kind == "extended":
                hh.members[-1].tags.add("large_household")
                for m in hh.members:
                    m.tags.add("large_household")
        for m in hh.members:
            self._gaps(m)
        return hh

    def _children(self, hh: Household, add, head: Person, mother_age: int, n: int) -> None:
        rng = self.rng
        twin_done = False
        for i in range(n):
            age = mother_age - rng.randint(19, 42)
            if age < 0 or (age > 27 and rng.random() < 0.6):
                continue  # not born yet, or grown up with a family card of their own
            sex = rng.choice("LP")
            marital = "B"
            if age >= 20 and rng.random() < 0.35:
                marital = "S"  # married child still on the parents' card
            kw = {}
            if sex == "L" and age >= 17 and rng.random() < 0.03:
                kw["name"] = head.name  # son named after his father
            if sex == "P" and age == 16 and rng.random() < 0.08:
                marital = "S"  # married 16-year-old: legitimately a voter
            child = add(sex, age, marital, **kw)
            if "name" in kw:
                child.tags.add("same_name_relative")
                head.tags.add("same_name_relative")
            if sex == "P" and age == 16 and marital == "S":
                child.tags.add("married_16")
            if not twin_done and age >= 17 and i < n - 1 and rng.random() < 0.04:
                twin_done = True
                self.twin_of(hh, child, add)

    def twin_of(self, hh: Household, child: Person, add) -> Person:
        """A twin: same birth date, same household, a paired name."""
        rng = self.rng
        pairs = names.TWIN_PAIRS_MALE if child.sex == "L" else names.TWIN_PAIRS_FEMALE
        a, b = rng.choice(pairs)
        family = child.name.split()[-1] if " " in child.name else ""
        child.name = f"{a} {family}".strip()
        twin = add(child.sex, child.age, child.marital, birth=child.birth,
                   name=f"{b} {family}".strip(), birth_place=child.birth_place)
        child.tags.add("twin")
        twin.tags.add("twin")
        return twin


def assign_tps(village: Village, households: list[Household], tps_count: int) -> list[str]:
    """Put households (all their voters together) into TPS, never above the DPT cap."""
    total = sum(len(h.voters) for h in households)
    target = max(1, math.ceil(total / max(1, tps_count)))
    codes: list[str] = []
    k, load = 1, 0
    for hh in households:
        n = len(hh.voters)
        if load and (load + n > TPS_CAP or load >= target):
            k, load = k + 1, 0
        code = f"{village.code}{k:03d}"
        if not codes or codes[-1] != code:
            codes.append(code)
        for m in hh.members:
            m.tps = code
        load += n
    return codes
