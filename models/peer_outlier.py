"""TPS whose turnout or vote shares stand far from their peers in the same village / district.

Neighbouring TPS share their population, so their turnout and vote shares are
close. A TPS far from its peers (robust z-score on median and MAD) is worth a
look: a lone TPS at 100 % turnout with one candidate at 100 % stands out,
while a whole village at 95 % is that village's normal and does not.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
import statistics
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from models.base import Finding
from models.tally_arithmetic import check_tally, registered_total

__all__ = ["PeerOutlier"]

_MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["submitted_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _median_of_sorted(data: list[float]) -> float:
    """``statistics.median`` of already sorted values, the same float (the tests compare to the bit)."""
    n = len(data)
    if n == 0:
        raise statistics.StatisticsError("no median for empty data")
    i = n // 2
    return data[i] if n % 2 == 1 else (data[i - 1] + data[i]) / 2


def _median(values: list[float]) -> float:
    return _median_of_sorted(sorted(values))


def _robust_z(x: float, values: list[float], min_scale: float) -> tuple[float, float, float]:
    data = sorted(values)
    med = _median_of_sorted(data)
    mad = _median_of_sorted(sorted([abs(v - med) for v in data]))
    scale = max(_MAD_TO_SD * mad, min_scale)
    return (x - med) / scale, med, scale


class PeerOutlier:
    """Turnout and vote-share outliers against peer TPS, re-judged as peers arrive.

    Parameters
    ----------
    state
        ``MutableMapping``. ``v:<village>`` holds ``{"peers": [[tps, turnout,
        {candidate: share}, event_id, contest, revision], ...], "flagged":
        ["tps|contest", ...]}``;
        ``d:<district>`` holds ``{"peers": [...]}``. Values are assigned back.
    min_peers
        Peers needed before a TPS is judged at a level.
    neighbours
        A TPS is compared with at most this many village peers: those with the
        nearest TPS numbers (numbers follow the RT/RW map, so these are its
        neighbourhood). On the Jakarta sample, comparing with the whole village
        flagged a block of 20 adjacent TPS voting alike but unlike the rest of
        their 270-TPS village.
    max_peers
        Peers kept per village (the most recent), bounding state: urban
        villages have up to a few hundred TPS. A row is about 110 bytes, and a
        Faust table writes the whole value at every tally.
    max_district_peers
        Peers kept per district; they only serve while a village has too few
        of its own, so the most recent 100 are plenty for a median.
    threshold
        |robust z| at which a TPS is an outlier (``info``).
    strong
        |robust z| at which it is a ``warning``.
    min_scale
        Floor on the robust spread (a share of 1). With 200-300 voters per TPS
        sampling noise alone is 0.02-0.035, and neighbouring TPS differ by more
        than sampling noise; 0.05 keeps a village of near-identical TPS from
        turning a 10-point difference into a huge z. (On the Jakarta sample
        0.03 flagged 21 of 293 consistent tallies, 0.05 flags 12.)

    Notes
    -----
    A TPS is judged against its village when the village has ``min_peers``
    other TPS, else against its district (when that has ``min_peers``), else
    not at all. Every new tally re-judges the TPS of its village: a TPS flagged
    early against the district is resolved once its own village shows the same
    figures. Turnout is voters / (DPT + DPTb + DPK). Tallies whose sums do not
    add up (or with DPT 0) are left to ``tally_arithmetic``: their figures
    cannot be trusted and would distort the peers' medians. A tally that adds
    up but has more voters than registered (ballot stuffing done neatly) is
    judged: its turnout above 100 % is exactly what peers show up.

    Examples
    --------
    >>> det = PeerOutlier({}, min_peers=4)
    >>> def tally(n, voters, votes):
    ...     return {"event_id": f"e{n}", "tps": f"3173011005{n:03d}", "contest": "PPWP",
    ...             "region": {"province": "31", "district": "317301", "village": "3173011005"},
    ...             "registered": {"dpt": 250, "dptb": 0, "dpk": 0}, "voters": voters,
    ...             "votes": votes, "valid": sum(votes.values()), "invalid": voters - sum(votes.values())}
    >>> out = [det.process_one(tally(i, 160 + i, {"01": 50, "02": 80 + i, "03": 20})) for i in range(1, 7)]
    >>> sum(len(o) for o in out)
    0
    >>> [(f.kind, f.severity) for f in det.process_one(tally(7, 250, {"01": 0, "02": 250, "03": 0}))]
    [('turnout_share', 'warning')]
    """

    name = "peer_outlier"
    version = "1"

    def __init__(self, state: MutableMapping[str, Any], min_peers: int = 5, neighbours: int = 12,
                 max_peers: int = 400, max_district_peers: int = 100, threshold: float = 5.0,
                 strong: float = 8.0, min_scale: float = 0.05,
                 cap: int | None = 300, reserve_rate: float = 0.02):
        if not min_scale > 0:
            raise ValueError(f"min_scale must be above 0 (a spread of 0 would divide by zero), not {min_scale}")
        self.state = state
        self.min_peers = min_peers
        self.neighbours = neighbours
        self.max_peers = max_peers
        self.max_district_peers = max_district_peers
        self.threshold = threshold
        self.strong = strong
        self.min_scale = min_scale
        self.cap = cap
        self.reserve_rate = reserve_rate

    def _figures(self, event: dict) -> tuple[float, dict[str, float]] | None:
        reg = registered_total(event.get("registered") or {})
        valid = int(event.get("valid") or 0)
        if reg <= 0 or valid <= 0:
            return None
        broken = {b.rule for b in check_tally(event, self.cap, self.reserve_rate)}
        if broken & {"sum_valid", "valid_invalid_voters", "dpt_zero"}:
            return None
        # Four decimals are far below sampling noise and halve the state written per tally.
        turnout = round(int(event["voters"]) / reg, 4)
        shares = {str(c): round(int(n) / valid, 4) for c, n in event["votes"].items()}
        return turnout, shares

    @staticmethod
    def _put(peers: list, row: list, max_peers: int) -> list:
        # A new revision of a TPS replaces its old row.
        peers = [p for p in peers if not (p[0] == row[0] and p[4] == row[4])] + [row]
        return peers[-max_peers:]

    @staticmethod
    def _by_contest(village: list) -> dict[str, tuple[list[int], list[tuple], Counter]]:
        """Per contest: the village's rows as ``(TPS number, TPS, position, row)`` sorted, their
        numbers, and how many rows each TPS has (one, unless the state is odd)."""
        out: dict[str, tuple[list[int], list[tuple], Counter]] = {}
        for j, p in enumerate(village):
            out.setdefault(p[4], ([], [], Counter()))[1].append((int(p[0][10:]), p[0], j, p))
        for nums, entries, codes in out.values():
            entries.sort(key=lambda e: (e[0], e[1], e[2]))
            nums.extend(e[0] for e in entries)
            codes.update(e[1] for e in entries)
        return out

    @staticmethod
    def _nearest(nums: list[int], entries: list[tuple], me: int, tps: str, k: int, selves: int = 1) -> list:
        """The ``k`` rows other than ``tps`` nearest to TPS number ``me``, by (distance, TPS code).

        The same rows as sorting all of them by that key, found from a window
        around ``me``: the window's ``k + selves`` or more entries hold ``k``
        others (``selves`` rows are ``tps``'s own, one in a sane state), and
        every row nearer than the farthest of them lies within its distance.
        """
        cand = entries
        if len(entries) > 4 * (k + selves) + 8:
            i = bisect.bisect_left(nums, me)
            lo, hi = max(0, i - k - selves), min(len(nums), i + k + selves)
            reach = max(abs(nums[lo] - me), abs(nums[hi - 1] - me))
            cand = entries[bisect.bisect_left(nums, me - reach):bisect.bisect_right(nums, me + reach)]
        # Ties of (distance, TPS) keep the village's order, as a stable sort would; rows are never compared.
        best = sorted([(abs(n - me), t, j, p) for n, t, j, p in cand if t != tps])[:k]  # = heapq.nsmallest
        return [p for _, _, _, p in best]

    def _judge(self, row: list, village: list, district: list, by_contest: dict | None = None) -> dict | None:
        tps, turnout, shares, _, contest, _ = row
        level, peers = None, []
        if by_contest is None:
            by_contest = self._by_contest(village)
        nums, entries, codes = by_contest.get(contest) or ([], [], Counter())
        if len(entries) - codes[tps] >= self.min_peers:
            # TPS numbers follow the RT/RW map, so the nearest numbers are the nearest neighbours:
            # a big urban village holds pockets that vote differently, and a TPS is judged by its pocket.
            me = int(tps[10:])
            level = "village"
            peers = self._nearest(nums, entries, me, tps, self.neighbours, codes[tps])
        else:
            d_peers = [p for p in district if p[0] != tps and p[4] == contest]
            if len(d_peers) >= self.min_peers:
                level, peers = "district", d_peers
        if level is None:
            return None
        measures = {"turnout": (turnout, [p[1] for p in peers])}
        for c, s in shares.items():
            measures[f"share.{c}"] = (s, [p[2].get(c, 0.0) for p in peers])
        # |z| >= threshold needs |x - median| >= threshold * scale >= threshold * min_scale: a TPS
        # within that of its peers' median on every measure is no outlier, whatever their spread
        # (most are; the margin keeps float rounding on the safe side).
        near = self.threshold * self.min_scale * (1.0 - 1e-9)
        if all(abs(x - _median(values)) < near for x, values in measures.values()):
            return None
        detail, worst = {}, 0.0
        for m, (x, values) in measures.items():
            z, med, scale = _robust_z(x, values, self.min_scale)
            if abs(z) >= self.threshold:
                detail[m] = {"seen": round(x, 4), "peer_median": round(med, 4), "robust_z": round(z, 2)}
            worst = max(worst, abs(z))
        if not detail:
            return None
        return {"level": level, "n_peers": len(peers), "outliers": detail, "max_abs_z": round(worst, 2)}

    def process_one(self, event: dict) -> list[Finding]:
        region = event.get("region") or {}
        tps = event["tps"]
        vcode = region.get("village") or tps[:10]
        dcode = region.get("district") or tps[:6]
        contest = event.get("contest", "")
        figs = self._figures(event)
        if figs is None:
            return []
        revision = int(event.get("revision") or 0)
        row = [tps, figs[0], figs[1], event["event_id"], contest, revision]
        vkey, dkey = f"v:{vcode}", f"d:{dcode}"
        vstate = self.state.get(vkey) or {"peers": [], "flagged": []}
        dstate = self.state.get(dkey) or {"peers": []}
        if any(p[0] == tps and p[4] == contest and p[5] > revision for p in vstate["peers"]):
            return []  # an older revision delivered late: the TPS's later figures stand
        village = self._put(vstate["peers"], row, self.max_peers)
        district = self._put(dstate["peers"], row, self.max_district_peers)

        out: list[Finding] = []
        flagged = set(vstate["flagged"])
        present = {f"{r[0]}|{r[4]}" for r in village}
        now_flagged = {k for k in flagged if k in present}
        # Only the new TPS's neighbourhood can change its verdict, plus what is flagged (it may resolve).
        me = int(tps[10:])
        near = heapq.nsmallest(2 * self.neighbours + 1, village, key=lambda r: (abs(int(r[0][10:]) - me), r[0]))
        todo = {f"{r[0]}|{r[4]}": r for r in near}
        todo.update({f"{r[0]}|{r[4]}": r for r in village if f"{r[0]}|{r[4]}" in flagged})
        by_contest = self._by_contest(village)
        for rkey, r in todo.items():
            verdict = self._judge(r, village, district, by_contest)
            if verdict is not None:
                # Re-judging an old TPS reports again only if it is the new tally or newly flagged.
                if r[0] == tps or rkey not in flagged:
                    out.append(self._finding(r, verdict, event, region))
                now_flagged.add(rkey)
            elif rkey in flagged:
                now_flagged.discard(rkey)
                out.append(Finding(
                    detector=self.name, key=rkey, severity="info", score=0.0, subject_kind="tps",
                    subject_id=r[0],
                    summary=f"TPS {r[0]} {r[4]} is in line with its peers now that more have reported.",
                    evidence={"model": self.name, "version": self.version},
                    event_ids=[r[3]], region=dict(region), occurred_at=_when(event), status="resolved",
                    kind="resolved"))
        now_flagged = sorted(now_flagged)
        self.state[vkey] = {"peers": village, "flagged": now_flagged}
        self.state[dkey] = {"peers": district}
        return out

    def _finding(self, row: list, verdict: dict, event: dict, region: dict) -> Finding:
        tps, contest = row[0], row[4]
        z = verdict["max_abs_z"]
        severity = "warning" if z >= self.strong else "info"
        outl = verdict["outliers"]
        kind = ("turnout_share" if "turnout" in outl and len(outl) > 1 else
                "turnout" if "turnout" in outl else "share")
        shown = "; ".join(f"{m} {d['seen']:.0%} vs median {d['peer_median']:.0%}" for m, d in outl.items())
        return Finding(
            detector=self.name, key=f"{tps}|{contest}", severity=severity,
            score=round(min(1.0, z / (2 * self.strong)), 3), subject_kind="tps", subject_id=tps,
            summary=(f"TPS {tps} {contest} stands out from {verdict['n_peers']} peer TPS "
                     f"in its {verdict['level']}: {shown}."),
            evidence={**verdict, "model": self.name, "version": self.version},
            event_ids=[row[3]], region=dict(region, village=tps[:10]), occurred_at=_when(event), kind=kind,
        )
