"""TPS tallies (result.v1, form C.Hasil) on polling day 2024-02-14, with injected
arithmetic errors, OCR misreads, revisions and peer outliers.

The DPT of each TPS is the number of simulated voters on the list there, so the
registrations and the tallies describe the same electorate.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

import numpy as np

from .clock import POLLING_DAY, iso
from .labels import LabelBook, Rec
from .regions import Village, utc_offset

STREAM = "results"
TPS_CAP = 300

# PPWP 2024 (01 Anies-Muhaimin, 02 Prabowo-Gibran, 03 Ganjar-Mahfud), rounded
# provincial shares of the official recapitulation; others get the national result.
PPWP_SHARES = {
    "11": (0.73, 0.25, 0.02), "31": (0.41, 0.41, 0.18), "32": (0.31, 0.58, 0.11),
    "33": (0.13, 0.53, 0.34), "34": (0.20, 0.50, 0.30), "35": (0.17, 0.66, 0.17),
    "36": (0.34, 0.56, 0.10), "51": (0.03, 0.52, 0.45), "73": (0.38, 0.57, 0.05),
}
PPWP_NATIONAL = (0.25, 0.58, 0.17)
N_PARTIES = 18  # national parties in 2024, ballot numbers 01-18

# Hundreds digits an OCR engine confuses on handwritten C.Hasil forms.
_OCR_CONFUSIONS = {0: (9, 4, 6), 1: (6, 7, 4), 2: (7, 3), 3: (8, 5), 4: (9, 1), 5: (6, 8, 3),
                   6: (5, 8, 0), 7: (1, 2), 8: (3, 6, 0), 9: (4, 8, 0)}
# Differences no single-digit change can produce (never d * 10**k): arithmetic errors
# that an OCR-misread detector must not "explain".
_NON_DIGIT_DELTAS = (13, 17, 22, 26, 31, 38, 45, 54, 67)


@dataclass(slots=True)
class TpsInfo:
    """A TPS and its DPT by sex (from the simulated voter list)."""

    code: str
    village: Village
    dpt_l: int
    dpt_p: int

    @property
    def dpt(self) -> int:
        return self.dpt_l + self.dpt_p


def tally_problems(value: dict) -> list[str]:
    """What is arithmetically wrong with a tally ([] when nothing)."""
    votes = value["votes"]
    reg = value["registered"]
    registered = reg["dpt"] + (reg.get("dptb") or 0) + (reg.get("dpk") or 0)
    out = []
    if sum(votes.values()) != value["valid"]:
        out.append("sum_mismatch")
    if value["valid"] + value["invalid"] != value["voters"]:
        out.append("valid_invalid_mismatch")
    if value["voters"] > math.floor(registered * 1.02):
        out.append("over_registered")
    if any(v > TPS_CAP for v in votes.values()):
        out.append("over_cap")
    return out


def candidate_keys(contest: str) -> list[str]:
    """Ballot numbers: 3 presidential tickets, or 18 national parties."""
    return ["01", "02", "03"] if contest == "PPWP" else [f"{i:02d}" for i in range(1, N_PARTIES + 1)]


class ResultBuilder:
    """Builds the tallies of every TPS for every contest, then injects anomalies."""

    def __init__(self, rng: random.Random, nrng: np.random.Generator, tps: list[TpsInfo],
                 contests: tuple[str, ...], book: LabelBook, anomaly_rate: float):
        self.rng = rng
        self.nrng = nrng
        self.tps = tps
        self.contests = contests
        self.book = book
        self.rate = anomaly_rate
        self.recs: list[Rec] = []
        self.special: set[str] = set()  # TPS with many DPTb voters (campus, hospital): legit

    def _base_shares(self, contest: str, province: str) -> np.ndarray:
        if contest == "PPWP":
            return np.array(PPWP_SHARES.get(province, PPWP_NATIONAL))
        # Parties: a fixed, skewed national distribution.
        w = 1.0 / np.arange(1, N_PARTIES + 1) ** 0.7
        return w / w.sum()

    def _submitted(self, province: str) -> dt.datetime:
        """Most uploads the evening of polling day, the rest over the next days."""
        rng = self.rng
        tz = utc_offset(province)
        r = rng.random()
        base = dt.datetime.combine(POLLING_DAY, dt.time(0, 0), tz)
        if r < 0.70:
            off = dt.timedelta(hours=17) + dt.timedelta(seconds=rng.randrange(7 * 3600))
        elif r < 0.92:
            off = dt.timedelta(hours=24) + dt.timedelta(seconds=rng.randrange(12 * 3600))
        else:
            off = dt.timedelta(hours=36) + dt.timedelta(seconds=rng.randrange(56 * 3600))
        return base + off

    def build(self) -> list[Rec]:
        rng, nrng = self.rng, self.nrng
        self.special = {t.code for t in self.tps if rng.random() < 0.04}
        if len(self.special) < 2 and len(self.tps) > 10:
            self.special |= {t.code for t in rng.sample(self.tps, 2)}
        village_turnout: dict[str, float] = {}
        village_share: dict[tuple[str, str], np.ndarray] = {}
        for contest in self.contests:
            for t in self.tps:
                v = t.village
                vt = village_turnout.setdefault(v.code, float(np.clip(nrng.normal(0.80, 0.035), 0.6, 0.92)))
                base = self._base_shares(contest, v.province)
                vs = village_share.setdefault((contest, v.code), nrng.dirichlet(base * 80))
                self.recs.append(self._tally(t, contest, vt, vs))
        self._inject()
        return self.recs

    def _tally(self, t: TpsInfo, contest: str, vt: float, vshare: np.ndarray) -> Rec:
        nrng = self.nrng
        special = t.code in self.special
        turnout = float(np.clip(nrng.normal(vt, 0.03), 0.55, 0.95))
        dptb = int(nrng.poisson(1.5))
        dpk = int(nrng.poisson(0.8))
        if special:  # students/patients voting away from home: DPTb pushes voters above DPT
            dptb = int(nrng.integers(15, 36))
            turnout = float(nrng.uniform(0.93, 0.98))
        voters = int(nrng.binomial(t.dpt, turnout)) + int(nrng.binomial(dptb, 0.92)) + dpk
        invalid = int(nrng.binomial(voters, float(np.clip(nrng.normal(0.022, 0.008), 0.003, 0.06))))
        valid = voters - invalid
        share = nrng.dirichlet(vshare * 300 + 1e-3)
        counts = nrng.multinomial(valid, share)
        keys = candidate_keys(contest)
        share_l = t.dpt_l / t.dpt if t.dpt else 0.5
        voters_l = int(nrng.binomial(voters, min(1.0, share_l * 0.98)))
        value = {
            "schema": "result.v1",
            "event_id": "",
            "submitted_at": "",
            "tps": t.code,
            "region": t.village.region(),
            "contest": contest,
            "revision": 0,
            "registered": {"dpt": t.dpt, "dptb": dptb, "dpk": dpk},
            "registered_by_sex": {"L": t.dpt_l, "P": t.dpt_p},
            "voters": voters,
            "voters_by_sex": {"L": voters_l, "P": voters - voters_l},
            "votes": {k: int(c) for k, c in zip(keys, counts)},
            "valid": valid,
            "invalid": invalid,
            "source": "sirekap" if self.rng.random() < 0.97 else "manual",
            "operator_id": f"KPPS-{t.code}",
        }
        at = self._submitted(t.village.province)
        value["submitted_at"] = iso(at)
        return Rec(STREAM, at, value, t.code)

    # -- anomalies ----------------------------------------------------------------
    def _inject(self) -> None:
        rng = self.rng
        contest = self.contests[0]
        pool = [r for r in self.recs if r.value["contest"] == contest and r.key not in self.special
                and r.value["registered"]["dpt"] >= 60]
        rng.shuffle(pool)
        n = max(2, math.ceil(len(pool) * self.rate))

        def take(k: int, pred=lambda r: True) -> list[Rec]:
            got = [r for r in pool if pred(r)][:k]
            for r in got:
                pool.remove(r)
            return got

        if self.rate <= 0:  # a clean baseline keeps only the legitimate look-alikes
            for rec in take(max(2, n)):
                self._revision(rec, changed=False)
            return
        kinds = ("sum_mismatch", "valid_invalid_mismatch", "over_registered", "over_cap")
        for i, rec in enumerate(take(max(4, n), lambda r: r.value["registered"]["dpt"] < 250)):
            self._arithmetic(rec, kinds[i % len(kinds)])
        for rec in take(n):
            self._ocr(rec)
        for rec in take(n, lambda r: sum(r.value["registered"].values()) <= TPS_CAP - 5):
            self._peer_outlier(rec)  # small enough that the winner stays under the cap
        for rec in take(n):
            self._revision(rec, changed=True)
        for rec in take(max(2, n)):  # legitimate re-uploads with the same figures
            self._revision(rec, changed=False)
        self._secondary()

    def _label(self, detector: str, kind: str, recs: list[Rec]) -> None:
        r = recs[0].value["region"]
        self.book.add(detector, kind, recs, stream=STREAM,
                      region={"province": r["province"], "regency": r.get("regency")})

    def _arithmetic(self, rec: Rec, kind: str) -> None:
        rng = self.rng
        v = rec.value
        votes = v["votes"]
        rec.injected = True
        if kind == "sum_mismatch":
            k = max(votes, key=votes.get)
            delta = rng.choice(_NON_DIGIT_DELTAS) * rng.choice((1, -1))
            votes[k] = max(0, votes[k] + delta)
        elif kind == "valid_invalid_mismatch":
            v["invalid"] += rng.choice(_NON_DIGIT_DELTAS)
        elif kind == "over_registered":
            reg = v["registered"]
            registered = reg["dpt"] + reg["dptb"] + reg["dpk"]
            extra = math.floor(registered * 1.02) + rng.randint(8, 40) - v["voters"]
            v["voters"] += extra
            v["valid"] += extra
            v["voters_by_sex"]["P"] += extra
            k = rng.choice(sorted(votes))
            votes[k] += extra  # consistent sums: only the registered check fails
        else:  # over_cap: an extra digit typed into one candidate's count
            k = max(votes, key=votes.get)
            old = votes[k]
            for _ in range(20):
                new = int(f"{max(old, 31)}{rng.randrange(10)}")
                delta = new - old
                if new > TPS_CAP and not _single_digit_delta(delta):
                    break
            votes[k] = new
        self._label("tally_arithmetic", kind, [rec])

    def _ocr(self, rec: Rec) -> None:
        """A hundreds-digit misread of one figure (177 -> 677, 58 -> 958)."""
        rng = self.rng
        v = rec.value
        rec.injected = True
        fields = [("votes", k) for k, c in v["votes"].items() if c >= 10] or [("valid", None)]
        r = rng.random()
        where = rng.choice(fields) if r < 0.7 else (("valid", None) if r < 0.85 else ("voters", None))
        old = v["votes"][where[1]] if where[0] == "votes" else v[where[0]]
        h = (old // 100) % 10
        options = [x for x in _OCR_CONFUSIONS[h] if 0 <= old + (x - h) * 100 <= 999]
        new = old + (rng.choice(options) - h) * 100 if options else old + 500
        if where[0] == "votes":
            v["votes"][where[1]] = new
        else:
            v[where[0]] = new
        kind = "hundreds_digit_" + (where[0] if where[0] != "votes" else "candidate")
        self._label("ocr_misread", kind, [rec])

    def _peer_outlier(self, rec: Rec) -> None:
        """~100 % turnout and one candidate with ~100 % of the votes, arithmetic intact."""
        rng = self.rng
        v = rec.value
        rec.injected = True
        reg = v["registered"]
        voters = reg["dpt"] + reg["dptb"] + reg["dpk"] - rng.randint(0, 2)
        invalid = rng.randint(0, 1)
        valid = voters - invalid
        keys = sorted(v["votes"])
        winner = rng.choice(keys)
        rest = rng.randint(0, 3)
        votes = {k: 0 for k in keys}
        votes[winner] = valid - rest
        for _ in range(rest):
            votes[rng.choice([k for k in keys if k != winner])] += 1
        share_l = reg["dpt"] and v["registered_by_sex"]["L"] / reg["dpt"]
        voters_l = round(voters * share_l)
        v.update(voters=voters, valid=valid, invalid=invalid, votes=votes,
                 voters_by_sex={"L": voters_l, "P": voters - voters_l})
        self._label("peer_outlier", "full_turnout_one_candidate", [rec])

    def _revision(self, rec: Rec, changed: bool) -> None:
        """Revision 1 of a tally, hours to days later; with or without changed figures."""
        rng = self.rng
        v = {**rec.value, "votes": dict(rec.value["votes"]),
             "registered": dict(rec.value["registered"]),
             "voters_by_sex": dict(rec.value["voters_by_sex"]),
             "registered_by_sex": dict(rec.value["registered_by_sex"])}
        v["revision"] = 1
        at = rec.at + dt.timedelta(minutes=rng.randint(90, 72 * 60))
        v["submitted_at"] = iso(at)
        v["source"] = rng.choice(("sirekap", "manual"))
        if changed:
            keys = sorted(v["votes"])
            a = max(keys, key=v["votes"].get)
            b = rng.choice([k for k in keys if k != a])
            moved = min(v["votes"][a], rng.randint(8, 40))
            v["votes"][a] -= moved  # votes moved between candidates: still consistent
            v["votes"][b] += moved
        new = Rec(STREAM, at, v, rec.key, injected=changed)
        self.recs.append(new)
        if changed:
            self._label("revision", "changed_figures", [new, rec])

    def _secondary(self) -> None:
        """An injected tally can break rules beyond its own family (an OCR misread also
        breaks the arithmetic; 677 voters at a TPS of 200 is also a turnout outlier)."""
        for rec in self.recs:
            if not rec.injected:
                continue
            v = rec.value
            problems = tally_problems(v)
            if problems and not self.book.has(rec, "tally_arithmetic"):
                self._label("tally_arithmetic", f"also_{problems[0]}", [rec])
            reg = v["registered"]
            registered = reg["dpt"] + (reg.get("dptb") or 0) + (reg.get("dpk") or 0)
            if (v["voters"] > registered or any(c > v["valid"] for c in v["votes"].values())) \
                    and not self.book.has(rec, "peer_outlier"):
                self._label("peer_outlier", "also_implausible_turnout", [rec])


def _single_digit_delta(delta: int) -> bool:
    """Whether |delta| is d * 10**k (one digit changed)."""
    d = abs(delta)
    while d and d % 10 == 0:
        d //= 10
    return 0 < d <= 9
