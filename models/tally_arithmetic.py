"""Impossible arithmetic on one TPS tally (form C.Hasil).

The rules are those of the 2024 counting forms: the candidates' votes add up to
the valid votes, valid + invalid votes add up to the voters who used their
right, no more people vote than are registered (DPT + DPTb + DPK) plus the 2 %
reserve ballots of DPT, no candidate receives more votes than a TPS may have
voters, and a TPS with no registered voters has no votes. Every rule broken is
arithmetic that cannot happen on a correct form, so every finding is critical.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.base import Finding

__all__ = ["TallyArithmetic", "Broken", "check_tally", "registered_total", "registered_limit"]

RULES = ("sum_valid", "valid_invalid_voters", "voters_registered", "candidate_cap", "dpt_zero")


@dataclass(frozen=True, slots=True)
class Broken:
    """One broken rule: its name, what the rule expects and what the tally says."""

    rule: str
    expected: Any
    seen: Any
    sentence: str


def registered_total(registered: dict) -> int:
    """DPT + DPTb + DPK, treating missing DPTb/DPK as zero."""
    return sum(int(registered.get(k) or 0) for k in ("dpt", "dptb", "dpk"))


def registered_limit(registered: dict, reserve_rate: float = 0.02) -> int:
    """Most voters a TPS can have: DPT + DPTb + DPK + the reserve ballots (2 % of DPT, rounded up)."""
    dpt = int(registered.get("dpt") or 0)
    # The integer product avoids 0.02 * 150 = 3.0000000000000004 rounding up to 4.
    reserve = math.ceil(round(dpt * reserve_rate, 9))
    return registered_total(registered) + reserve


def check_tally(event: dict, cap: int | None = 300, reserve_rate: float = 0.02) -> list[Broken]:
    """Every arithmetic rule a ``result.v1`` tally breaks, in a fixed order.

    Examples
    --------
    >>> ev = {"registered": {"dpt": 250, "dptb": 3, "dpk": 2}, "voters": 257,
    ...       "votes": {"01": 70, "02": 150, "03": 30}, "valid": 250, "invalid": 7}
    >>> check_tally(ev)   # 257 voters > 255 registered, but within the 5 reserve ballots
    []
    >>> ev["votes"]["02"] = 650
    >>> [b.rule for b in check_tally(ev)]
    ['sum_valid', 'candidate_cap']
    """
    out: list[Broken] = []
    votes = {str(k): int(v) for k, v in (event.get("votes") or {}).items() if v is not None}
    valid = int(event.get("valid") or 0)
    invalid = int(event.get("invalid") or 0)
    voters = int(event.get("voters") or 0)
    registered = event.get("registered") or {}
    dpt = int(registered.get("dpt") or 0)

    total = sum(votes.values())
    if total != valid:
        out.append(Broken("sum_valid", valid, total,
                          f"candidate votes add up to {total} but valid votes are {valid}"))
    if valid + invalid != voters:
        out.append(Broken("valid_invalid_voters", voters, valid + invalid,
                          f"valid {valid} + invalid {invalid} = {valid + invalid} "
                          f"but {voters} voters used their right"))
    limit = registered_limit(registered, reserve_rate)
    if dpt > 0 and voters > limit:
        out.append(Broken("voters_registered", f"<= {limit}", voters,
                          f"{voters} voters but only {limit} possible (DPT+DPTb+DPK plus {reserve_rate:.0%} reserve)"))
    if cap is not None:
        # The cap bounds DPT; moved-in (DPTb) and special (DPK) voters come on top of it.
        extra = int(registered.get("dptb") or 0) + int(registered.get("dpk") or 0)
        over = {c: n for c, n in votes.items() if n > cap + extra}
        if over:
            out.append(Broken("candidate_cap", f"<= {cap + extra}", over,
                              "candidate " + ", ".join(f"{c} has {n}" for c, n in sorted(over.items()))
                              + f" votes, above the TPS cap of {cap}"
                              + (f" plus {extra} DPTb/DPK voters" if extra else "")))
    if dpt == 0 and (total > 0 or voters > 0 or valid > 0):
        out.append(Broken("dpt_zero", "no votes when DPT is 0", {"voters": voters, "votes": total},
                          f"DPT is 0 but the tally has {voters} voters and {total} candidate votes"))
    return out


def _region(event: dict) -> dict | None:
    return event.get("region")


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["submitted_at"])
    except (KeyError, TypeError, ValueError):
        return None


class TallyArithmetic:
    """Critical findings for tallies whose arithmetic is impossible.

    Parameters
    ----------
    cap
        Most DPT voters a TPS may have (300 in 2024; ``None`` switches the
        rule off). A candidate may get at most ``cap`` + DPTb + DPK votes:
        moved-in and special voters come on top of the DPT cap, so a
        candidate at 301 in a TPS of 298 DPT + 3 DPTb is legitimate.
    reserve_rate
        Reserve ballots as a share of DPT (2 % in 2024, rounded up per TPS).
        Voters above DPT are normal when moved-in (DPTb) and special (DPK)
        voters come, so the bound is DPT + DPTb + DPK + reserve.
    state
        Optional ``MutableMapping`` keyed ``tps|contest`` holding the latest
        revision seen and the rules it broke. With it, a later revision that
        fixes a rule resolves that rule's finding, and a stale revision that
        arrives after a later one is ignored. Without it every tally is judged
        on its own.

    Notes
    -----
    One finding per broken rule, keyed ``tps|contest|rule``: a re-upload
    (a new revision) with the same error coalesces into the open alert instead
    of opening another, and a fix resolves exactly the rules it fixed. The
    revision number is therefore in the evidence, not in the key.

    Examples
    --------
    >>> det = TallyArithmetic(state={})
    >>> ev = {"event_id": "e1", "tps": "3173011005001", "contest": "PPWP", "revision": 0,
    ...       "region": {"province": "31"}, "registered": {"dpt": 280, "dptb": 0, "dpk": 0},
    ...       "voters": 233, "votes": {"01": 71, "02": 641, "03": 11}, "valid": 223, "invalid": 10}
    >>> [(f.kind, f.severity) for f in det.process_one(ev)]
    [('sum_valid', 'critical'), ('candidate_cap', 'critical')]
    >>> fixed = dict(ev, event_id="e2", revision=1, votes={"01": 71, "02": 141, "03": 11})
    >>> [(f.kind, f.status) for f in det.process_one(fixed)]
    [('sum_valid', 'resolved'), ('candidate_cap', 'resolved')]
    """

    name = "tally_arithmetic"
    version = "1"

    def __init__(self, cap: int | None = 300, reserve_rate: float = 0.02,
                 state: MutableMapping[str, Any] | None = None):
        self.cap = cap
        self.reserve_rate = reserve_rate
        self.state = state

    def process_one(self, event: dict) -> list[Finding]:
        tps = event["tps"]
        contest = event.get("contest", "")
        revision = int(event.get("revision") or 0)
        broken = check_tally(event, self.cap, self.reserve_rate)
        out: list[Finding] = []

        previously: list[str] = []
        if self.state is not None:
            skey = f"{tps}|{contest}"
            prev = self.state.get(skey)
            if prev is not None and revision < prev["revision"]:
                return []  # a stale revision delivered late: the later one already decided
            previously = list(prev["open"]) if prev else []
            self.state[skey] = {"revision": revision, "open": [b.rule for b in broken]}

        for b in broken:
            out.append(Finding(
                detector=self.name, key=f"{tps}|{contest}|{b.rule}", severity="critical", score=1.0,
                subject_kind="tps", subject_id=tps,
                summary=f"TPS {tps} {contest} revision {revision}: {b.sentence}.",
                evidence={"rule": b.rule, "expected": b.expected, "seen": b.seen, "revision": revision,
                          "model": self.name, "version": self.version},
                event_ids=[event["event_id"]], region=_region(event), occurred_at=_when(event), kind=b.rule,
            ))
        now_broken = {b.rule for b in broken}
        for rule in previously:
            if rule not in now_broken:
                out.append(Finding(
                    detector=self.name, key=f"{tps}|{contest}|{rule}", severity="critical", score=0.0,
                    subject_kind="tps", subject_id=tps,
                    summary=f"TPS {tps} {contest} revision {revision} no longer breaks rule {rule}.",
                    evidence={"rule": rule, "revision": revision, "model": self.name, "version": self.version},
                    event_ids=[event["event_id"]], region=_region(event), occurred_at=_when(event),
                    status="resolved", kind=rule,
                ))
        return out
