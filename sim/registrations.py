"""Registration events (registration.v1): the legitimate voter-list updates and the
injected anomalies, each injected anomaly recorded in the label book.

Order of construction matters for realism, not for determinism (everything draws from
one seeded rng): silences are decided first so that no event, legitimate or injected,
falls inside a silenced office's window; then the legitimate adds, updates and
removals; then each anomaly family.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass

from . import names
from .clock import Clock, iso
from .labels import LabelBook, Rec
from .nik import PLACEHOLDER_NIK, NikIssuer, date_part, nik_problems, patterned_nik
from .population import DEFAULT_DATES, Household, Person, PopulationBuilder, age_on, adult_age
from .regions import IMPOSSIBLE_PROVINCES, Village, utc_offset

STREAM = "registrations"
SOURCES = ("coklit", "online", "dukcapil", "manual")
SOURCE_SHARES = (0.62, 0.14, 0.12, 0.12)
_SOURCE_CUM = tuple(itertools.accumulate(SOURCE_SHARES))
# Registration events per voter: an add, plus the updates, removals and moves.
EVENTS_PER_VOTER = 1.09
# Events a silenced series would have had in its silent hours, at least: fewer, and a
# quiet spell is no anomaly anyone (or any detector) could tell from chance.
SILENCE_MIN_EVENTS = 40
# A spike brings at least this many times the regency's usual events in its 15 minutes.
SPIKE_TIMES_USUAL = 6


@dataclass(frozen=True, slots=True)
class Silence:
    """A series that goes quiet: a regency (any source) or a source in a province."""

    start: dt.datetime
    end: dt.datetime
    province: str
    regency: str | None
    source: str | None

    def blocks(self, village: Village, source: str, t: dt.datetime) -> bool:
        if not (self.start <= t < self.end) or village.province != self.province:
            return False
        if self.regency is not None and village.regency != self.regency:
            return False
        return self.source is None or self.source == source


def _short_region(v: Village) -> dict:
    return {"province": v.province, "regency": v.regency}


class RegistrationBuilder:
    """Builds all registration records; see module docstring."""

    def __init__(self, rng: random.Random, clock: Clock, pop: PopulationBuilder,
                 issuer: NikIssuer, households: list[Household], tps_by_village: dict[str, list[str]],
                 book: LabelBook, anomaly_rate: float):
        self.rng = rng
        self.clock = clock
        self.pop = pop
        self.issuer = issuer
        self.households = households
        self.tps_by_village = tps_by_village
        self.n_voters = sum(len(h.voters) for h in households)
        self.villages = [v for v in {h.village.code: h.village for h in households}.values()]
        self.book = book
        self.rate = anomaly_rate
        self.recs: list[Rec] = []
        self.niks_seen: set[str] = set()
        self.silences: list[Silence] = []
        self.add_rec: dict[int, Rec] = {}  # pid -> the person's (last) legitimate add
        self.registered: dict[int, Person] = {}  # pid -> person currently on the list
        self._busy_days: set[tuple[str, dt.date]] = set()  # (regency, day) already used by an injection

    # -- helpers ------------------------------------------------------------------
    def _blocked(self, village: Village, source: str):
        return lambda t: any(s.blocks(village, source, t) for s in self.silences)

    def _time(self, village: Village, source: str, *, after: dt.datetime | None = None,
              day: dt.date | None = None) -> dt.datetime:
        profile = "online" if source == "online" else "office"
        return self.clock.sample(village.province, profile, after=after, day=day,
                                 avoid=self._blocked(village, source))

    def _operator(self, source: str, village: Village, tps: str | None) -> str | None:
        if source == "coklit":
            return f"PPDP-{tps or village.code}"
        if source == "manual":
            return f"PPS-{village.code}-{self.rng.randint(1, 3):02d}"
        if source == "dukcapil":
            return f"DUKCAPIL-{village.regency}"
        return None  # online self-registration has no operator

    def _rec(self, voter: dict, village: Village, tps: str | None, source: str, at: dt.datetime,
             action: str = "add", *, person: Person | None = None, injected: bool = False,
             operator: str | None = "auto") -> Rec:
        if source == "dukcapil":  # civil-registry (SIAK) exports write names and places in capitals
            place = voter.get("birth_place")
            voter = {**voter, "name": voter["name"].upper(), "birth_place": place.upper() if place else place}
        value = {
            "schema": "registration.v1",
            "event_id": "",
            "occurred_at": iso(at),
            "action": action,
            "source": source,
            "voter": voter,
            "region": village.region(),
            "tps": tps,
            "operator_id": self._operator(source, village, tps) if operator == "auto" else operator,
        }
        rec = Rec(STREAM, at, value, voter["nik"], injected=injected, person=person)
        self.niks_seen.add(voter["nik"])
        self.recs.append(rec)
        return rec

    def _source(self) -> str:
        return self.rng.choices(SOURCES, cum_weights=_SOURCE_CUM)[0]

    def _other_village(self, v: Village, *, other_regency: bool | None = None) -> Village:
        pool = [w for w in self.villages if w.code != v.code]
        if other_regency is True:
            pool = [w for w in pool if w.regency != v.regency] or pool
        elif other_regency is False:
            pool = [w for w in pool if w.regency == v.regency] or pool
        return self.rng.choice(pool) if pool else v

    def _tps_in(self, v: Village, not_tps: str | None = None) -> str:
        codes = self.tps_by_village.get(v.code) or [f"{v.code}001"]
        choices = [c for c in codes if c != not_tps] or codes
        return self.rng.choice(choices)

    def _weekday(self, regency: str) -> dt.date:
        """A working day not yet used by another injection in this regency."""
        days = self.clock.weekdays() or self.clock.dates
        free = [d for d in days if (regency, d) not in self._busy_days] or days
        d = self.rng.choice(free)
        self._busy_days.add((regency, d))
        return d

    def _n(self, share: float, minimum: int = 3) -> int:
        return max(minimum, round(self.n_voters * self.rate * share))

    def _fresh(self, village: Village, age: int | None = None, sex: str | None = None,
               marital: str | None = None, **kw) -> Person:
        sex = sex or self.rng.choice("LP")
        age = age if age is not None else adult_age(self.rng)
        if marital is None:
            marital = "B" if age < 22 else self.rng.choice("SSSSP") if age < 60 else self.rng.choice("SP")
        p = self.pop.person(village, sex, age, marital=marital, **kw)
        issued = self.clock.start.date() - dt.timedelta(days=self.rng.randint(30, 6000))
        p.nkk = self.issuer.nkk(village.district, issued)
        p.address = names.address(self.rng, village.kelurahan, village.name)
        p.rt, p.rw = f"{self.rng.randint(1, 15):03d}", f"{self.rng.randint(1, 10):03d}"
        p.tps = self._tps_in(village)
        return p

    # -- build --------------------------------------------------------------------
    def build(self) -> list[Rec]:
        """All records; with anomaly_rate 0 only the legitimate ones (a clean baseline)."""
        if self.rate <= 0:
            self._legitimate()
            return self.recs
        self._silences()
        self._legitimate()
        self._spike()
        self._heaping()
        self._household_burst()
        self._duplicate_nik()
        self._duplicate_person()
        self._nik_conflict()
        self._nik_integrity()
        self._eligibility()
        return self.recs

    def _expected(self, voters: int, source_share: float, province: str, start: dt.datetime,
                  end: dt.datetime) -> float:
        """About how many registration events of `voters` voters (a `source_share` of
        them by office sources) fall in [start, end)."""
        return EVENTS_PER_VOTER * voters * source_share * self.clock.share(province, "office", start, end)

    def _silence_window(self, region: str, province: str, voters: int, source_share: float,
                        day: dt.date, hour: int, hours: int) -> tuple[dt.datetime, dt.datetime]:
        """`hours` from `hour` on `day`, lengthened by whole days (up to three, later
        ones first, earlier ones at the end of the calendar) while the series would
        have fewer than SILENCE_MIN_EVENTS events in it."""
        start = self.clock.local(province, day, hour)
        end = start + dt.timedelta(hours=hours)
        first, last = min(self.clock.dates[1], day), max(self.clock.dates[-2], day)
        one = dt.timedelta(days=1)
        while (self._expected(voters, source_share, province, start, end) < SILENCE_MIN_EVENTS
               and end - start < dt.timedelta(days=3)):
            if end.date() < last:
                end += one
                self._busy_days.add((region, end.date()))
            elif start.date() > first:
                start -= one
                self._busy_days.add((region, start.date()))
            else:
                break
        return start, end

    def _busy(self, counts: dict[str, int], enough: float) -> str:
        """A random one of the keys whose count reaches `enough`, else the largest."""
        busy = sorted(k for k, n in counts.items() if n >= enough)
        return self.rng.choice(busy) if busy else max(sorted(counts), key=counts.__getitem__)

    def _silences(self) -> None:
        """A regency office silent for six office hours; the e-coklit source silent in a
        province for a working day.

        A silence is an anomaly only where events were due: the series silenced are
        ones busy enough to have SILENCE_MIN_EVENTS events in those hours on a working
        day, and where none is (a small simulation), the busiest one, silenced for
        whole days more until that many events are missing.
        """
        rng = self.rng
        if not self.villages:
            return
        regency_voters: dict[str, int] = {}
        province_voters: dict[str, int] = {}
        for hh in self.households:
            n = len(hh.voters)
            regency_voters[hh.village.regency] = regency_voters.get(hh.village.regency, 0) + n
            province_voters[hh.village.province] = province_voters.get(hh.village.province, 0) + n
        day = self.clock.weekdays() or self.clock.dates
        # voters a series needs for SILENCE_MIN_EVENTS events in `hours` office hours of a weekday
        def needed(province: str, share: float, hour: int, hours: int) -> float:
            start = self.clock.local(province, day[0], hour)
            one = self._expected(1, share, province, start, start + dt.timedelta(hours=hours))
            return SILENCE_MIN_EVENTS / one if one else float("inf")

        province_of = {w.regency: w.province for w in self.villages}
        reg = self._busy(regency_voters, needed(self.villages[0].province, 1.0, 9, 6))
        v = rng.choice(sorted((w for w in self.villages if w.regency == reg), key=lambda w: w.code))
        d = self._weekday(v.regency)
        start, end = self._silence_window(v.regency, province_of[reg], regency_voters[reg], 1.0, d, 9, 6)
        s = Silence(start, end, v.province, v.regency, None)
        self.silences.append(s)
        self.book.add("volume", "silence", [], stream=STREAM, region=_short_region(v),
                      window=(s.start, s.end), attach=[])
        provinces = sorted(province_voters)
        other = [p for p in provinces if p != v.province] or provinces
        coklit = SOURCE_SHARES[SOURCES.index("coklit")]
        p = self._busy({k: province_voters[k] for k in other}, needed(other[0], coklit, 8, 8))
        d2 = rng.choice([x for x in (self.clock.weekdays() or self.clock.dates) if x != d] or [d])
        start, end = self._silence_window(p, p, province_voters[p], coklit, d2, 8, 8)
        s2 = Silence(start, end, p, None, "coklit")
        self.silences.append(s2)
        self.book.add("volume", "silence", [], stream=STREAM, region={"province": p},
                      window=(s2.start, s2.end), source="coklit", attach=[])

    def _legitimate(self) -> None:
        """Adds for every voter, then updates, removals and legitimate moves."""
        rng = self.rng
        for hh in self.households:
            voters = hh.voters
            if not voters:
                continue
            source = self._source()
            v = hh.village
            if source in ("coklit", "manual"):
                # One visit (coklit) or one office session registers the whole family.
                offsets = [dt.timedelta(minutes=sum(rng.randint(1, 4) for _ in range(i)))
                           for i in range(len(voters))]
                blocked = self._blocked(v, source)
                for _ in range(50):
                    base = self._time(v, source)
                    if not any(blocked(base + o) for o in offsets):
                        break
                op = self._operator(source, v, voters[0].tps)
                for p, o in zip(voters, offsets):
                    self._add(p, source, base + o, op)
            else:
                for p in voters:
                    self._add(p, source, self._time(v, source), "auto")
        people = [self.registered[k] for k in sorted(self.registered)]
        for p in rng.sample(people, k=round(len(people) * 0.06)):
            self._update(p)
        removable = [p for p in people if p.pid in self.registered]
        for p in rng.sample(removable, k=round(len(removable) * 0.025)):
            self._remove(p)
        movable = [p for p in people if p.pid in self.registered and p.age < 60]
        for p in rng.sample(movable, k=max(3, round(len(movable) * 0.004))):
            self._move(p)

    def _add(self, p: Person, source: str, at: dt.datetime, op: str | None) -> Rec:
        rec = self._rec(p.voter(), p.village, p.tps, source, at, person=p, operator=op)
        self.add_rec[p.pid] = rec
        self.registered[p.pid] = p
        return rec

    def _update(self, p: Person) -> Rec:
        """A legitimate change: address, marital status, or a corrected/honoured name."""
        rng = self.rng
        voter = p.voter()
        r = rng.random()
        if r < 0.4:
            voter["address"] = names.address(rng, p.village.kelurahan, p.village.name)
        elif r < 0.6 and p.marital == "B" and p.age >= 19:
            voter["marital_status"] = "S"
        elif r < 0.8 and p.age >= 35 and not p.name.startswith(("H.", "Hj.")):
            voter["name"] = ("H. " if p.sex == "L" else "Hj. ") + p.name  # back from the Hajj
            p.tags.add("renamed_by_update")
        else:
            voter["disability"] = voter["disability"] or "0"
            voter["rt"] = f"{rng.randint(1, 15):03d}"
        source = rng.choices(("manual", "coklit", "dukcapil"), weights=(0.5, 0.3, 0.2))[0]
        at = self._time(p.village, source, after=self.add_rec[p.pid].at)
        p.tags.add("updated")
        return self._rec(voter, p.village, p.tps, source, at, "update", person=p)

    def _remove(self, p: Person) -> Rec:
        source = "dukcapil" if p.age >= 70 else self.rng.choice(("manual", "coklit", "dukcapil"))
        at = self._time(p.village, source, after=self.add_rec[p.pid].at)
        self.registered.pop(p.pid, None)
        p.tags.add("removed")
        return self._rec(p.voter(), p.village, p.tps, source, at, "remove", person=p)

    def _move(self, p: Person) -> None:
        """Legitimately moved: removed where they were, added again (same NIK) elsewhere."""
        old = self._remove(p)
        p.village = self._other_village(p.village)
        p.tps = self._tps_in(p.village)
        p.address = names.address(self.rng, p.village.kelurahan, p.village.name)
        p.tags.add("moved_readd")
        source = self.rng.choice(("manual", "dukcapil"))
        self._add(p, source, self._time(p.village, source, after=old.at), "auto")

    # -- anomalies ----------------------------------------------------------------
    def _candidates(self, *, need_birth: bool = False, sex: str | None = None) -> list[Person]:
        out = [p for k, p in sorted(self.registered.items())
               if "moved_readd" not in p.tags and (not need_birth or p.birth_date_shown)
               and (sex is None or p.sex == sex) and p.nik != PLACEHOLDER_NIK]
        return out

    def _spike(self) -> None:
        """Bulk insertion: many registrations from one source in one regency within 15 minutes."""
        rng = self.rng
        v = rng.choice(self.villages)
        d = self._weekday(v.regency)
        start = self.clock.local(v.province, d, rng.choice((10, 13, 21)), rng.choice((0, 15, 30)))
        end = start + dt.timedelta(minutes=15)
        regency_villages = [w for w in self.villages if w.regency == v.regency]
        # A bulk insertion stands out from its regency's own traffic: several times
        # what all sources together register there in those 15 minutes.
        voters = sum(len(h.voters) for h in self.households if h.village.regency == v.regency)
        usual = self._expected(voters, 1.0, v.province, start, end)
        n = max(30, self.n_voters // 150, round(SPIKE_TIMES_USUAL * usual))
        recs = []
        op = f"KPU-{v.regency}-ADM{rng.randint(1, 9)}"
        for _ in range(n):
            w = rng.choice(regency_villages)
            p = self._fresh(w)
            at = start + dt.timedelta(seconds=rng.randrange(15 * 60))
            recs.append(self._rec(p.voter(), w, p.tps, "manual", at, person=p, injected=True, operator=op))
        self.book.add("volume", "spike", [], stream=STREAM, region=_short_region(v),
                      window=(start, end), source="manual", attach=recs)

    def _heaping(self) -> None:
        """One regency suddenly registers many people born on 1 Jan / 1 Jul / 31 Dec."""
        rng = self.rng
        regencies = sorted({w.regency for w in self.villages})
        reg = rng.choice(regencies)
        vs = [w for w in self.villages if w.regency == reg]
        days = self.clock.weekdays() or self.clock.dates
        i = rng.randrange(max(1, len(days) - 3))
        window_days = days[i:i + 3]
        for d in window_days:
            self._busy_days.add((reg, d))
        n = max(20, self.n_voters // 250)
        recs = []
        for _ in range(n):
            w = rng.choice(vs)
            age = adult_age(rng, 20, 80)
            year = (dt.date(2024, 2, 14).year - age - 1)
            m, dd = rng.choice(DEFAULT_DATES)
            birth = dt.date(year, m, dd)
            p = self._fresh(w, age=age_on(birth), birth=birth, heaping=False)
            source = rng.choice(("coklit", "coklit", "manual"))
            at = self._time(w, source, day=rng.choice(window_days))
            recs.append(self._rec(p.voter(), w, p.tps, source, at, person=p, injected=True))
        tz = utc_offset(vs[0].province)
        start = dt.datetime.combine(window_days[0], dt.time(0, 0), tz)
        end = dt.datetime.combine(window_days[-1] + dt.timedelta(days=1), dt.time(0, 0), tz)
        recs.sort(key=lambda r: r.at)
        self.book.add("birthdate_heaping", "regency_default_dates", recs, stream=STREAM,
                      region={"province": reg[:2], "regency": reg}, window=(start, end), attach=recs)

    def _household_burst(self) -> None:
        """An NKK with 25+ members added within an hour or two by one operator."""
        rng = self.rng
        bursts = max(1, self.n_voters // 15000)
        for _ in range(bursts):
            v = rng.choice(self.villages)
            d = self._weekday(v.regency)
            hh = Household(hid=-1, nkk=self.issuer.nkk(v.district, d - dt.timedelta(days=rng.randint(1, 30))),
                           village=v, members=[])
            addr = names.address(rng, v.kelurahan, v.name)
            rt, rw = f"{rng.randint(1, 15):03d}", f"{rng.randint(1, 10):03d}"
            tps = self._tps_in(v)
            source = rng.choice(("manual", "dukcapil"))
            op = self._operator(source, v, tps)
            t = self.clock.local(v.province, d, rng.choice((9, 10, 13)), rng.randrange(60))
            recs = []
            for _ in range(rng.randint(25, 40)):
                p = self._fresh(v)
                p.nkk, p.address, p.rt, p.rw, p.tps = hh.nkk, addr, rt, rw, tps
                t += dt.timedelta(seconds=rng.randint(40, 200))
                recs.append(self._rec(p.voter(), v, tps, source, t, person=p, injected=True, operator=op))
            self.book.add("household", "oversized_burst", recs, stream=STREAM,
                          region=_short_region(v), attach=recs)

    def _duplicate_nik(self) -> None:
        """The same person (same NIK) registered again at another TPS or region."""
        rng = self.rng
        for p in rng.sample(self._candidates(), k=self._n(0.20)):
            orig = self.add_rec[p.pid]
            if rng.random() < 0.5:
                w, kind = self._other_village(p.village, other_regency=True), "other_region"
                tps = self._tps_in(w)
            else:
                w = p.village if len(self.tps_by_village.get(p.village.code, [])) > 1 else \
                    self._other_village(p.village, other_regency=False)
                tps, kind = self._tps_in(w, not_tps=p.tps), "other_tps"
            voter = p.voter()
            if w.code != p.village.code:
                voter["address"] = names.address(rng, w.kelurahan, w.name)
                voter["rt"], voter["rw"] = f"{rng.randint(1, 15):03d}", f"{rng.randint(1, 10):03d}"
                voter["nkk"] = voter["nkk"] if rng.random() < 0.5 else None
            source = self._source()
            rec = self._rec(voter, w, tps, source, self._time(w, source, after=orig.at),
                            person=p, injected=True)
            self.book.add("duplicate_nik", kind, [rec, orig], stream=STREAM, region=_short_region(w))

    def _duplicate_person(self) -> None:
        """The same person under a different NIK, with a variant of the name."""
        rng = self.rng
        kinds = ("name_variant", "typo", "title_honorific", "swapped_birth_date",
                 "married_name", "reissued_nik")
        weights = (0.32, 0.2, 0.15, 0.1, 0.08, 0.15)
        pool = [p for p in self._candidates(need_birth=True) if p.age >= 17]
        used: set[int] = set()
        for _ in range(self._n(0.25)):
            kind = rng.choices(kinds, weights=weights)[0]
            for _try in range(40):
                p = rng.choice(pool)
                if p.pid in used:
                    continue
                made = self._person_variant(p, kind)
                if made is not None:
                    break
            else:
                kind = "typo"
                p = rng.choice([q for q in pool if q.pid not in used])
                made = self._person_variant(p, kind)
            used.add(p.pid)
            name, birth = made
            orig = self.add_rec[p.pid]
            same_place = rng.random() < 0.6
            w = p.village if same_place else self._other_village(p.village)
            district = w.district if rng.random() < 0.5 else p.nik[:6]
            voter = p.voter()
            voter["name"] = name
            voter["nik"] = self.issuer.nik(district, birth, p.sex)
            voter["birth_date"] = birth.isoformat()
            r = rng.random()
            if r >= 0.8:
                voter["nkk"] = None
            elif r >= 0.5:  # a second family card as well
                issued = self.clock.start.date() - dt.timedelta(days=rng.randint(30, 3000))
                voter["nkk"] = self.issuer.nkk(w.district, issued)
            if not same_place:
                voter["address"] = names.address(rng, w.kelurahan, w.name)
            source = self._source()
            rec = self._rec(voter, w, self._tps_in(w), source, self._time(w, source, after=orig.at),
                            person=p, injected=True)
            self.book.add("duplicate_person", kind, [rec, orig], stream=STREAM, region=_short_region(w))

    def _person_variant(self, p: Person, kind: str) -> tuple[str, dt.date] | None:
        rng = self.rng
        if kind == "name_variant":
            alt = names.name_variant(rng, p.name)
            return (alt, p.birth) if alt else None
        if kind == "typo":
            return names.typo(rng, p.name), p.birth
        if kind == "title_honorific":
            if names.strip_titles(p.name) != p.name:
                return names.strip_titles(p.name), p.birth  # the title dropped this time
            return names.with_honorific(rng, p.name, p.sex, max(p.age, 30)), p.birth
        if kind == "swapped_birth_date":
            b = p.birth
            if b.day > 12 or b.day == b.month:
                return None
            return p.name, dt.date(b.year, b.day, b.month)
        if kind == "married_name":
            if p.sex != "P" or p.marital != "S":
                return None
            husband = names.male_name(rng).split()[0]
            return (f"{p.name} {husband}" if rng.random() < 0.6 else f"Ny. {p.name}"), p.birth
        if kind == "reissued_nik":
            return p.name, p.birth
        raise ValueError(kind)

    def _nik_conflict(self) -> None:
        """One NIK used by a different person: a mistyped NIK, or the placeholder."""
        rng = self.rng
        n = self._n(0.10)
        n_placeholder = max(3, n // 4)
        for victim in rng.sample(self._candidates(), k=n - n_placeholder + 1):
            w = self._other_village(victim.village) if rng.random() < 0.5 else victim.village
            p = self._fresh(w)
            p.nik = victim.nik
            source = self._source()
            orig = self.add_rec[victim.pid]
            rec = self._rec(p.voter(), w, p.tps, source, self._time(w, source, after=orig.at),
                            person=p, injected=True)
            self.book.add("nik_conflict", "nik_reused", [rec, orig], stream=STREAM, region=_short_region(w))
        earlier: list[Rec] = []
        first_time = None
        for _ in range(n_placeholder):
            w = rng.choice(self.villages)
            p = self._fresh(w)
            p.nik = PLACEHOLDER_NIK
            source = rng.choice(("manual", "coklit"))
            t = self._time(w, source, after=first_time)
            first_time = t
            rec = self._rec(p.voter(), w, p.tps, source, t, person=p, injected=True)
            if earlier:
                self.book.add("nik_conflict", "placeholder", [rec] + earlier[::-1], stream=STREAM,
                              region=_short_region(w))
            else:  # its first use is no conflict yet, but the number is a placeholder
                self.book.add("nik_integrity", "placeholder", [rec], stream=STREAM,
                              region=_short_region(w))
            earlier.append(rec)

    def _nik_integrity(self) -> None:
        """New voters whose NIK cannot be theirs (or anyone's)."""
        rng = self.rng
        # The placeholder NIK is injected by _nik_conflict (its first use is an integrity label).
        kinds = ("birth_date_mismatch", "female_without_40", "sex_mismatch", "unknown_province",
                 "patterned")
        for i in range(self._n(0.20)):
            kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
            w = rng.choice(self.villages)
            sex = "P" if kind == "female_without_40" else "L" if kind == "sex_mismatch" else None
            p = self._fresh(w, sex=sex)
            serial = f"{rng.randint(9000, 9999):04d}"  # far from the issued range: no collisions
            if kind == "birth_date_mismatch":
                b = p.birth
                wrong = b + dt.timedelta(days=rng.choice((1, -1, 10, 30, 365, -365)))
                p.nik = p.nik[:6] + date_part(wrong, p.sex) + serial
            elif kind in ("female_without_40", "sex_mismatch"):
                other = "L" if p.sex == "P" else "P"
                p.nik = p.nik[:6] + date_part(p.birth, other) + serial
            elif kind == "unknown_province":
                p.nik = rng.choice(IMPOSSIBLE_PROVINCES) + p.nik[2:12] + serial
            else:
                p.nik = patterned_nik(rng, w.district)
            # A bad NIK that happens to equal another record's NIK would also be a
            # conflict; keep each one unique so the label stays single-family.
            tries = 0
            while p.nik in self.issuer.issued or p.nik in self.niks_seen:
                tries += 1
                if kind == "patterned" and tries < 10:
                    p.nik = patterned_nik(rng, w.district)
                else:
                    p.nik = p.nik[:12] + f"{rng.randint(9000, 9999):04d}"
            if p.birth_date_shown is None or p.birth_date_shown == "":
                p.birth_date_shown = p.birth.isoformat()  # the mismatch must be visible
            source = self._source()
            rec = self._rec(p.voter(), w, p.tps, source, self._time(w, source), person=p, injected=True)
            self.book.add("nik_integrity", kind, [rec], stream=STREAM, region=_short_region(w))

    def _eligibility(self) -> None:
        """Under-age unmarried children of real households; voters older than 110."""
        rng = self.rng
        n = self._n(0.10)
        kids = [(hh, m) for hh in self.households for m in hh.members
                if 13 <= m.age < 17 and m.marital == "B"]
        n_young = min(len(kids), max(2, round(n * 0.7)))
        for hh, kid in rng.sample(kids, k=n_young):
            kid.tps = hh.voters[0].tps if hh.voters else self._tps_in(hh.village)
            if kid.birth_date_shown in (None, ""):
                kid.birth_date_shown = kid.birth.isoformat()
            source = rng.choice(("coklit", "manual", "online"))
            rec = self._rec(kid.voter(), hh.village, kid.tps, source, self._time(hh.village, source),
                            person=kid, injected=True)
            self.book.add("eligibility", "under_age", [rec], stream=STREAM, region=_short_region(hh.village))
        for _ in range(max(2, n - n_young)):
            w = rng.choice(self.villages)
            age = rng.randint(111, 123)
            p = self._fresh(w, age=age, marital="P", heaping=True)
            source = rng.choice(("coklit", "manual", "dukcapil"))
            rec = self._rec(p.voter(), w, p.tps, source, self._time(w, source), person=p, injected=True)
            self.book.add("eligibility", "implausible_age", [rec], stream=STREAM, region=_short_region(w))

    # -- after the fact -------------------------------------------------------------
    def secondary_labels(self) -> None:
        """An injected record may break more than its own family's rule (a NIK reused by a
        different person no longer matches the record's birth date); label that too, so a
        detector that rightly fires on it is not counted wrong."""
        for rec in self.recs:
            if not rec.injected:
                continue
            voter = rec.value["voter"]
            problems = nik_problems(voter["nik"], voter.get("birth_date") or None, voter.get("sex") or None)
            if problems and not self.book.has(rec, "nik_integrity"):
                self.book.add("nik_integrity", f"also_{problems[0]}", [rec], stream=STREAM,
                              region=_short_region_of(rec))
            if ineligible(voter) and not self.book.has(rec, "eligibility"):
                self.book.add("eligibility", "also_under_age" if _age(voter) < 17 else "also_implausible_age",
                              [rec], stream=STREAM, region=_short_region_of(rec))


def _short_region_of(rec: Rec) -> dict:
    r = rec.value["region"]
    return {"province": r["province"], "regency": r.get("regency")}


def _age(voter: dict) -> int:
    y, m, d = (int(x) for x in voter["birth_date"].split("-"))
    return age_on(dt.date(y, m, d))


def ineligible(voter: dict) -> bool:
    """Under 17 on polling day and never married, or older than 110 (when the birth date is known)."""
    if not voter.get("birth_date"):
        return False
    age = _age(voter)
    return (age < 17 and voter.get("marital_status") not in ("S", "P")) or age > 110
