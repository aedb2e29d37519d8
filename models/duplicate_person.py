"""The same person registered under different NIKs.

Every record gets a few **blocking keys** (birth date with day and month in
either order + sex + the sound of the first or the last name word; birth date
+ sex + regency; sex + the sounds of the first and last name words). Each key names a small block of recent records in the index;
a new record is compared only with its blocks' members. In the worker the
keys become Kafka message keys, so they are keyed hashes: no birth date or
name can be read from a topic.

A pair is described by a dict of **features** (similarities and agreement
flags only, never the values), and a River logistic regression, started from
hand-set prior coefficients, turns it into a probability. Staff verdicts on
alerts (``feedback.v1``) train it online through :meth:`learn_feedback`.

Birth date and sex must *agree*: a missing birth date counts against a match,
not as neutral, and so does a sex that is unknown on both sides. Common names
weigh less: a count-min sketch of normalised full names gives each pair a
``name_common`` feature in [0, 1].

Examples
--------
>>> det = PersonDuplicateDetector({}, secret=b"k")
>>> def reg(eid, nik, name, nkk="3273010101010001"):
...     return {"event_id": eid, "occurred_at": "2026-01-05T10:00:00+07:00", "action": "add",
...             "voter": {"nik": nik, "nkk": nkk, "name": name, "birth_place": "Bandung",
...                       "birth_date": "1990-01-05", "sex": "P", "marital_status": "S",
...                       "address": "Jl. Merdeka 5", "rt": "001", "rw": "002"},
...             "region": {"province": "32", "regency": "3273"}, "tps": "3273010001001"}
>>> det.process_one(reg("e1", "3273014501900001", "Hj. Dewi Ratnasari, S.Pd."))
[]
>>> [(f.detector, f.event_ids) for f in det.process_one(reg("e2", "3204014501900003", "Dewy Ratna Sari", nkk="3204010101010009"))]
[('duplicate_person', ['e2', 'e1'])]
>>> det.process_one(reg("e3", "3273014501900005", "Sri Wahyuni"))
[]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import MutableMapping
from typing import Any

import numpy as np
from rapidfuzz import fuzz
from river import linear_model, optim

from models.base import Finding
from models.duplicate_nik import clean_date, clean_sex, date_relation, nik_birth
from models.names import name_similarity, normalise_name, normalise_text, phonetic_token
from models.privacy import keyed_hash, mask_nik

__all__ = ["PersonDuplicateDetector", "PRIOR"]

# Prior log-odds coefficients, set by hand from what KPU staff look at: birth
# date and sex must agree, the name must be close, and at least one of birth
# place / address / household / NIK birth segment should back it up. A pair
# that differs on birth date gets none of the date weights, so the intercept
# keeps it far below any threshold.
PRIOR: dict[str, float] = {
    "intercept": -8.5,
    "name_close": 6.0,        # (name_sim - 0.8) / 0.2 clipped to [0, 1]
    "name_exact": 1.0,
    "name_common": -6.0,      # frequent names need more corroboration (Nurhayati)
    "dob_equal": 3.0,
    "dob_default": -1.5,      # 1 Jan / 1 Jul / 31 Dec: the civil registry's filler dates
    "dob_swap": 1.5,
    "dob_typo": 1.0,
    "dob_missing": -2.0,      # missing is not agreement
    "dob_differ": -8.0,
    "nik_birth_equal": 1.0,   # the NIKs' DDMMYY+sex segments agree ...
    "nik_birth_differ": -3.0,  # ... or do not
    "sex_equal": 0.5,
    "sex_missing": -1.0,
    "sex_differ": -6.0,
    "place_close": 1.5,
    "place_missing": -0.5,
    "place_differ": -4.0,
    "addr_close": 1.0,
    "rtrw_equal": 0.3,
    "nkk_equal": 0.5,
    "household_name_differs": -15.0,  # same NKK, names not quite equal: twins, siblings
    "marital_equal": 0.3,
    "disability_equal": 0.2,
    "same_regency": 0.5,
}

_DEFAULT_DATES = frozenset({"01-01", "07-01", "12-31"})
_COMMON_LEAD = frozenset({"MUHAMMAD", "SITI", "NUR", "SRI", "ABDUL", "AHMAD", "NI", "I", "PUTU", "MADE", "KADEK"})


def _clip01(x: float) -> float:
    return 0.0 if x < 0 else (1.0 if x > 1 else x)


class _CountMinSketch:
    """Bounded approximate counts of strings (normalised full names); holds no names."""

    def __init__(self, width: int, depth: int):
        self.width = width
        self.depth = depth
        self.table = np.zeros((depth, width), dtype=np.int32)
        self.total = 0

    def _cols(self, item: str) -> list[int]:
        d = hashlib.blake2b(item.encode(), digest_size=4 * self.depth).digest()
        return [int.from_bytes(d[4 * i: 4 * i + 4], "little") % self.width for i in range(self.depth)]

    def add(self, item: str) -> None:
        for row, col in enumerate(self._cols(item)):
            self.table[row, col] += 1
        self.total += 1

    def count(self, item: str) -> int:
        return int(min(self.table[row, col] for row, col in enumerate(self._cols(item))))


class PersonDuplicateDetector:
    """Finds ``duplicate_person``: one person registered under several NIKs.

    Parameters
    ----------
    index
        ``MutableMapping`` from a block key to a list of compact records (plain
        JSON lists, most recent last), plus ``"dpr:" + nik hash`` entries
        listing the blocks a NIK's record sits in (for updates and removals).
        Values are always assigned, never changed in place.
    secret
        Key for NIK, NKK and blocking-key hashes.
    max_candidates
        Records kept per block (most recent); bounds memory and work per record.
    threshold
        Probability from which a pair becomes a finding.
    min_name_similarity
        Pairs whose names are less alike are not scored at all: every KPU
        duplicate rule starts from the name, and no weight of agreeing birth
        date, address and household should make two names one person. Pairs
        whose birth dates are both known and differ (not swapped, not one
        digit apart) are not scored either, for the same reason.
    critical_threshold
        Probability from which the finding is ``critical`` (else ``warning``).
    learning_rate
        SGD step of the online scorer when learning from staff verdicts.
    prior
        Initial coefficients (``"intercept"`` and feature weights); defaults to
        :data:`PRIOR`. A saved :meth:`scorer_state` can be passed back here.
    sketch_width, sketch_depth
        Size of the count-min sketch of name frequencies.
    model_version
        Reported in findings.

    Examples
    --------
    Staff verdicts move the scorer:

    >>> det = PersonDuplicateDetector({}, b"k")
    >>> x = {"name_close": 1.0, "dob_equal": 1.0, "sex_equal": 1.0}
    >>> before = det.score(x)
    >>> for _ in range(20):
    ...     det.learn_feedback(x, is_duplicate=False)
    >>> det.score(x) < before
    True
    """

    def __init__(
        self,
        index: MutableMapping,
        secret: bytes,
        max_candidates: int = 64,
        threshold: float = 0.5,
        min_name_similarity: float = 0.8,
        critical_threshold: float = 0.9,
        learning_rate: float = 0.05,
        prior: dict[str, float] | None = None,
        sketch_width: int = 1 << 20,
        sketch_depth: int = 4,
        model_version: str = "1",
    ):
        if not secret:
            raise ValueError("secret must be a non-empty bytes key")
        self.index = index
        self.secret = secret
        self.max_candidates = max_candidates
        self.threshold = threshold
        self.min_name_similarity = min_name_similarity
        self.critical_threshold = critical_threshold
        self.learning_rate = learning_rate
        self.prior = dict(PRIOR if prior is None else prior)
        self.sketch_width = sketch_width
        self.sketch_depth = sketch_depth
        self.model_version = model_version

        self.model = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate),
            intercept_init=self.prior.get("intercept", 0.0),
            intercept_lr=learning_rate,
        )
        for name, w in self.prior.items():
            if name != "intercept":
                self.model._weights[name] = w  # River has no public setter for initial weights
        self.names = _CountMinSketch(sketch_width, sketch_depth)
        self._current: tuple | None = None  # (event, compact, keys) inside process_one

    # -- records and keys ------------------------------------------------------

    def _prepared(self, event: dict) -> tuple[list, list[str]]:
        """Compact record and blocking keys; computed once per ``process_one``, and
        once per record across :meth:`blocking_keys` and the ``match_in_block``
        calls of its blocks."""
        if self._current is not None and self._current[0] is event:
            return self._current[1], self._current[2]
        fp = _fingerprint(event)
        if fp is None:
            return self.compact(event), self._blocking_keys(event)
        last = self.__dict__.get("_last_compact")
        if last is not None and last[0] == fp:
            rec = list(last[1])
        else:
            rec = self.compact(event)
            self.__dict__["_last_compact"] = (fp, list(rec))
        return rec, self._keys_for(event, fp)

    def _keys_for(self, event: dict, fp: tuple) -> list[str]:
        last = self.__dict__.get("_last_keys")
        if last is not None and last[0] == fp:
            return list(last[1])
        keys = self._blocking_keys(event)
        self.__dict__["_last_keys"] = (fp, list(keys))
        return keys

    def compact(self, event: dict) -> list:
        """The record as stored in a block: hashes, normalised fields, no raw NIK/NKK."""
        v = event.get("voter") or {}
        r = event.get("region") or {}
        nik = str(v.get("nik") or "")
        nb = nik_birth(nik)
        nkk = v.get("nkk")
        dis = v.get("disability")
        return [
            event["event_id"],                                   # 0
            keyed_hash(self.secret, nik),                        # 1 NIK hash
            mask_nik(nik),                                       # 2
            normalise_name(v.get("name")),                       # 3
            clean_date(v.get("birth_date")),                     # 4
            clean_sex(v.get("sex")) or (nb[1] if nb else None),  # 5 sex, else from the NIK
            nb[0] if nb else None,                               # 6 NIK birth YYMMDD
            nb[1] if nb else None,                               # 7 NIK sex
            normalise_text(v.get("birth_place"))[:40],           # 8
            normalise_text(v.get("address"))[:80],               # 9
            f"{v.get('rt') or ''}/{v.get('rw') or ''}",         # 10
            keyed_hash(self.secret, "kk:" + nkk) if nkk else None,  # 11 NKK hash
            v.get("marital_status") or None,                     # 12
            None if dis in (None, "", "0") else str(dis),        # 13
            r.get("regency"),                                    # 14
        ]

    def blocking_keys(self, event: dict) -> list[str]:
        """A few bounded block keys for a record, as keyed hashes safe for Kafka keys.

        Birth date comes from the record, else from the NIK; day and month are
        put in sorted order so a swapped date shares the block.

        Examples
        --------
        >>> det = PersonDuplicateDetector({}, b"k")
        >>> e = {"event_id": "e", "voter": {"nik": "3273014501900001", "name": "Siti Aminah",
        ...      "birth_date": "1990-01-05", "sex": "P"}, "region": {"province": "32", "regency": "3273"}}
        >>> keys = det.blocking_keys(e)
        >>> len(keys), all(k.startswith("dp:") and len(k) == 35 for k in keys)
        (4, True)
        >>> any("1990" in k or "SITI" in k for k in keys)
        False
        """
        fp = _fingerprint(event)
        return self._blocking_keys(event) if fp is None else self._keys_for(event, fp)

    def _blocking_keys(self, event: dict) -> list[str]:
        v = event.get("voter") or {}
        nik = str(v.get("nik") or "")
        nb = nik_birth(nik)
        dob = clean_date(v.get("birth_date"))
        if dob:
            yy, a, b = dob[2:4], dob[5:7], dob[8:10]
        elif nb:
            yy, a, b = nb[0][:2], nb[0][2:4], nb[0][4:6]
        else:
            yy = a = b = "?"
        date_key = f"{yy}{min(a, b)}{max(a, b)}"
        sex = clean_sex(v.get("sex")) or (nb[1] if nb else "?")
        toks = normalise_name(v.get("name")).split()
        # A leading MUHAMMAD / SITI / NUR says little and is often dropped or
        # abbreviated: the name keys start after it.
        core = toks[1:] if len(toks) > 1 and toks[0] in _COMMON_LEAD else toks
        raw = []
        if toks:
            # Written together or apart (Ratna Sari / Ratnasari) sounds the same.
            raw.append(f"f|{date_key}|{sex}|{phonetic_token(''.join(core))[:2]}")
            raw.append(f"l|{date_key}|{sex}|{phonetic_token(core[-1])}")
        regency = (event.get("region") or {}).get("regency") or "?"
        raw.append(f"r|{yy}{a}{b}|{sex}|{regency}")
        if toks:
            # No date: catches birth-date typos; for common names this block
            # fills up and keeps only the most recent, which is accepted.
            ends = sorted((phonetic_token(core[0]), phonetic_token(core[-1])))
            raw.append(f"n|{sex}|{ends[0]}|{ends[1]}")
        out: list[str] = []
        for k in raw:
            h = "dp:" + keyed_hash(self.secret, k)
            if h not in out:  # one-word names give the same first and last key
                out.append(h)
        return out

    # -- features and scoring --------------------------------------------------

    def name_commonness(self, norm_name: str) -> float:
        """log10 of how many records carry this full name, over 4: 0 for a name
        seen once, 0.5 for a hundred, 1 from ten thousand.

        The absolute count, not the share, is what matters: it is the number
        of namesakes one of whom may share a birth date by chance.
        """
        if not norm_name:
            return 0.0
        return round(_clip01(math.log10(max(self.names.count(norm_name), 1)) / 4.0), 4)

    def features(self, a: list, b: list, sim: float | None = None) -> dict[str, float]:
        """Features of a pair of compact records: similarities and flags, no values."""
        x: dict[str, float] = {}
        if sim is None:
            sim = name_similarity(a[3].split(), b[3].split()) if a[3] and b[3] else 0.0
        x["name_sim"] = sim
        x["name_close"] = round(_clip01((sim - 0.8) / 0.2), 4)
        x["name_exact"] = float(bool(a[3]) and a[3] == b[3])
        x["name_common"] = max(self.name_commonness(a[3]), self.name_commonness(b[3]))
        rel = date_relation(a[4], b[4])
        for r in ("equal", "swap", "typo", "missing", "differ"):
            x[f"dob_{r}"] = float(rel == r)
        x["dob_default"] = float(rel == "equal" and a[4][5:] in _DEFAULT_DATES)
        both_nik = a[6] is not None and b[6] is not None
        x["nik_birth_equal"] = float(both_nik and a[6] == b[6] and a[7] == b[7])
        x["nik_birth_differ"] = float(both_nik and not x["nik_birth_equal"])
        if a[5] and b[5]:
            x["sex_equal"], x["sex_missing"], x["sex_differ"] = float(a[5] == b[5]), 0.0, float(a[5] != b[5])
        else:
            x["sex_equal"], x["sex_missing"], x["sex_differ"] = 0.0, 1.0, 0.0
        if a[8] and b[8]:
            place = fuzz.ratio(a[8], b[8]) / 100
            # Place names are short: Jakarta / Yogyakarta are 0.82 alike and different.
            x["place_close"] = round(_clip01((place - 0.8) / 0.2), 4)
            x["place_missing"], x["place_differ"] = 0.0, float(place < 0.85)
        else:
            x["place_close"], x["place_missing"], x["place_differ"] = 0.0, 1.0, 0.0
        if a[9] and b[9]:
            x["addr_close"] = round(_clip01((fuzz.token_set_ratio(a[9], b[9]) / 100 - 0.5) / 0.5), 4)
            x["addr_missing"] = 0.0
        else:
            x["addr_close"], x["addr_missing"] = 0.0, 1.0
        x["rtrw_equal"] = float(a[10] != "/" and a[10] == b[10])
        if a[11] and b[11]:
            x["nkk_equal"], x["nkk_missing"] = float(a[11] == b[11]), 0.0
        else:
            x["nkk_equal"], x["nkk_missing"] = 0.0, 1.0
        # Twins and siblings share the NKK and differ a little in name; a
        # re-entered person in the same household differs by a typo at most.
        # Twins are far more common than a household member re-entered under
        # a new NIK with a misspelt name, so inside one NKK the names must be
        # equal after normalisation (a married-name suffix costs a little).
        ta, tb = set(a[3].split()), set(b[3].split())
        subset = bool(ta and tb) and (ta < tb or tb < ta)  # a married name adds words
        x["household_name_differs"] = 0.0 if subset else round(x["nkk_equal"] * _clip01((0.97 - sim) / 0.07), 4)
        x["marital_equal"] = float(bool(a[12]) and a[12] == b[12])
        x["disability_equal"] = float(a[13] == b[13])
        x["same_regency"] = float(bool(a[14]) and a[14] == b[14])
        return x

    def score(self, features: dict[str, float]) -> float:
        """Probability that a pair with these features is one person."""
        x = {k: v for k, v in features.items() if k != "name_sim"}
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def learn_feedback(self, features: dict[str, float], is_duplicate: bool) -> None:
        """Learn from a staff verdict on a pair (the ``features`` of its finding's evidence)."""
        x = {k: float(v) for k, v in features.items() if k != "name_sim"}
        self.model.learn_one(x, bool(is_duplicate))

    def scorer_state(self) -> dict[str, float]:
        """Current coefficients, JSON-serialisable; pass back as ``prior`` to restore."""
        state = dict(self.model.weights)
        state["intercept"] = float(self.model.intercept)
        return state

    # -- matching --------------------------------------------------------------

    def match_in_block(self, block_key: str, event: dict) -> list[Finding]:
        """Compare a record with one block's candidates, then store it in the block.

        ``update`` replaces the NIK's earlier record in the block, ``remove``
        takes it out. Reprocessing an event already in the block compares it
        with the records stored before it and changes nothing.
        """
        rec, keys = self._prepared(event)
        action = event.get("action", "add")
        block: list = list(self.index.get(block_key) or [])
        if action == "remove":
            kept = [c for c in block if c[1] != rec[1]]
            if len(kept) != len(block):
                self._store(block_key, kept)
            return []
        pos = next((i for i, c in enumerate(block) if c[0] == rec[0]), None)
        if pos is not None:
            return self._compare(rec, block[:pos], event)
        if action == "update":
            block = [c for c in block if c[1] != rec[1]]
        if keys and keys[0] == block_key:
            self.names.add(rec[3])  # count each record once, on its first block
        findings = self._compare(rec, block, event)
        self._store(block_key, (block + [rec])[-self.max_candidates:])
        return findings

    def process_one(self, event: dict) -> list[Finding]:
        """All blocks of one record (replay and tests); each pair reported once."""
        rec, keys = self.compact(event), self.blocking_keys(event)
        self._current = (event, rec, keys)
        try:
            return self._process(event, rec, keys)
        finally:
            self._current = None

    def _process(self, event: dict, rec: list, keys: list[str]) -> list[Finding]:
        rkey = "dpr:" + rec[1]
        previous = list(self.index.get(rkey) or [])
        action = event.get("action", "add")
        if action in ("update", "remove"):
            # The old record may sit in blocks the new field values no longer name.
            for old in previous:
                if old not in keys:
                    self.match_in_block(old, {**event, "action": "remove"})
        seen: dict[str, Finding] = {}
        for k in (keys if action != "remove" else list(dict.fromkeys(keys + previous))):
            for f in self.match_in_block(k, event):
                g = seen.get(f.key)
                if g is None:
                    seen[f.key] = f
                    continue
                # Same pair of NIKs (found in another block, or the other NIK
                # has several registrations): one finding, all event ids.
                best, other = (f, g) if f.score > g.score else (g, f)
                best.event_ids = list(dict.fromkeys(best.event_ids + other.event_ids[1:]))
                seen[f.key] = best
        if action == "remove":
            if rkey in self.index:
                del self.index[rkey]
        elif sorted(previous) != sorted(keys):
            self.index[rkey] = keys
        return list(seen.values())

    # -- helpers ---------------------------------------------------------------

    def _store(self, block_key: str, block: list) -> None:
        if block:
            self.index[block_key] = block
        elif block_key in self.index:
            del self.index[block_key]

    def _compare(self, rec: list, candidates: list, event: dict) -> list[Finding]:
        out = []
        toks = rec[3].split()
        for c in candidates:
            if c[1] == rec[1] or c[0] == rec[0]:
                continue  # same NIK is duplicate_nik's business; never match oneself
            # The name gate first: most block members have another name, and
            # the other features cost ten times more.
            if date_relation(rec[4], c[4]) == "differ":
                continue  # two known birth dates, neither equal, swapped nor one digit apart
            sim = name_similarity(toks, c[3].split()) if toks and c[3] else 0.0
            if sim < self.min_name_similarity:
                continue
            x = self.features(rec, c, sim)
            p = self.score(x)
            if p >= self.threshold:
                out.append(self._finding(rec, c, x, p, event))
        return out

    def _finding(self, rec: list, cand: list, x: dict, p: float, event: dict) -> Finding:
        agreed, differed = _field_agreement(x)
        pair = sorted((rec[1], cand[1]))
        return Finding(
            detector="duplicate_person",
            key=f"{pair[0]}:{pair[1]}",
            severity="critical" if p >= self.critical_threshold else "warning",
            score=round(p, 4),
            subject_kind="voter",
            subject_id=rec[2],
            summary=(f"Registration {rec[2]} looks like the same person as {cand[2]} under another NIK "
                     f"(score {p:.2f}; agreed: {', '.join(agreed) or 'none'})."),
            evidence={
                "score": round(p, 4),
                "features": x,
                "fields_agreed": agreed,
                "fields_differed": differed,
                "masked_niks": [rec[2], cand[2]],
                "model": "duplicate_person",
                "version": self.model_version,
            },
            event_ids=[rec[0], cand[0]],
            region=event.get("region"),
            kind="other_nik",
        )


def _fingerprint(event: dict) -> tuple | None:
    """Everything :meth:`PersonDuplicateDetector.compact` and ``blocking_keys`` read from an
    event (with types: 1 == 1.0 == True, but their f-strings differ), or None if unhashable."""
    try:
        v = event.get("voter") or {}
        g = v.get
        vals = (event.get("event_id"), (event.get("region") or {}).get("regency"), g("nik"), g("name"),
                g("birth_date"), g("sex"), g("birth_place"), g("address"), g("rt"), g("rw"), g("nkk"),
                g("marital_status"), g("disability"))
        fp = (vals, tuple(map(type, vals)))
        hash(fp)
    except (TypeError, AttributeError):
        return None
    return fp


def _field_agreement(x: dict) -> tuple[list[str], list[str]]:
    """KPU's elements that agreed / differed, from a feature dict."""
    agreed, differed = [], []

    def put(name: str, ok: bool, missing: bool) -> None:
        if not missing:
            (agreed if ok else differed).append(name)

    put("name", x["name_sim"] >= 0.85, False)
    put("birth_date", x["dob_equal"] == 1.0, x["dob_missing"] == 1.0)
    put("sex", x["sex_equal"] == 1.0, x["sex_missing"] == 1.0)
    put("birth_place", x["place_close"] >= 0.75, x["place_missing"] == 1.0)
    put("address", x["addr_close"] >= 0.75, x["addr_missing"] == 1.0)
    put("nkk", x["nkk_equal"] == 1.0, x["nkk_missing"] == 1.0)
    put("marital_status", x["marital_equal"] == 1.0, False)
    put("disability", x["disability_equal"] == 1.0, False)
    return agreed, differed
