"""Regions whose share of civil-registry default birth dates departs from their baseline.

People whose birth date is unknown are given 1 January, 1 July or 31 December
by the civil registry (17.5 million voters in 2019, all legitimate). So a
default date on one record is never a finding. What is worth a look is a
regency whose recent records carry these dates far more often than both its
own history and the country: bulk-made or copied records tend to.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from datetime import date, datetime
from typing import Any

from scipy.special import bdtrc  # binom.sf without importing scipy.stats (seconds of start-up)

from models.base import Finding
from models.lookups import parse_nik

__all__ = ["BirthdateHeaping", "DEFAULT_DATES"]

#: (month, day) the civil registry assigns when the birth date is unknown.
DEFAULT_DATES = frozenset({(1, 1), (7, 1), (12, 31)})


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return None


class BirthdateHeaping:
    """Region-level (regency) findings on the share of default birth dates, tested every ``window`` records.

    Parameters
    ----------
    secret
        Not used for keys (regions are not personal data); taken so that every
        registration detector is built the same way, ``(secret, state, ...)``.
    state
        ``MutableMapping``: ``national`` -> ``{"n", "k"}`` (records, of which
        default dates); ``r:<regency>`` -> ``{"n", "k"}`` (its baseline: the
        windows already judged normal), ``{"wn", "wk"}`` (the current window),
        ``"flagged"``, ``"ids"`` (the window's default-date event ids). One
        entry per regency, so bounded. Assigned back.
    window
        Records per regency between tests (and the size of the tested window).
    prior_strength
        Weight, in records, of the national share in the region's baseline:
        the baseline is ``(k + m p_nat) / (n + m)``, a Beta prior centred on
        the national share, so a new region starts at the national share and
        a region with a long history of its own is judged against it.
    alpha
        One-sided binomial p-value below which the window departs (both tests).
    min_ratio
        The window's share must also be this many times both references.
    min_national
        Records counted nationally before any test (the national share must mean something).
    max_event_ids
        Event ids of the window's default-date records kept (the latest), and
        listed in the finding's ``event_ids``, newest first.

    Notes
    -----
    A window is a finding only when its share is above BOTH the region's own
    baseline and the national share (two one-sided binomial tests, each with
    ``alpha``, and the ``min_ratio``). Severity ``warning`` when the share is
    at least twice ``min_ratio`` times the larger reference and p < alpha**2,
    else ``info``. A flagged window is not folded into the baseline, so a
    continuing anomaly keeps showing; a normal window after a flagged one
    resolves it. Birth date from the record, else from the NIK. Only ``add``
    events count.

    Examples
    --------
    >>> import random
    >>> rnd = random.Random(3)
    >>> det = BirthdateHeaping(b"k", {}, window=200, min_national=1000)
    >>> def reg(i, regency, heaped):
    ...     d = "1980-12-31" if rnd.random() < heaped else f"1980-{rnd.randint(2, 11):02d}-{rnd.randint(2, 28):02d}"
    ...     return {"event_id": f"e{i}", "occurred_at": "2023-05-01T10:00:00+07:00", "action": "add",
    ...             "voter": {"nik": "3273014501900001", "name": "x", "birth_date": d},
    ...             "region": {"province": regency[:2], "regency": regency}}
    >>> found = [f for i in range(6000) for f in det.process_one(reg(i, ("3273", "3274", "3275")[i % 3], 0.08))]
    >>> found
    []
    >>> found = [f for i in range(600) for f in det.process_one(reg(i, "3276", 0.5))]
    >>> [(f.kind, f.subject_kind, f.subject_id) for f in found][:1]
    [('default_date_share', 'region', '3276')]
    """

    name = "birthdate_heaping"
    version = "1"

    def __init__(self, secret: bytes, state: MutableMapping[str, Any], window: int = 500,
                 prior_strength: float = 2000.0,
                 alpha: float = 1e-4, min_ratio: float = 1.5, min_national: int = 5000, max_event_ids: int = 50):
        self.secret = secret
        self.state = state
        self.window = window
        self.prior_strength = prior_strength
        self.alpha = alpha
        self.min_ratio = min_ratio
        self.min_national = min_national
        self.max_event_ids = max_event_ids

    @staticmethod
    def _birth(voter: dict, ref: date) -> date | None:
        raw = voter.get("birth_date")
        if raw:
            try:
                return date.fromisoformat(raw)
            except ValueError:
                return None
        info = parse_nik(str(voter.get("nik") or ""), ref)
        return date.fromisoformat(info.birth_date) if info.birth_date else None

    def process_one(self, event: dict) -> list[Finding]:
        if event.get("action") != "add":
            return []
        regency = (event.get("region") or {}).get("regency")
        when = _when(event)
        born = self._birth(event.get("voter") or {}, when.date() if when else date.today())
        if born is None:
            return []
        hit = (born.month, born.day) in DEFAULT_DATES
        nat = dict(self.state.get("national") or {"n": 0, "k": 0})
        nat = {"n": nat["n"] + 1, "k": nat["k"] + hit}
        self.state["national"] = nat
        if not regency:
            return []
        key = f"r:{regency}"
        r = dict(self.state.get(key) or {"n": 0, "k": 0, "wn": 0, "wk": 0, "flagged": False})
        r["wn"] += 1
        r["wk"] += hit
        if hit:
            # The window's default-date records, so an alert names the records behind it (bounded).
            ids = (r.get("ids") or []) + [event["event_id"]]
            r["ids"] = ids[max(0, len(ids) - self.max_event_ids):]
        out: list[Finding] = []
        if r["wn"] >= self.window:
            if nat["n"] >= self.min_national:
                finding = self._test(r, nat, regency, event, when)
                if finding is not None:
                    out.append(finding)
                    r["flagged"] = finding.status == "open"
                if not r["flagged"]:
                    r["n"] += r["wn"]
                    r["k"] += r["wk"]
            else:
                r["n"] += r["wn"]
                r["k"] += r["wk"]
            r["wn"] = r["wk"] = 0
            r["ids"] = []
        self.state[key] = r
        return out

    def _test(self, r: dict, nat: dict, regency: str, event: dict, when: datetime | None) -> Finding | None:
        n, k = r["wn"], r["wk"]
        p_nat = max(nat["k"] / nat["n"], 1e-4)
        m = self.prior_strength
        p_own = max((r["k"] + m * p_nat) / (r["n"] + m), 1e-4)
        share = k / n
        pv_nat = float(bdtrc(k - 1, n, p_nat))
        pv_own = float(bdtrc(k - 1, n, p_own))
        ref = max(p_nat, p_own)
        departs = (pv_nat < self.alpha and pv_own < self.alpha and share >= self.min_ratio * ref)
        evidence = {"window_records": n, "window_default_dates": k, "window_share": round(share, 4),
                    "baseline_share": round(p_own, 4), "baseline_records": r["n"],
                    "national_share": round(p_nat, 4), "p_value_vs_baseline": pv_own,
                    "p_value_vs_national": pv_nat, "default_dates": ["01-01", "07-01", "12-31"],
                    "model": self.name, "version": self.version}
        region = {"province": regency[:2], "regency": regency}
        if departs:
            strong = share >= 2 * self.min_ratio * ref and max(pv_nat, pv_own) < self.alpha ** 2
            return Finding(
                detector=self.name, key=f"{regency}|heaping", severity="warning" if strong else "info",
                score=round(min(1.0, -math.log10(max(max(pv_nat, pv_own), 1e-300)) / 20), 3),
                subject_kind="region", subject_id=regency,
                summary=(f"Regency {regency}: {share:.1%} of the last {n} new voters have a default birth date "
                         f"(1 Jan, 1 Jul, 31 Dec), against {p_own:.1%} in its baseline and {p_nat:.1%} nationally."),
                evidence=evidence, event_ids=list(reversed(r.get("ids") or [event["event_id"]])),
                region=region, occurred_at=when, kind="default_date_share",
            )
        if r["flagged"]:
            return Finding(
                detector=self.name, key=f"{regency}|heaping", severity="info", score=0.0,
                subject_kind="region", subject_id=regency,
                summary=f"Regency {regency}: the share of default birth dates is back to its baseline.",
                evidence=evidence, event_ids=[event["event_id"]], region=region, occurred_at=when,
                status="resolved", kind="default_date_share",
            )
        return None
