"""The same NIK registered more than once, and one NIK used by different people.

Events are keyed by NIK, so in the worker every registration of one NIK lands
on the same partition and this detector sees all of them. Its index maps
``keyed_hash(secret, nik)`` to the NIK's active registrations, each with the
little it needs to tell one person from another (normalised name, birth date,
sex) and where it is (TPS and region codes). The raw NIK is never stored.

Besides :class:`NikDuplicateDetector`, this module holds the small person-field
helpers both duplicate detectors share (NIK birth segment, date relations,
placeholder NIKs).

Examples
--------
>>> index = {}
>>> det = NikDuplicateDetector(index, secret=b"k")
>>> def reg(eid, tps, name, region="3273"):
...     return {"event_id": eid, "occurred_at": "2026-01-05T10:00:00+07:00", "action": "add",
...             "voter": {"nik": "3273014501900001", "name": name, "birth_date": "1990-01-05", "sex": "P"},
...             "region": {"province": region[:2], "regency": region}, "tps": tps}
>>> det.process_one(reg("e1", "3273010001001", "Siti Aminah"))
[]
>>> [(f.detector, f.event_ids) for f in det.process_one(reg("e2", "3201020002005", "Hj. Siti Aminah", "3201"))]
[('duplicate_nik', ['e2', 'e1'])]
>>> [(f.detector, f.kind) for f in det.process_one(reg("e3", "3201020002006", "Budi Santoso", "3201"))]
[('nik_conflict', 'different_person')]
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any

from models.base import Finding
from models.names import name_similarity, normalise_name
from models.privacy import keyed_hash, mask_nik

__all__ = [
    "NikDuplicateDetector",
    "nik_birth",
    "date_relation",
    "is_placeholder_nik",
    "clean_date",
    "clean_sex",
]

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def clean_date(value: Any) -> str | None:
    """``YYYY-MM-DD`` if ``value`` looks like one, else ``None``.

    >>> clean_date("1990-01-05"), clean_date(""), clean_date("05/01/1990")
    ('1990-01-05', None, None)
    """
    if not value or not isinstance(value, str):
        return None
    return _clean_date(value)


@lru_cache(maxsize=8192)
def _clean_date(value: str) -> str | None:
    # Birth dates repeat a lot (and one record asks several times): cache the parse.
    m = _DATE_RE.match(value.strip())
    if not m or not (1 <= int(m.group(2)) <= 12 and 1 <= int(m.group(3)) <= 31):
        return None
    return value.strip()


def clean_sex(value: Any) -> str | None:
    """``"L"``, ``"P"`` or ``None``."""
    return value if value in ("L", "P") else None


def nik_birth(nik: str | None) -> tuple[str, str] | None:
    """Birth date (``YYMMDD``) and sex encoded in a NIK (digits 7-12, day + 40 for women).

    Returns ``None`` for a NIK that is not 16 digits or whose date is impossible.

    Examples
    --------
    >>> nik_birth("3273014501900001")
    ('900105', 'P')
    >>> nik_birth("3273010501900001")
    ('900105', 'L')
    >>> nik_birth("2222222222222222") is None
    True
    """
    if not nik or len(nik) != 16 or not nik.isdigit():
        return None
    dd, mm, yy = int(nik[6:8]), int(nik[8:10]), nik[10:12]
    sex = "L"
    if dd > 40:
        dd -= 40
        sex = "P"
    if not (1 <= dd <= 31 and 1 <= mm <= 12):
        return None
    return f"{yy}{mm:02d}{dd:02d}", sex


def is_placeholder_nik(nik: str | None) -> bool:
    """A NIK typed to get past a form: repeated digits, a counting run, zeros after the region.

    >>> [is_placeholder_nik(n) for n in ["2222222222222222", "1234567890123456", "3273000000000000", "3273014501900001"]]
    [True, True, True, False]
    """
    if not nik:
        return False
    n = str(nik)
    if len(set(n)) <= 2:
        return True
    if len(n) >= 8 and (n in "12345678901234567890" or n in "98765432109876543210"):
        return True
    return len(n) == 16 and n[6:] == "0" * 10


def date_relation(a: str | None, b: str | None) -> str:
    """How two ``YYYY-MM-DD`` dates relate: ``equal``, ``swap`` (day and month
    exchanged), ``typo`` (one digit off, two neighbouring digits exchanged as in
    19 / 20 or 01 / 10, or a day one off), ``part`` (one other wrong part: year,
    month or day), ``missing`` (either unknown) or ``differ`` (two or three
    parts wrong, and not a swap). Both duplicate detectors use it, and the
    person detector runs it for most block members: written for speed.

    >>> [date_relation("1990-03-04", x) for x in ["1990-03-04", "1990-04-03", "1990-03-07", None, "1985-11-20"]]
    ['equal', 'swap', 'typo', 'missing', 'differ']
    >>> [date_relation("1990-03-19", x) for x in ["1990-03-20", "1990-11-19", "1991-03-19"]]
    ['typo', 'part', 'typo']
    >>> date_relation("1954-01-28", "1954-10-28"), date_relation("1945-07-03", "1945-70-03")
    ('typo', 'typo')
    """
    if not a or not b:
        return "missing"
    if a == b:
        return "equal"
    cy, cm, cd = a[:4] != b[:4], a[5:7] != b[5:7], a[8:10] != b[8:10]
    if cy + cm + cd >= 2:
        return "swap" if not cy and a[5:7] == b[8:10] and a[8:10] == b[5:7] else "differ"
    if cy + cm + cd == 1 and len(a) == len(b) == 10 and a[4] == b[4] and a[7] == b[7]:
        # All the differing digits lie in the one wrong part: what the general
        # case below finds, read from that part alone (most block members of a
        # common name get here).
        if cy:
            x, y = a[:4], b[:4]
            d = [i for i in range(4) if x[i] != y[i]]
            return "typo" if len(d) == 1 or (len(d) == 2 and d[1] == d[0] + 1 and x[d[0]] == y[d[1]]
                                             and x[d[1]] == y[d[0]]) else "part"
        x, y = (a[8:10], b[8:10]) if cd else (a[5:7], b[5:7])
        if x[0] == y[0] or x[1] == y[1] or (x[0] == y[1] and x[1] == y[0]):
            return "typo"
        return "typo" if cd and x.isdigit() and y.isdigit() and abs(int(x) - int(y)) == 1 else "part"
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        if len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                              and a[diff[1]] == b[diff[0]]):
            return "typo"  # one digit, or two neighbouring digits exchanged (10 / 01)
    if cd and a[8:10].isdigit() and b[8:10].isdigit() and abs(int(a[8:10]) - int(b[8:10])) == 1:
        return "typo"
    return "part"


def _fingerprint(event: dict) -> dict:
    v = event.get("voter") or {}
    r = event.get("region") or {}
    return {
        "e": event["event_id"],
        "t": event.get("tps"),
        "p": r.get("province"),
        "k": r.get("regency"),
        "v": r.get("village"),
        "n": normalise_name(v.get("name")),
        "d": clean_date(v.get("birth_date")),
        "s": clean_sex(v.get("sex")),
    }


class NikDuplicateDetector:
    """Finds ``duplicate_nik`` (one person, one NIK, several active registrations)
    and ``nik_conflict`` (one NIK on clearly different people).

    Parameters
    ----------
    index
        ``MutableMapping`` from the NIK's keyed hash to ``{"r": [registrations],
        "x": [removed event ids]}`` (plain JSON). Values are always assigned
        back, never changed in place.
    secret
        Key of :func:`models.privacy.keyed_hash`.
    name_threshold
        From this name similarity on, two registrations of one NIK are the
        same person unless their birth dates (two or more parts wrong) or
        sexes disagree.
    conflict_name_threshold
        Below this name similarity two registrations of one NIK are different
        people, whatever the other fields say. Between it and
        ``name_threshold`` they are the same person only if the birth dates
        are equal or day and month swapped, and the sexes do not disagree: the
        shared NIK and birth date stand in for the agreeing address or
        household that :class:`~models.duplicate_person.PersonDuplicateDetector`
        asks of a name this weak (an abbreviated or reordered name, a replaced
        middle name).
    max_registrations
        Registrations kept per NIK (most recent). Bounds the value of a
        placeholder NIK that thousands of records share.
    max_tombstones
        Removed event ids remembered per NIK, so that a replayed ``add`` after
        its ``remove`` does not bring the registration back.
    model_version
        Reported in every finding's evidence.

    Examples
    --------
    Reprocessing the same event does not make it a duplicate of itself:

    >>> det = NikDuplicateDetector({}, b"k")
    >>> e = {"event_id": "a", "occurred_at": "2026-01-01T00:00:00+07:00", "action": "add",
    ...      "voter": {"nik": "3273010501900001", "name": "Budi"}, "region": {"province": "32"}, "tps": "3273010001001"}
    >>> det.process_one(e), det.process_one(e)
    ([], [])
    """

    def __init__(
        self,
        index: MutableMapping,
        secret: bytes,
        name_threshold: float = 0.7,
        conflict_name_threshold: float = 0.55,
        max_registrations: int = 16,
        max_tombstones: int = 16,
        model_version: str = "1",
    ):
        if not secret:
            raise ValueError("secret must be a non-empty bytes key for the NIK hash")
        self.index = index
        self.secret = secret
        if not 0.0 <= conflict_name_threshold <= name_threshold <= 1.0:
            raise ValueError("need 0 <= conflict_name_threshold <= name_threshold <= 1")
        self.name_threshold = name_threshold
        self.conflict_name_threshold = conflict_name_threshold
        self.max_registrations = max_registrations
        self.max_tombstones = max_tombstones
        self.model_version = model_version

    def nik_key(self, nik: str) -> str:
        """Index key of a NIK."""
        return keyed_hash(self.secret, str(nik))

    def compare(self, a: dict, b: dict) -> dict:
        """Field relations between two stored registrations of one NIK (no personal data)."""
        sim = name_similarity(a["n"].split(), b["n"].split()) if a["n"] and b["n"] else 0.0
        dob = date_relation(a["d"], b["d"])
        if a["s"] and b["s"]:
            sex = "equal" if a["s"] == b["s"] else "differ"
        else:
            sex = "missing"
        if sex == "differ" or sim < self.conflict_name_threshold:
            same = False
        elif sim >= self.name_threshold:
            same = dob != "differ"
        else:
            same = dob in ("equal", "swap")
        return {"event_id": b["e"], "name_similarity": sim, "birth_date": dob, "sex": sex, "same_person": same}

    def process_one(self, event: dict) -> list[Finding]:
        """Update the index with one ``registration.v1`` event; return findings."""
        voter = event.get("voter") or {}
        nik = voter.get("nik")
        if not nik:
            raise ValueError(f"registration {event.get('event_id')!r} has no voter.nik")
        key = self.nik_key(nik)
        entry = self.index.get(key) or {"r": [], "x": []}
        regs: list[dict] = list(entry.get("r", []))
        tomb: list[str] = list(entry.get("x", []))
        eid = event["event_id"]
        action = event.get("action", "add")

        if action == "remove":
            return self._remove(key, nik, event, regs, tomb)
        if eid in tomb:
            return []  # a replayed add/update whose registration was removed since
        pos = next((i for i, r in enumerate(regs) if r["e"] == eid), None)
        if pos is not None:
            # Reprocessing after a restart: the state already holds this event.
            # Re-derive the same findings against what was there before it.
            return self._findings(nik, key, event, regs[pos], regs[:pos])

        new = _fingerprint(event)
        if action == "update" and regs:
            target = self._update_target(regs, new)
            regs = regs[:target] + regs[target + 1:]
        others = regs
        regs = (regs + [new])[-self.max_registrations:]
        self.index[key] = {"r": regs, "x": tomb}
        return self._findings(nik, key, event, new, others)

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _update_target(regs: list[dict], new: dict) -> int:
        """Which registration an update replaces: same TPS, the only one, same village, the latest."""
        for i, r in enumerate(regs):
            if new["t"] and r["t"] == new["t"]:
                return i
        if len(regs) == 1:
            return 0
        for i, r in enumerate(regs):
            if new["v"] and r["v"] == new["v"]:
                return i
        return len(regs) - 1

    def _remove(self, key: str, nik: str, event: dict, regs: list[dict], tomb: list[str]) -> list[Finding]:
        tps = event.get("tps")
        gone = [r for r in regs if r["t"] == tps] if tps else list(regs)
        if not gone:
            return []
        keep = [r for r in regs if r not in gone]
        tomb = (tomb + [r["e"] for r in gone])[-self.max_tombstones:]
        self.index[key] = {"r": keep, "x": tomb}
        # A duplicate that the removal settles is resolved.
        if len(keep) <= 1 and len(regs) >= 2:
            pairs = [self.compare(regs[-1], r) for r in regs[:-1]]
            if any(p["same_person"] for p in pairs):
                return [Finding(
                    detector="duplicate_nik", key=key, severity="info", score=0.0,
                    subject_kind="voter", subject_id=mask_nik(nik),
                    summary=f"NIK {mask_nik(nik)} now has {len(keep)} active registration(s).",
                    evidence={"masked_nik": mask_nik(nik), "active_registrations": len(keep),
                              "removed_event_ids": [r["e"] for r in gone],
                              "model": "duplicate_nik", "version": self.model_version},
                    event_ids=[event["event_id"]] + [r["e"] for r in gone],
                    region=event.get("region"), status="resolved", kind="removed",
                )]
        return []

    def _findings(self, nik: str, key: str, event: dict, new: dict, others: list[dict]) -> list[Finding]:
        if not others:
            return []
        rels = [(o, self.compare(new, o)) for o in others]
        masked = mask_nik(nik)
        placeholder = is_placeholder_nik(nik)
        out: list[Finding] = []
        same = [(o, r) for o, r in rels if r["same_person"]]
        diff = [(o, r) for o, r in rels if not r["same_person"]]
        if same:
            other_region = any(o["k"] != new["k"] for o, _ in same)
            other_tps = any(o["t"] != new["t"] for o, _ in same)
            kind = "other_region" if other_region else ("other_tps" if other_tps else "same_tps")
            where = {"other_region": "in another regency", "other_tps": "at another TPS",
                     "same_tps": "twice at the same TPS"}[kind]
            out.append(Finding(
                detector="duplicate_nik", key=key,
                severity="critical" if other_region else "warning",
                score=1.0 if other_tps or other_region else 0.8,
                subject_kind="voter", subject_id=masked,
                summary=f"NIK {masked} is registered {where} ({len(same) + 1} active registrations).",
                evidence={
                    "masked_nik": masked,
                    "active_registrations": len(same) + 1,
                    "placeholder_nik": placeholder,
                    "registrations": [{"event_id": o["e"], "tps": o["t"], "regency": o["k"]} for o, _ in same],
                    "new": {"event_id": new["e"], "tps": new["t"], "regency": new["k"]},
                    "comparisons": [_public(r) for _, r in same],
                    "model": "duplicate_nik", "version": self.model_version,
                },
                event_ids=[new["e"]] + [o["e"] for o, _ in same],
                region=event.get("region"), kind=kind,
            ))
        if diff:
            worst = min(r["name_similarity"] for _, r in diff)
            disagree = any(r["birth_date"] == "differ" or r["sex"] == "differ" for _, r in diff)
            score = max(1.0 - worst, 0.9 if disagree else 0.0)
            kind = "placeholder" if placeholder else "different_person"
            out.append(Finding(
                detector="nik_conflict", key=key,
                severity="critical", score=round(min(score, 1.0), 4),
                subject_kind="voter", subject_id=masked,
                summary=(f"NIK {masked} is used by {len(diff) + 1} different people"
                         + (" (a placeholder NIK)." if placeholder else ".")),
                evidence={
                    "masked_nik": masked,
                    "placeholder_nik": placeholder,
                    "comparisons": [_public(r) for _, r in diff],
                    "model": "nik_conflict", "version": self.model_version,
                },
                event_ids=[new["e"]] + [o["e"] for o, _ in diff],
                region=event.get("region"), kind=kind,
            ))
        return out


def _public(rel: dict) -> dict:
    """A comparison as evidence: agreement flags and similarity only."""
    agreed = [f for f in ("birth_date", "sex") if rel[f] == "equal"]
    differed = [f for f in ("birth_date", "sex") if rel[f] == "differ"]
    return {"event_id": rel["event_id"], "name_similarity": rel["name_similarity"],
            "birth_date": rel["birth_date"], "sex": rel["sex"],
            "fields_agreed": agreed, "fields_differed": differed}
