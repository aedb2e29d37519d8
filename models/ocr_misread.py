"""Suggest the one misread digit that would make an inconsistent tally consistent.

Sirekap read the handwritten C.Hasil forms with OCR, and in 2024 the typical
error was one digit: 177 read as 677, 152 as 652, or a stray leading digit
(48 read as 948). When a tally breaks its arithmetic and changing ONE figure by
ONE digit edit (change a digit, insert one, delete one) makes every rule hold,
the figure was most likely misread; the finding names the figure and proposes
the corrected value. Two-digit misreads (214 read as 713) are left to
:class:`models.tally_arithmetic.TallyArithmetic`, which flags them anyway.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from models.base import Finding
from models.tally_arithmetic import check_tally, registered_limit

__all__ = ["OcrMisread", "one_digit_edits"]


def one_digit_edits(value: int) -> list[tuple[int, str]]:
    """All non-negative integers one digit edit away from ``value``, with the edit's kind.

    Kinds: ``substitute`` (one digit changed), ``insert`` / ``delete`` (one digit
    added or removed; ``insert_leading`` / ``delete_leading`` at the front).
    Leading zeros are not allowed in the result.

    Examples
    --------
    >>> (677, "substitute") in one_digit_edits(177)
    True
    >>> (48, "delete_leading") in one_digit_edits(948)
    True
    >>> sorted(v for v, k in one_digit_edits(5) if k == "substitute")
    [0, 1, 2, 3, 4, 6, 7, 8, 9]
    """
    return list(_one_digit_edits(value))


@lru_cache(maxsize=4096)
def _one_digit_edits(value: int) -> tuple[tuple[int, str], ...]:
    # Tally figures are small numbers that repeat: cache the edits of each.
    s = str(value)
    found: dict[int, str] = {}

    def add(text: str, kind: str) -> None:
        if not text or (len(text) > 1 and text[0] == "0"):
            return
        v = int(text)
        if v != value and v not in found:
            found[v] = kind

    for i in range(len(s)):
        for d in "0123456789":
            if d != s[i]:
                add(s[:i] + d + s[i + 1:], "substitute")
    for i in range(len(s)):
        add(s[:i] + s[i + 1:], "delete_leading" if i == 0 else "delete")
    for i in range(len(s) + 1):
        for d in "0123456789":
            add(s[:i] + d + s[i:], "insert_leading" if i == 0 else "insert")
    return tuple(found.items())


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["submitted_at"])
    except (KeyError, TypeError, ValueError):
        return None


class OcrMisread:
    """Warnings with a corrected value for tallies that one digit edit makes consistent.

    Parameters
    ----------
    cap
        TPS voter cap (300 in 2024): a suggestion that leaves a candidate above
        it is ranked down.
    reserve_rate
        Reserve ballots as a share of DPT, as in ``TallyArithmetic``.
    max_suggestions
        How many ranked suggestions the evidence lists.

    Notes
    -----
    Figures tried: each candidate's votes, valid, invalid and voters. (DPT is not
    tried: a DPT of 0 is a missing page, not a misread, and any larger DPT would
    "fix" it.) A suggestion must make the sum and the valid + invalid = voters
    rules hold. Ranking, most plausible first: no candidate above the cap and
    voters within registered + reserve after the fix; the figure was itself
    impossible before (above the cap or above the valid votes); an edit of the
    leading digit (where handwriting is misread most); a smaller change.

    Examples
    --------
    >>> ev = {"event_id": "e1", "tps": "3173011005001", "contest": "PPWP", "revision": 0,
    ...       "region": {"province": "31"}, "registered": {"dpt": 280, "dptb": 0, "dpk": 0},
    ...       "voters": 233, "votes": {"01": 30, "02": 677, "03": 16}, "valid": 223, "invalid": 10}
    >>> [f] = OcrMisread().process_one(ev)
    >>> f.severity, f.evidence["suggestions"][0]["field"], f.evidence["suggestions"][0]["suggested"]
    ('warning', 'votes.02', 177)
    """

    name = "ocr_misread"
    version = "1"

    def __init__(self, cap: int | None = 300, reserve_rate: float = 0.02, max_suggestions: int = 5):
        self.cap = cap
        self.reserve_rate = reserve_rate
        self.max_suggestions = max_suggestions

    def suggestions(self, event: dict) -> list[dict]:
        """Ranked single-digit fixes that make the tally's sum and voter rules hold (empty if none)."""
        broken = {b.rule for b in check_tally(event, self.cap, self.reserve_rate)}
        if not broken & {"sum_valid", "valid_invalid_voters", "candidate_cap", "voters_registered"}:
            return []
        votes = {str(k): int(v) for k, v in event["votes"].items()}
        valid, invalid, voters = int(event["valid"]), int(event["invalid"]), int(event["voters"])
        limit = registered_limit(event.get("registered") or {}, self.reserve_rate)
        has_dpt = int((event.get("registered") or {}).get("dpt") or 0) > 0

        figures: list[tuple[str, int]] = [(f"votes.{c}", n) for c, n in votes.items()]
        figures += [("valid", valid), ("invalid", invalid), ("voters", voters)]
        out = []
        total = sum(votes.values())
        for field, seen in figures:
            is_vote = field.startswith("votes.")
            for new, kind in one_digit_edits(seen):
                # The sum and voter rules after the edit, from the totals: most edits fail
                # here, before any copy is made.
                if is_vote:
                    ok = total - seen + new == valid and valid + invalid == voters
                elif field == "valid":
                    ok = total == new and new + invalid == voters
                elif field == "invalid":
                    ok = total == valid and valid + new == voters
                else:
                    ok = total == valid and valid + invalid == new
                if not ok:
                    continue
                v2, val2, inv2, vot2 = dict(votes), valid, invalid, voters
                if is_vote:
                    v2[field[6:]] = new
                elif field == "valid":
                    val2 = new
                elif field == "invalid":
                    inv2 = new
                else:
                    vot2 = new
                if sum(v2.values()) != val2 or val2 + inv2 != vot2:
                    continue
                within_cap = self.cap is None or max(v2.values(), default=0) <= self.cap
                within_reg = (not has_dpt) or vot2 <= limit
                was_impossible = (field.startswith("votes.") and
                                  ((self.cap is not None and seen > self.cap) or seen > valid))
                leading = kind.endswith("_leading") or (kind == "substitute" and str(seen)[0] != str(new)[0])
                plaus = (0.4 * within_cap + 0.3 * within_reg + 0.15 * was_impossible + 0.1 * leading
                         + 0.05 / (1 + abs(new - seen) / 100))
                out.append({"field": field, "seen": seen, "suggested": new, "edit": kind,
                            "plausibility": round(plaus, 3),
                            "consistent_after": within_cap and within_reg})
        out.sort(key=lambda s: (-s["plausibility"], s["field"], s["suggested"]))
        return out

    def process_one(self, event: dict) -> list[Finding]:
        sugg = self.suggestions(event)
        if not sugg:
            return []
        tps, contest = event["tps"], event.get("contest", "")
        best = sugg[0]
        # Several equally plausible fixes are a weaker hint than a single one.
        ties = sum(1 for s in sugg if s["plausibility"] == best["plausibility"])
        score = round(best["plausibility"] / ties, 3)
        also = f" ({len(sugg) - 1} other single-digit fixes listed)" if len(sugg) > 1 else ""
        return [Finding(
            detector=self.name, key=f"{tps}|{contest}|ocr", severity="warning", score=score,
            subject_kind="tps", subject_id=tps,
            summary=(f"TPS {tps} {contest}: {best['field']} = {best['seen']} looks misread; "
                     f"{best['suggested']} would make the tally consistent{also}."),
            evidence={"suggestions": sugg[: self.max_suggestions], "n_suggestions": len(sugg),
                      "revision": int(event.get("revision") or 0),
                      "model": self.name, "version": self.version},
            event_ids=[event["event_id"]], region=event.get("region"), occurred_at=_when(event),
            kind="single_digit_fix",
        )]
