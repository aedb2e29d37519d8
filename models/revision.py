"""Later revisions of a TPS tally that change its figures.

Sirekap let operators re-upload a C.Hasil (revision 1, 2, ...), mostly to fix
OCR misreads. Every change to the numbers after the first upload is worth a
look, and the finding shows exactly which figures moved, old -> new.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from models.base import Finding
from models.tally_arithmetic import check_tally

__all__ = ["Revision", "figures_of"]


def figures_of(event: dict) -> dict[str, int | None]:
    """The tally's figures as a flat ``{name: value}`` dict (``votes.01``, ``registered.dpt``, ...).

    Examples
    --------
    >>> figures_of({"registered": {"dpt": 10, "dptb": None}, "voters": 5, "valid": 5, "invalid": 0,
    ...             "votes": {"01": 2, "02": 3}})
    {'registered.dpt': 10, 'registered.dptb': None, 'registered.dpk': None, 'voters': 5, 'valid': 5, 'invalid': 0, 'votes.01': 2, 'votes.02': 3}
    """
    reg = event.get("registered") or {}
    out: dict[str, int | None] = {f"registered.{k}": reg.get(k) for k in ("dpt", "dptb", "dpk")}
    for k in ("voters", "valid", "invalid"):
        out[k] = event.get(k)
    for c in sorted(event.get("votes") or {}):
        out[f"votes.{c}"] = event["votes"][c]
    return out


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["submitted_at"])
    except (KeyError, TypeError, ValueError):
        return None


class Revision:
    """Findings for revisions that change a tally's figures.

    Parameters
    ----------
    state
        ``MutableMapping`` keyed ``tps|contest``; the value is the latest
        revision seen: ``{"revision", "figures", "event_id"}``. Values are
        assigned back, never mutated in place.
    cap, reserve_rate
        As in ``TallyArithmetic``: used to tell a correction (the old figures
        broke the arithmetic, the new ones do not) from a change to a tally
        that was already consistent.

    Notes
    -----
    * A revision with the same figures is not a finding.
    * Severity: ``info`` for a correction that makes an impossible tally
      consistent (what revisions are for), ``warning`` for any other change.
    * A revision older than the latest one seen (delivered out of order) never
      overwrites the state and is not compared, since the later revision has
      already superseded it. The same revision number arriving again with
      different figures is a ``warning`` (``conflicting_revision``).
    * Key ``tps|contest``: one alert per tally sheet, updated at every further
      change; the evidence carries the revisions compared.

    Examples
    --------
    >>> state = {}
    >>> det = Revision(state)
    >>> ev = {"event_id": "e1", "tps": "3173011005001", "contest": "PPWP", "revision": 0,
    ...       "registered": {"dpt": 280, "dptb": 0, "dpk": 0}, "voters": 233,
    ...       "votes": {"01": 30, "02": 677, "03": 16}, "valid": 223, "invalid": 10}
    >>> det.process_one(ev)
    []
    >>> [f] = det.process_one(dict(ev, event_id="e2", revision=1, votes={"01": 30, "02": 177, "03": 16}))
    >>> f.severity, f.evidence["changes"]
    ('info', {'votes.02': [677, 177]})
    """

    name = "revision"
    version = "1"

    def __init__(self, state: MutableMapping[str, Any], cap: int | None = 300, reserve_rate: float = 0.02):
        self.state = state
        self.cap = cap
        self.reserve_rate = reserve_rate

    def process_one(self, event: dict) -> list[Finding]:
        tps, contest = event["tps"], event.get("contest", "")
        key = f"{tps}|{contest}"
        revision = int(event.get("revision") or 0)
        figures = figures_of(event)
        prev = self.state.get(key)
        if prev is None:
            self.state[key] = {"revision": revision, "figures": figures, "event_id": event["event_id"]}
            return []
        if revision < prev["revision"]:
            return []  # out of order: the later revision already replaced this one
        old = prev["figures"]
        changes = {k: [old.get(k), figures.get(k)] for k in sorted(set(old) | set(figures))
                   if old.get(k) != figures.get(k)}
        if revision > prev["revision"] or changes:
            self.state[key] = {"revision": revision, "figures": figures, "event_id": event["event_id"]}
        if not changes:
            return []

        if revision == prev["revision"]:
            kind, severity, score = "conflicting_revision", "warning", 0.8
            what = f"revision {revision} arrived twice with different figures"
        else:
            old_event = _unflatten(old)
            was_broken = bool(check_tally(old_event, self.cap, self.reserve_rate))
            now_broken = bool(check_tally(event, self.cap, self.reserve_rate))
            if was_broken and not now_broken:
                kind, severity, score = "correction", "info", 0.3
            else:
                kind, severity, score = "change", "warning", 0.6
            what = f"revision {revision} changed revision {prev['revision']}"
        shown = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in list(changes.items())[:6])
        more = f" and {len(changes) - 6} more" if len(changes) > 6 else ""
        return [Finding(
            detector=self.name, key=key, severity=severity, score=score,
            subject_kind="tps", subject_id=tps,
            summary=f"TPS {tps} {contest}: {what}: {shown}{more}.",
            evidence={"from_revision": prev["revision"], "to_revision": revision, "changes": changes,
                      "previous_event_id": prev["event_id"], "model": self.name, "version": self.version},
            event_ids=[event["event_id"], prev["event_id"]], region=event.get("region"),
            occurred_at=_when(event), kind=kind,
        )]


def _unflatten(figures: dict) -> dict:
    ev: dict[str, Any] = {"registered": {}, "votes": {}}
    for k, v in figures.items():
        if k.startswith("registered."):
            ev["registered"][k[11:]] = v
        elif k.startswith("votes."):
            ev["votes"][k[6:]] = v
        else:
            ev[k] = v
    return ev
