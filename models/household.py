"""Family cards (NKK) with implausibly many voters, or many registrations in a short time.

An Indonesian household averages about 3.9 people (BPS), of whom some are
children, so a family card (kartu keluarga) normally carries two to five
voters. Large families exist, but a dozen *adult* voters on one card is rare,
and more than twenty is beyond any family: it points at a placeholder NKK or
bulk registrations hung on one card. Many additions to one card within an hour
is the same signature caught as it happens.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from models.base import Finding
from models.privacy import keyed_hash

__all__ = ["Household"]


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return None


class Household:
    """Warnings and critical findings for family cards with too many voters or a burst of additions.

    Parameters
    ----------
    secret
        Key of the HMAC on which households (and their members) are keyed: an
        NKK is personal data and never stored or shown raw.
    state
        ``MutableMapping`` keyed ``keyed_hash(secret, nkk)``: ``{"count": active
        members, "members": [short member hashes], "adds": [epoch seconds of
        recent additions]}``. Assigned back.
    warn_members
        More active members than this is a ``warning`` (12: three times a
        large family's adults).
    critical_members
        More than this is ``critical`` (20: no family card holds that many adults).
    burst_count, burst_seconds
        More than ``burst_count`` additions within ``burst_seconds`` is a
        ``warning`` (10 in one hour). During coklit an officer registers a whole
        household in one visit, so a burst as big as a large family is normal:
        with 6, the simulator's legitimate households (up to 9 voters, all
        added within minutes) raised 39 false bursts out of about 8,000 cards.
    max_tracked
        Member hashes kept per card; beyond that only the count grows, so a
        card abused for thousands of registrations stays small in state.

    Notes
    -----
    Members are recognised by a short keyed hash of their NIK, so a re-sent or
    updated record of a member already counted does not count twice, and a
    removal takes the member out. An ``update`` counts as joining the card it
    names (the card it left is not known). Records without an NKK are skipped.

    Examples
    --------
    >>> det = Household(b"k", {}, warn_members=3, critical_members=5, burst_count=6)
    >>> def reg(i, minute=0, action="add"):
    ...     return {"event_id": f"e{i}", "occurred_at": f"2023-05-01T10:{minute:02d}:00+07:00", "action": action,
    ...             "voter": {"nik": f"32730145019000{i:02d}", "nkk": "3273010101230001", "name": "x"},
    ...             "region": {"province": "32"}}
    >>> [det.process_one(reg(i, minute=10 * i)) for i in range(1, 4)]
    [[], [], []]
    >>> [(f.kind, f.severity, f.evidence["active_members"]) for f in det.process_one(reg(4, minute=50))]
    [('too_many_members', 'warning', 4)]
    >>> det.process_one(reg(4, minute=55, action="remove"))
    []
    """

    name = "household"
    version = "1"

    def __init__(self, secret: bytes, state: MutableMapping[str, Any], warn_members: int = 12,
                 critical_members: int = 20, burst_count: int = 10, burst_seconds: float = 3600.0,
                 max_tracked: int = 64):
        self.secret = secret
        self.state = state
        self.warn_members = warn_members
        self.critical_members = critical_members
        self.burst_count = burst_count
        self.burst_seconds = burst_seconds
        self.max_tracked = max_tracked

    def process_one(self, event: dict) -> list[Finding]:
        voter = event.get("voter") or {}
        nkk = (voter.get("nkk") or "").strip()
        if not nkk:
            return []
        hkey = keyed_hash(self.secret, "nkk:" + nkk)
        member = keyed_hash(self.secret, "nik:" + str(voter.get("nik") or ""))[:16]
        st = self.state.get(hkey) or {"count": 0, "members": [], "adds": []}
        count, members, adds = st["count"], list(st["members"]), list(st["adds"])
        when = _when(event)
        action = event.get("action")
        out: list[Finding] = []

        if action == "remove":
            if member in members:
                members.remove(member)
                count -= 1
            elif count > len(members):
                count -= 1  # an untracked member (beyond max_tracked) left
            self.state[hkey] = {"count": max(count, 0), "members": members, "adds": adds}
            return []

        if member in members:
            new = False
        elif len(members) < self.max_tracked:
            new = True
            members.append(member)
        else:
            new = action == "add"  # untracked overflow: only a fresh addition is surely a new member
        if new:
            count += 1
            if when is not None and action == "add":
                t = when.timestamp()
                adds = [a for a in adds if t - a <= self.burst_seconds] + [t]
                adds = adds[-(self.burst_count + 1):]
        self.state[hkey] = {"count": count, "members": members, "adds": adds}
        if not new:
            return []

        region = event.get("region")
        subject = f"nkk:{hkey[:16]}"
        if count > self.warn_members:
            severity = "critical" if count > self.critical_members else "warning"
            limit = self.critical_members if severity == "critical" else self.warn_members
            out.append(Finding(
                detector=self.name, key=f"{hkey}|size", severity=severity,
                score=round(min(1.0, count / (2 * self.critical_members)), 3),
                subject_kind="household", subject_id=subject,
                summary=f"Family card {subject} now has {count} active voters (more than {limit}).",
                evidence={"active_members": count, "warn_members": self.warn_members,
                          "critical_members": self.critical_members, "model": self.name, "version": self.version},
                event_ids=[event["event_id"]], region=region, occurred_at=when, kind="too_many_members",
            ))
        if len(adds) > self.burst_count and adds[-1] - adds[0] <= self.burst_seconds:
            start, end = (datetime.fromtimestamp(adds[0], tz=when.tzinfo), when)
            out.append(Finding(
                detector=self.name, key=f"{hkey}|burst", severity="warning",
                score=round(min(1.0, len(adds) / (2 * self.burst_count)), 3),
                subject_kind="household", subject_id=subject,
                summary=(f"Family card {subject}: {len(adds)} voters added within "
                         f"{(adds[-1] - adds[0]) / 60:.0f} minutes."),
                evidence={"additions": len(adds), "within_seconds": adds[-1] - adds[0],
                          "burst_count": self.burst_count, "burst_seconds": self.burst_seconds,
                          "model": self.name, "version": self.version},
                event_ids=[event["event_id"]], region=region, occurred_at=when, window=(start, end),
                kind="burst",
            ))
        return out
