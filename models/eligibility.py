"""Voter eligibility on polling day: under-age voters, implausible ages, regions heavy with the very old.

UU 7/2017 art. 198: a citizen may vote who is 17 or older on polling day, or
is or has been married. So a married (``S``) or previously married (``P``)
16-year-old is a legitimate voter. Ages above 110 are implausible. Ages above
90 are common in the list (304,782 voters in 2019, mostly deceased people not
yet removed) so they are not a per-person alarm: instead each regency's share
of over-90 voters is compared with the national share, and a regency far above
it is reported as ``info``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import date, datetime
from typing import Any

from scipy.special import bdtrc  # binom.sf without importing scipy.stats (seconds of start-up)

from models.base import Finding
from models.lookups import parse_nik
from models.privacy import keyed_hash, mask_nik

__all__ = ["Eligibility"]


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return None


def age_on(born: date, day: date) -> int:
    """Completed years on ``day``; someone born on 29 Feb turns a year older on 1 Mar.

    Examples
    --------
    >>> age_on(date(2007, 2, 14), date(2024, 2, 14)), age_on(date(2007, 2, 15), date(2024, 2, 14))
    (17, 16)
    """
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class Eligibility:
    """Findings for voters who cannot be eligible on polling day, and regions heavy with over-90s.

    Parameters
    ----------
    secret
        Key for the HMAC that identifies a voter in finding keys.
    state
        ``MutableMapping`` with the over-90 counts: ``r:<regency>`` and
        ``national`` map to ``{"n": voters counted, "old": of whom over 90}``.
        One entry per regency (about 514), so bounded. Assigned back.
    polling_day
        The day ages are computed for. The default is the expected date of the
        next general election (14 February 2029, not yet fixed by the KPU);
        pass the real date, e.g. ``date(2024, 2, 14)`` for the 2024 election.
    min_age
        Voting age for the never married (17).
    max_age
        Above this the age is implausible (110).
    old_age
        Age counted in the regional over-90 share (90).
    check_every
        Re-test a regency's over-90 share after this many counted records.
    min_region_count
        Records a regency needs before its share is tested.
    min_ratio
        The regency's share must be at least this many times the national one.
    alpha
        Binomial-test p-value below which the regency is reported.

    Notes
    -----
    Birth date from the record, else from the NIK (day - 40 for women; its
    two-digit year is read as the most recent century, and a finding that
    rests on it is at most a ``warning``).
    Severity: never married (``B``) and under 17 is ``critical``; under 17 with
    marital status unknown is a ``warning`` (they may be married); married but
    under 13, a birth date after polling day or an age above ``max_age`` is a
    ``warning`` (data errors rather than fraud). Only ``add`` counts towards
    the regional shares and ``remove`` takes a voter back out; an ``update``
    changes no counts (its previous version is unknown).

    Examples
    --------
    >>> det = Eligibility(b"k", {}, polling_day=date(2024, 2, 14))
    >>> def reg(birth, marital, nik="3273014501080001"):
    ...     return {"event_id": "e1", "occurred_at": "2023-05-01T10:00:00+07:00", "action": "add",
    ...             "voter": {"nik": nik, "name": "Siti", "birth_date": birth, "marital_status": marital},
    ...             "region": {"province": "32", "regency": "3273"}}
    >>> det.process_one(reg("2007-06-01", "S"))     # 16 and married: may vote
    []
    >>> [(f.kind, f.severity) for f in det.process_one(reg("2008-01-05", "B"))]
    [('under_age', 'critical')]
    >>> [(f.kind, f.evidence["birth_date_from"]) for f in det.process_one(reg(None, None))]
    [('under_age', 'nik')]
    """

    name = "eligibility"
    version = "1"

    def __init__(self, secret: bytes, state: MutableMapping[str, Any], polling_day: date = date(2029, 2, 14),
                 min_age: int = 17, max_age: int = 110, old_age: int = 90, check_every: int = 500,
                 min_region_count: int = 1000, min_ratio: float = 2.0, alpha: float = 1e-6):
        self.secret = secret
        self.state = state
        self.polling_day = polling_day
        self.min_age = min_age
        self.max_age = max_age
        self.old_age = old_age
        self.check_every = check_every
        self.min_region_count = min_region_count
        self.min_ratio = min_ratio
        self.alpha = alpha

    def _birth(self, voter: dict) -> tuple[date | None, str | None]:
        raw = voter.get("birth_date")
        if raw:
            try:
                return date.fromisoformat(raw), "record"
            except ValueError:
                pass
        info = parse_nik(str(voter.get("nik") or ""), self.polling_day)
        if info.birth_date:
            return date.fromisoformat(info.birth_date), "nik"
        return None, None

    def process_one(self, event: dict) -> list[Finding]:
        voter = event.get("voter") or {}
        action = event.get("action")
        born, source = self._birth(voter)
        if born is None:
            return []
        age = age_on(born, self.polling_day)
        out: list[Finding] = []
        if action != "remove":
            f = self._person(event, voter, age, source)
            if f is not None:
                out.append(f)
        if action in ("add", "remove"):
            out += self._count(event, age >= self.old_age and age <= self.max_age, +1 if action == "add" else -1)
        return out

    def _person(self, event: dict, voter: dict, age: int, source: str) -> Finding | None:
        marital = voter.get("marital_status") or None
        if age < 0:
            kind, sev, score, why = "born_after_polling_day", "warning", 0.7, "birth date is after polling day"
        elif age < self.min_age and marital == "B":
            kind, sev, score, why = "under_age", "critical", 1.0, f"{age} years old on polling day and never married"
        elif age < self.min_age and marital is None:
            kind, sev, score, why = ("under_age", "warning", 0.7,
                                     f"{age} years old on polling day, marital status unknown")
        elif age < 13:
            # Married voters may be under 17, but a married child under 13 is a data error.
            kind, sev, score = "implausible_age", "warning", 0.6
            why = f"{age} years old on polling day and recorded as married"
        elif age > self.max_age:
            kind, sev, score, why = "implausible_age", "warning", 0.6, f"{age} years old on polling day"
        else:
            return None
        if source == "nik" and sev == "critical":
            # A NIK has a two-digit year: a 14-year-old and a 114-year-old look alike.
            sev, score = "warning", 0.7
        nik = str(voter.get("nik") or "")
        masked = mask_nik(nik)
        return Finding(
            detector=self.name, key=f"eligibility|{keyed_hash(self.secret, nik)}|{kind}", severity=sev,
            score=score, subject_kind="voter", subject_id=masked,
            summary=f"Voter {masked}: {why}.",
            evidence={"nik": masked, "age_on_polling_day": age, "polling_day": self.polling_day.isoformat(),
                      "marital_status": marital, "birth_date_from": source, "min_age": self.min_age,
                      "max_age": self.max_age, "model": self.name, "version": self.version},
            event_ids=[event["event_id"]], region=event.get("region"), occurred_at=_when(event), kind=kind,
        )

    def _count(self, event: dict, old: bool, delta: int) -> list[Finding]:
        region = event.get("region") or {}
        regency = region.get("regency")
        nat = dict(self.state.get("national") or {"n": 0, "old": 0})
        nat = {"n": max(0, nat["n"] + delta), "old": max(0, nat["old"] + (delta if old else 0))}
        self.state["national"] = nat
        if not regency:
            return []
        key = f"r:{regency}"
        r = dict(self.state.get(key) or {"n": 0, "old": 0, "since": 0, "flagged": False})
        r["n"] = max(0, r["n"] + delta)
        r["old"] = max(0, r["old"] + (delta if old else 0))
        r["since"] += 1
        out: list[Finding] = []
        if r["since"] >= self.check_every and r["n"] >= self.min_region_count:
            r["since"] = 0
            rest_n, rest_old = nat["n"] - r["n"], nat["old"] - r["old"]
            if rest_n > 0:
                # Compare with the rest of the country, so a big regency does not hide in its own average.
                p0 = max(rest_old / rest_n, 1e-4)
                share = r["old"] / r["n"]
                p = float(bdtrc(r["old"] - 1, r["n"], p0))
                high = share >= self.min_ratio * p0 and p < self.alpha
                if high or r["flagged"]:
                    out.append(Finding(
                        detector=self.name, key=f"eligibility|region|{regency}|over_{self.old_age}",
                        severity="info", score=0.0 if not high else round(min(1.0, share / p0 / 10), 3),
                        subject_kind="region", subject_id=regency,
                        summary=(f"Regency {regency}: {share:.2%} of voters are over {self.old_age}, "
                                 f"against {p0:.2%} elsewhere; deceased voters may not have been removed."
                                 if high else
                                 f"Regency {regency}: over-{self.old_age} share back near the national one."),
                        evidence={"region_count": r["n"], "region_over": r["old"], "region_share": round(share, 5),
                                  "national_share": round(p0, 5), "p_value": p, "min_ratio": self.min_ratio,
                                  "model": self.name, "version": self.version},
                        event_ids=[event["event_id"]], region={"province": regency[:2], "regency": regency},
                        occurred_at=_when(event), status="open" if high else "resolved", kind="over_age_share",
                    ))
                r["flagged"] = high
        self.state[key] = r
        return out
