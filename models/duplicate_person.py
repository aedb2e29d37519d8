"""The same person registered under different NIKs.

Every record gets up to six **blocking keys**, each built to survive one
corrupted field: birth date (day and month in either order) + sex + the start,
the end or the last word of the name's sound; exact birth date + sex +
regency; birth year + sex + the start of the sound; sex + the sounds of the
first and last name words. Each key
names a small block of recent records in the index; a new record is compared
only with its blocks' members. In the worker the keys become Kafka message
keys, so they are keyed hashes: no birth date or name can be read from a topic.

A pair is described by a dict of **features** (similarities and agreement
flags only, never the values), and a River logistic regression turns it into a
probability. It starts from :data:`PRIOR`: hand-set coefficients
(:data:`HAND_PRIOR`) updated offline on a labelled training population
(``bench.duplicates_eval --learn-prior``). Staff verdicts on alerts
(``feedback.v1``) train it online through :meth:`learn_feedback`.

NIKs are never stored, only keyed hashes. A personal number of another list
in the NIK field (not 16 digits) also leaves short keyed hashes of its
one-deletion variants, so that two numbers one typed character apart are
recognised (``nik_near``) without either being readable. A source without
NIK, sex, birth place or household (another list) is scored as its own
regime (``no_id_fields``), where a shared address is evidence.

Birth date and sex must *agree*: a missing birth date counts against a match,
not as neutral, and so does an unknown sex. Other unknown fields are no
evidence either way (+1 agree, -1 differ, 0 unknown). Common names weigh less:
a count-min sketch of normalised full names gives each pair a ``name_common``
feature in [0, 1]; the same sketch counts name words, so that a rare spelling
next to an established name reads as a misspelling (a re-entry) and two
established names as two people (twins).

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
import itertools
import math
import re
import struct
from collections.abc import Callable, MutableMapping
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz
from river import linear_model, optim

from models.base import Finding
from models.duplicate_nik import clean_date, clean_sex, date_relation, nik_birth
from models.names import name_similarity, normalise_name, normalise_text, phonetic_token
from models.privacy import keyed_hash, mask_nik

__all__ = ["PersonDuplicateDetector", "PRIOR", "HAND_PRIOR"]

# Log-odds coefficients set by hand from what KPU staff look at: birth date
# and sex must agree, the name must be close, and at least one of birth place /
# address / household / NIK birth segment should back it up. The starting point
# (and the centre of the penalty) of the offline fit that gives PRIOR.
HAND_PRIOR: dict[str, float] = {
    "intercept": -7.5,
    "name_close": 6.0,        # (name_sim - 0.8) / 0.2 clipped to [0, 1]
    "name_exact": 1.0,
    "name_weak": -6.0,        # (0.8 - name_sim) / 0.25: a weaker name needs other fields behind it
    "name_common": -6.0,      # frequent names need more corroboration (Nurhayati)
    "dob_equal": 3.0,
    "dob_default": -1.5,      # 1 Jan / 1 Jul / 31 Dec: the civil registry's filler dates
    "dob_swap": 1.5,
    "dob_typo": 1.0,
    "dob_part": -4.0,         # one of year, month, day wrong
    "dob_missing": -2.0,      # missing is not agreement
    "dob_differ": -8.0,
    "dob_nik_cross": 2.0,     # the typed date of one is the NIK date of the other
    "nik_birth_agree": 2.0,   # the NIKs' DDMMYY+sex segments agree (+1) or not (-1)
    "sex_agree": 3.0,
    "sex_missing": -1.0,
    "place_agree": 2.5,
    "addr_close": 1.0,
    "addr_close_other_kk": 2.0,
    "rtrw_equal": 0.3,
    "nkk_equal": 0.5,
    "household_name_differs": -15.0,  # same NKK, names not quite equal: twins, siblings
    "household_typo": 0.0,
    "variant_rare": 0.5,
    "marital_agree": 0.3,
    "disability_agree": 0.2,
    "same_regency": 0.5,
    "no_id_fields": 0.0,
    # Another list's personal numbers (not NIKs: see _near_id_hashes) one
    # typed character apart: a 7-digit number has ~70 such neighbours in ten
    # million, so by chance almost never; e^4 is conservative. The training
    # population has no such numbers, so the fit keeps this value.
    "nik_near": 4.0,
    # A source without NIK, sex, birth place or household (another list):
    # no household explains a shared address, so it is evidence there. Not
    # fitted (the training population has households, where it is not): a
    # judgement, full address agreement (with the regency) worth e^5, about
    # what one chance agreement in 150 among people who already share a
    # name and a birth date gives.
    "noid_addr": 4.0,
    "noid_same_regency": 1.0,
}

# The shipped prior: HAND_PRIOR updated by a labelled TRAINING population
# (seed 11; the evaluation uses seed 7), printed by
#   .venv/bin/python -m bench.duplicates_eval --learn-prior 11
# A maximum a posteriori logistic fit (Gaussian penalty pulling each weight
# towards its hand value, agreement weights kept >= 0 and disagreement weights
# <= 0), with the intercept then lowered until the training pairs reach
# precision 0.985. Weights the training data cannot move (features that never
# vary there) keep their hand value; a weight at 0.0 is one the data would
# have pushed across zero (no evidence in this population).
PRIOR: dict[str, float] = {
    "intercept": -15.96,
    "addr_close": 0.0,
    "addr_close_other_kk": 0.0,
    "disability_agree": 3.25,
    "dob_default": -1.19,
    "dob_differ": -8.0,
    "dob_equal": 6.19,
    "dob_missing": -4.52,
    "dob_nik_cross": 7.03,
    "dob_part": -3.87,
    "dob_swap": 0.0,
    "dob_typo": 0.0,
    "household_name_differs": -13.38,
    "household_typo": 2.36,
    "marital_agree": 1.32,
    "name_close": 7.46,
    "name_common": -5.03,
    "name_exact": 0.41,
    "name_weak": -6.01,
    "nik_birth_agree": 0.18,
    "nik_near": 4.0,
    "nkk_equal": 1.16,
    "no_id_fields": 5.8,
    "noid_addr": 4.0,
    "noid_same_regency": 1.0,
    "place_agree": 2.89,
    "rtrw_equal": 0.32,
    "same_regency": 0.0,
    "sex_agree": 3.0,
    "sex_missing": -1.0,
    "variant_rare": 5.07,
}

# Recorded in a finding's features for the reader, not scored: an unknown
# birth place, address or household is no evidence either way.

# Features of the previous version; a saved scorer state holding them is not reused.
_RETIRED = frozenset({"place_close", "place_differ", "sex_equal", "sex_differ", "nik_birth_equal", "nik_birth_differ",
                      "marital_equal", "disability_equal"})
# Features added since: a state saved before them gets their PRIOR weights
# (verdicts on KPU records never moved them; without this they would be 0).
_ADDED = ("nik_near", "noid_addr", "noid_same_regency")
_UNSCORED = frozenset({"name_sim", "place_missing", "addr_missing", "nkk_missing", "nik_missing", "marital_missing"})
_WEAKEST_NAME = 0.55  # below this no agreement of other fields makes two names one person
_VOWELS = frozenset("AEIOU")
_DEFAULT_DATES = frozenset({"01-01", "07-01", "12-31"})
_DOB_KEYS = tuple((r, "dob_" + r) for r in ("equal", "swap", "typo", "part", "missing", "differ"))
#: Records whose compact form and blocking keys are remembered, the most recent (~2.8 kB
#: each). The routed blocks of one record reach its partitions' agents among those of a
#: few hundred others when the worker keeps up, of thousands when it works off a backlog
#: (each partition's routes are read in turn): 1,024 then missed most of the time.
PREPARED_MEMO = 8192
_COMMON_LEAD = frozenset({"MUHAMMAD", "SITI", "NUR", "SRI", "ABDUL", "AHMAD", "NI", "I", "PUTU", "MADE", "KADEK"})


_GLUED_LEAD = ("MUHAMAD", "ABDUL", "AHMAD", "SITI", "NUR", "SRI")  # as squeezed, longest first
_DOUBLED = re.compile(r"(.)\1+")


def _name_core(toks: list[str]) -> tuple[str, str, str]:
    """(The name written together, its first word, its last word) after a leading
    MUHAMMAD / SITI / NUR / ..., which says little and is often dropped,
    abbreviated or written together with the next word (Sitidiana).

    >>> _name_core(["SITI", "DIANA"]) == _name_core(["SITIDIANA"]) == ("DIANA", "DIANA", "DIANA")
    True
    >>> _name_core(["RATNA", "SARI"])
    ('RATNASARI', 'RATNA', 'SARI')
    """
    words = toks[1:] if len(toks) > 1 and toks[0] in _COMMON_LEAD else toks
    joined = _DOUBLED.sub(r"\1", "".join(words))
    for lead in _GLUED_LEAD:
        if joined.startswith(lead) and len(joined) >= len(lead) + 3:
            joined = joined[len(lead):]
            break
    if len(words) == 1:
        return joined, joined, joined
    return joined, words[0], words[-1]


def _clip01(x: float) -> float:
    return 0.0 if x < 0 else (1.0 if x > 1 else x)


@lru_cache(maxsize=8_192)
def _sketch_cols(item: str, width: int, depth: int) -> tuple[int, ...]:
    # The columns depend on the string alone, and a record's names and the
    # common names of its blocks come back in every pair: hash each once.
    words = struct.unpack(f"<{depth}I", hashlib.blake2b(item.encode(), digest_size=4 * depth).digest())
    return tuple(x % width for x in words)


_DELTA_HEADER = struct.Struct("<4sII")  # magic, width, depth
_DELTA_MAGIC = b"cms1"


class _CountMinSketch:
    """Bounded approximate counts of strings (normalised full names); holds no names.

    With ``journal`` on, every :meth:`add` also notes the cells it raised, so
    that another process's sketch can add the same counts (:meth:`drain`,
    :meth:`merge`): the cells are numbers, not names.
    """

    def __init__(self, width: int, depth: int):
        self.width = width
        self.depth = depth
        self.table = np.zeros((depth, width), dtype=np.int32)
        self.total = 0
        self.journal: list[int] | None = None

    def _cols(self, item: str) -> tuple[int, ...]:
        return _sketch_cols(item, self.width, self.depth)

    def add(self, item: str) -> None:
        cols = self._cols(item)
        for row, col in enumerate(cols):
            self.table[row, col] += 1
        self.total += 1
        if self.journal is not None:
            width = self.width
            self.journal.extend(row * width + col for row, col in enumerate(cols))

    def drain(self, max_items: int | None = None) -> bytes:
        """The cells raised since the last drain, as bytes (empty if none); at most
        ``max_items`` items' cells, the rest kept for the next drain."""
        if not self.journal:
            return b""
        if max_items is None or max_items * self.depth >= len(self.journal):
            cells, self.journal = self.journal, []
        else:
            n = max(1, max_items) * self.depth
            cells, self.journal = self.journal[:n], self.journal[n:]
        return _DELTA_HEADER.pack(_DELTA_MAGIC, self.width, self.depth) + np.asarray(cells, "<u4").tobytes()

    def merge(self, *deltas: bytes) -> int:
        """Add the counts of other sketches' :meth:`drain`; returns the items added.

        Nothing is added unless every delta is well formed.
        """
        parts = [self._cells(d) for d in deltas if d]
        if not parts:
            return 0
        cells = parts[0] if len(parts) == 1 else np.concatenate(parts)
        flat = self.table.reshape(-1)
        if cells.size * 8 >= flat.size:
            # One pass over the whole table beats scattered adds from here on
            # (a worker reading every worker's counts back after a restart).
            flat += np.bincount(cells, minlength=flat.size).astype(flat.dtype)
        else:
            np.add.at(flat, cells, 1)
        items = cells.size // self.depth
        self.total += items
        return items

    def _cells(self, delta: bytes) -> np.ndarray:
        if len(delta) < _DELTA_HEADER.size:
            raise ValueError("not a name-count delta: too short")
        magic, width, depth = _DELTA_HEADER.unpack_from(delta)
        if magic != _DELTA_MAGIC or (width, depth) != (self.width, self.depth):
            raise ValueError(f"name-count delta of another shape ({magic!r}, {width}x{depth}); "
                             f"this sketch is {self.width}x{self.depth}")
        body = memoryview(delta)[_DELTA_HEADER.size:]
        if len(body) % (4 * depth):
            raise ValueError("name-count delta truncated")
        cells = np.frombuffer(body, "<u4")
        if cells.size and int(cells.max()) >= width * depth:
            raise ValueError("name-count delta names a cell outside the sketch")
        return cells

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
        A pair whose names are at least this alike is scored when its birth
        dates do not plainly differ (equal, swapped, one digit or one day
        apart, one part wrong, missing, or one record's date is the other's
        NIK date). A pair with weaker names (down to 0.55) is scored only if
        the names share a word, birth date and sex agree, and two of address,
        regency, household and birth place agree. Personal numbers of
        another list (not NIKs) one typed character apart stand in for all
        of that (and for a far birth date). Below 0.55 nothing is
        scored: every KPU duplicate rule starts from the name. Within one
        block, a member whose household (NKK) holds a clearly closer name is
        skipped: the record is that member's, and this one is their twin or
        sibling. The gates also keep the cost per record bounded.
    critical_threshold
        Probability from which the finding is ``critical`` (else ``warning``).
    learning_rate
        SGD step of the online scorer when learning from staff verdicts.
    prior
        Initial coefficients (``"intercept"`` and feature weights); defaults to
        :data:`PRIOR`. A saved :meth:`scorer_state` can be passed back here
        (one saved by the earlier feature set, before ``place_agree`` and
        friends, is ignored: its weights name features no longer computed; one
        saved before ``nik_near`` and the ``noid_*`` features gets
        :data:`PRIOR`'s weights for them).
    sketch_width, sketch_depth
        Size of the count-min sketch of name frequencies.
    model_version
        Reported in findings.

    Examples
    --------
    Staff verdicts move the scorer:

    >>> det = PersonDuplicateDetector({}, b"k")
    >>> x = {"name_close": 1.0, "dob_equal": 1.0, "sex_agree": 1.0}
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
        if prior is not None and _RETIRED.intersection(prior):
            # Saved by the earlier feature set (verdicts learned on features no
            # longer computed): its weights would score today's features wrongly.
            prior = None
        self.prior = dict(PRIOR if prior is None else prior)
        for name in _ADDED:
            self.prior.setdefault(name, PRIOR[name])
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
        self._verdicts = 0  # verdicts learned: a remembered score holds while this stays

    # -- records and keys ------------------------------------------------------

    def _prepared(self, event: dict) -> tuple[list, list[str]]:
        """Compact record and blocking keys; computed once per ``process_one``, and
        once per record across :meth:`blocking_keys` and the ``match_in_block``
        calls of its blocks.

        In the worker a record's blocks arrive as separate routed events, mixed
        with other records' (one message per partition carries many records):
        the last :data:`PREPARED_MEMO` records are remembered, not only the last.
        """
        if self._current is not None and self._current[0] is event:
            return self._current[1], self._current[2]
        fp = _fingerprint(event)
        if fp is None:
            return self.compact(event), self._blocking_keys(event)
        hit = self._memo_prepared(fp)
        if hit[0] is None:
            hit[0] = self.compact(event)
        return list(hit[0]), self._keys_for(event, hit)

    def _keys_for(self, event: dict, hit: list) -> list[str]:
        """The blocking keys of ``event``, kept in its memo entry (:meth:`_memo_prepared`)."""
        if hit[1] is None:
            hit[1] = self._blocking_keys(event)
        return list(hit[1])

    def _memo_prepared(self, fp: tuple) -> list:
        """[compact record or None, blocking keys or None] remembered for a fingerprint."""
        memo = self.__dict__.setdefault("_prepared_memo", {})
        hit = memo.get(fp)
        if hit is None:
            if len(memo) >= PREPARED_MEMO:
                del memo[next(iter(memo))]  # the oldest: a record's blocks come within a few thousand others'
            hit = memo[fp] = [None, None]
        return hit

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
            _comparable_date(v.get("birth_date")),               # 4
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
            _near_id_hashes(self.secret, nik),                   # 15 one-edit variants of a non-NIK number, hashed
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
        (8, True)
        >>> any("1990" in k or "SITI" in k for k in keys)
        False
        """
        fp = _fingerprint(event)
        return self._blocking_keys(event) if fp is None else self._keys_for(event, self._memo_prepared(fp))

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
        if f"{a}-{b}" in _DEFAULT_DATES or f"{b}-{a}" in _DEFAULT_DATES:
            # A filler date (the day unknown at registration) says little: at 10 M voters
            # the blocks of a name's sound on it fill with namesakes from everywhere and
            # forget the older ones. A person keeps their birth place when they move.
            place = normalise_text(v.get("birth_place")).split()
            date_key += "|" + (phonetic_token(place[-1]) if place else "?")
        sex = clean_sex(v.get("sex")) or (nb[1] if nb else "?")
        toks = normalise_name(v.get("name")).split()
        regency = (event.get("region") or {}).get("regency") or "?"
        raw = [f"r|{yy}{a}{b}|{sex}|{regency}"]  # name typos anywhere, if they stayed put
        if toks:
            core, first, last = _name_core(toks)
            code, p_first, p_last = phonetic_token(core), phonetic_token(first), phonetic_token(last)
            # Written together or apart (Ratna Sari / Ratnasari) sounds the same;
            # the start and the end of the sound, so that one typo leaves one intact.
            raw.append(f"f|{date_key}|{sex}|{code[:2]}")
            raw.append(f"s|{date_key}|{sex}|{code[-3:]}")
            raw.append(f"l|{date_key}|{sex}|{p_last}")
            # A corrupted day, month or year: the other two parts of the date,
            # and the start of the sound (survives spacing and an added married
            # name). Three small blocks rather than one of the birth year: a
            # year's block fills at scale and forgets older voters.
            raw.append(f"m|{yy}{a}|{sex}|{code[:3]}")
            if yy != "?":
                raw.append(f"d|{yy}{b}|{sex}|{code[:3]}")
                raw.append(f"b|{a}{b}|{sex}|{code[:3]}")
            # No date at all: birth-date typos in the year too. For common
            # names this block fills up and keeps only the most recent, which
            # is accepted. (Year + last word and regency + last word were
            # tried: on the own evaluation and FEBRL 1-3 they found no pair
            # that another key did not, at a third more cost per record.)
            ends = sorted((p_first, p_last))
            raw.append(f"n|{sex}|{ends[0]}|{ends[1]}")
        out: list[str] = []
        for k in raw:
            h = "dp:" + keyed_hash(self.secret, k)
            if h not in out:  # one-word names give the same first and last key
                out.append(h)
        return out

    # -- name counts shared between processes -----------------------------------

    def share_name_counts(self) -> None:
        """From now on, note each name counted, for :meth:`name_count_delta`.

        A worker counts only the records of its own partitions, in memory; to
        weigh a name by the whole list, and again after a restart, workers
        exchange these deltas (the worker sends its own and merges everyone
        else's).

        Examples
        --------
        >>> a, b = PersonDuplicateDetector({}, b"k"), PersonDuplicateDetector({}, b"k")
        >>> a.share_name_counts()
        >>> for i in range(3):
        ...     _ = a.process_one({"event_id": f"e{i}", "voter": {"nik": f"327301450190000{i}",
        ...         "name": "Siti Aminah", "birth_date": f"199{i}-01-05", "sex": "P"}})
        >>> b.merge_name_counts(a.name_count_delta())
        9
        >>> b.name_commonness("SITI AMINAH") == a.name_commonness("SITI AMINAH") > 0
        True
        >>> a.name_count_delta()
        b''
        """
        if self.names.journal is None:
            self.names.journal = []

    def name_count_delta(self, max_items: int | None = None) -> bytes:
        """Sketch cells raised since the last call (numbers, no names); ``b""`` if none.

        ``max_items`` bounds one delta's size (16 bytes an item with the default
        depth); what is left comes with the next call.
        """
        return self.names.drain(max_items)

    def merge_name_counts(self, *deltas: bytes) -> int:
        """Add other processes' :meth:`name_count_delta`; returns the names and words added.

        Raises ``ValueError``, adding nothing, if one of them is of another
        sketch size (a worker with other ``sketch_width`` or ``sketch_depth``)
        or bytes that are not a delta. Many at once are cheaper than one by one.
        """
        return self.names.merge(*deltas)

    @property
    def name_count_items(self) -> int:
        """Names and name words counted so far (this process's and merged ones)."""
        return self.names.total

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

    def token_count(self, token: str) -> int:
        """Approximate number of records with this normalised name word."""
        return self.names.count("t:" + token)

    def _variant_evidence(self, ta: list[str], tb: list[str], counts: dict) -> tuple[float, float]:
        """(rarity, sibling) of the one word in which two names differ.

        ``rarity`` is how much less often the rarer spelling has been seen than
        the other, log10 of the ratio over 2 (0 when both are established
        names, ~1 when one spelling is a hundred times rarer): a misspelling is
        rare next to the name it misspells; twins and siblings carry real
        names (Putra / Putri, Hasan / Husein). ``sibling`` is 1 when the two
        words differ only in a final vowel (Putra / Putri, Rizki / Rizka), the
        usual way Indonesian parents name twins and siblings alike.
        """
        da, db = [t for t in ta if t not in tb], [t for t in tb if t not in ta]
        if len(da) != 1 or len(db) != 1:
            return 0.0, 0.0
        wa, wb = da[0], db[0]
        for w in (wa, wb):  # ``counts``: word counts already read (the sketch does not change meanwhile)
            if w not in counts:
                counts[w] = max(self.token_count(w), 1)
        ca, cb = counts[wa], counts[wb]
        rarity = round(_clip01(math.log10(max(ca, cb) / min(ca, cb)) / 2.0), 4)
        sibling = float(len(wa) == len(wb) > 2 and wa[:-1] == wb[:-1] and wa[-1] in _VOWELS and wb[-1] in _VOWELS)
        return rarity, sibling

    def features(self, a: list, b: list, sim: float | None = None, slip: bool | None = None) -> dict[str, float]:
        """Features of a pair of compact records: similarities and flags, no values.

        Unknown fields are no evidence either way (``*_missing`` flags are
        recorded for the alert, not scored), except birth date and sex: they
        must agree, and a missing one counts against a match.
        """
        if sim is None:
            sim = name_similarity(a[3].split(), b[3].split()) if a[3] and b[3] else 0.0
        return self._features(a, b, sim, slip, date_relation(a[4], b[4]),
                              max(self.name_commonness(a[3]), self.name_commonness(b[3])), {})

    def _features(self, a: list, b: list, sim: float, slip: bool | None, rel: str, common: float,
                  counts: dict) -> dict[str, float]:
        # features() with the parts _compare already has (name similarity,
        # date relation, the larger name commonness, its memo of word counts) passed in.
        x: dict[str, float] = {}
        ta, tb = a[3].split(), b[3].split()
        x["name_sim"] = sim
        x["name_close"] = round(_clip01((sim - 0.8) / 0.2), 4)
        x["name_weak"] = round(_clip01((0.8 - sim) / 0.25), 4)  # below the usual gate: needs support
        x["name_exact"] = float(bool(a[3]) and a[3] == b[3])
        x["name_common"] = common
        for r, key in _DOB_KEYS:
            x[key] = float(rel == r)
        x["dob_default"] = float(rel == "equal" and a[4][5:] in _DEFAULT_DATES)
        # A typed birth date that disagrees with the other record's but equals
        # the date in the other NIK: a slip in the form, not another person.
        x["dob_nik_cross"] = float(rel not in ("equal", "missing") and _nik_cross(a, b))
        # Fields that are either known on both sides or not: +1 agree, -1
        # differ, 0 unknown, so that an unknown field sits halfway between
        # agreement and disagreement whatever the intercept learned on data
        # where it is always known.
        both_nik = a[6] is not None and b[6] is not None
        x["nik_birth_agree"] = 0.0 if not both_nik else (
            1.0 if a[6] == b[6] and a[7] == b[7] else -1.0)
        x["nik_missing"] = float(not both_nik)
        if a[5] and b[5]:
            x["sex_agree"], x["sex_missing"] = (1.0 if a[5] == b[5] else -1.0), 0.0
        else:
            # Sex is evidence that must agree: unknown on a side costs on its own (sex_missing).
            x["sex_agree"], x["sex_missing"] = 0.0, 1.0
        x["place_agree"], x["place_missing"] = _place_agree(a, b), float(not (a[8] and b[8]))
        x["addr_close"], x["addr_missing"] = _addr_close(a, b), float(not (a[9] and b[9]))
        x["rtrw_equal"] = float(a[10] != "/" and a[10] == b[10])
        x["nkk_equal"], x["nkk_missing"] = float(_same_household(a, b)), float(not (a[11] and b[11]))
        # One address says more when no shared household explains it (family
        # members share both); a different NKK or address is no evidence
        # against (people move), so these only count for a match.
        x["addr_close_other_kk"] = round(x["addr_close"] * (1.0 - x["nkk_equal"]), 4)
        # A source without NIK, sex and birth place (another list, FEBRL) is its own regime.
        x["no_id_fields"] = float(bool(x["nik_missing"] and x["sex_missing"] and x["place_missing"]))
        # There no household number tells a family from one person, and the
        # address is what is left to back a name and a birth date: it has its
        # own weights in that regime (set by hand, see HAND_PRIOR).
        x["noid_addr"] = round(x["addr_close"] * x["no_id_fields"], 4)
        x["nik_near"] = float(_near_slip(a, b) if slip is None else slip)
        # Twins and siblings share the NKK and differ a little in name; a
        # re-entered person in the same household differs by a misspelling.
        # What tells them apart is whether the differing word is a real name
        # (seen about as often as the other) or a rare variant of it.
        sa, sb = set(ta), set(tb)
        subset = bool(sa and sb) and (sa < sb or sb < sa)  # a married name adds words
        differs = 0.0 if subset else x["nkk_equal"] * _clip01((0.97 - sim) / 0.07)
        rarity, sibling = self._variant_evidence(ta, tb, counts)
        typo_like = rarity * (1.0 - sibling)
        x["variant_rare"] = round(typo_like, 4)
        x["household_name_differs"] = round(differs * (1.0 - typo_like), 4)
        x["household_typo"] = round(differs * typo_like, 4)
        # +1 agree, -1 differ, 0 unknown on either side: unknown sits halfway.
        x["marital_missing"] = float(not (a[12] and b[12]))
        x["marital_agree"] = 0.0 if not (a[12] and b[12]) else (1.0 if a[12] == b[12] else -1.0)
        x["disability_agree"] = 0.0 if not (a[13] or b[13]) else (1.0 if a[13] == b[13] else -1.0)
        x["same_regency"] = float(_same_regency(a, b))
        x["noid_same_regency"] = x["same_regency"] * x["no_id_fields"]
        return x

    def score(self, features: dict[str, float]) -> float:
        """Probability that a pair with these features is one person."""
        x = features.copy()  # the same keys in the same order as a comprehension, five times faster
        for k in _UNSCORED:
            x.pop(k, None)
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def _scorer_version(self) -> tuple[int, int]:
        """Changes whenever the scorer's weights may have: what remembered scores are checked against."""
        return id(self.model), self._verdicts

    def _weights_now(self) -> tuple[dict[str, float], float]:
        """The scorer's weights and intercept as plain numbers, read once per verdict."""
        key = self._scorer_version()
        cached = self.__dict__.get("_weights_cache")
        if cached is None or cached[0] != key:
            cached = (key, dict(self.model.weights), float(self.model.intercept))
            self.__dict__["_weights_cache"] = cached
        return cached[1], cached[2]

    def _logit_ceiling(self, a: list, b: list, sim: float, slip: bool, rel: str, common: float) -> float:
        """An upper bound of the scorer's logit for a pair, without its costly features.

        Every feature of :meth:`_features` is computed here the same way except
        the address similarity and the rarity of the one name word in which
        the names differ (rapidfuzz's token-set ratio and the name sketch): each
        of those contributes at most its best value under the current weights. A pair
        whose ceiling is below the threshold's logit cannot become a finding,
        so it is not scored: most pairs of the largest blocks are namesakes
        (a common name, a filler date or the same month) from other households.
        """
        return self._ceiling_for(a)(b, sim, slip, rel, common)

    def _ceiling_for(self, a: list) -> Callable[[list, float, bool, str, float], float]:
        """:meth:`_logit_ceiling` with the record ``a`` and the current weights bound.

        A record meets up to a few hundred candidates in its blocks, and at 10 M
        voters this bound is computed for about half of them: what depends on
        the record or the weights alone is read once per record and scorer, and
        a term that is zero is not added (``z + 0.0 == z``, so the sum is the
        same float). Terms are added in :meth:`_features`' order, but for the
        names' shape and the birth place: they come last, so that a loose bound
        given the threshold's logit can stop before them.
        """
        scorer = self._scorer_version()
        memo = self.__dict__.get("_ceiling_memo")
        if memo is not None and memo[0] == scorer and memo[1] == a:
            return memo[2]
        w, intercept = self._weights_now()
        g = w.get
        w_close, w_weak, w_exact, w_common = g("name_close", 0.0), g("name_weak", 0.0), g("name_exact", 0.0), \
            g("name_common", 0.0)
        w_dob = {r: g(key, 0.0) for r, key in _DOB_KEYS}
        w_default, w_cross, w_nik = g("dob_default", 0.0), g("dob_nik_cross", 0.0), g("nik_birth_agree", 0.0)
        w_sex, w_sex_missing, w_place, w_rtrw = g("sex_agree", 0.0), g("sex_missing", 0.0), g("place_agree", 0.0), \
            g("rtrw_equal", 0.0)
        w_nkk, w_no_id, w_near = g("nkk_equal", 0.0), g("no_id_fields", 0.0), g("nik_near", 0.0)
        w_addr, w_addr_other_kk, w_noid_addr = g("addr_close", 0.0), g("addr_close_other_kk", 0.0), g("noid_addr", 0.0)
        w_differs, w_rare, w_typo = g("household_name_differs", 0.0), g("variant_rare", 0.0), \
            g("household_typo", 0.0)
        w_marital, w_disability = g("marital_agree", 0.0), g("disability_agree", 0.0)
        w_regency, w_noid_regency = g("same_regency", 0.0), g("noid_same_regency", 0.0)
        name, dob, sex, nik6, nik7, place = a[3], a[4], a[5], a[6], a[7], a[8]
        addr, rtrw, nkk, marital, disability, regency = a[9], a[10], a[11], a[12], a[13], a[14]
        exact_term = w_exact if name else 0.0  # times float(a[3] == b[3])
        default_term = w_default if dob and dob[5:] in _DEFAULT_DATES else 0.0  # when rel == "equal"
        has_nik = nik6 is not None
        crosses_nik = _nik_cross_with(a)
        ta = name.split()
        sa = set(ta)
        # Candidates repeat birth places and names (namesakes): what they give is kept for the record.
        places: dict[str, float] = {}
        shapes: dict[str, tuple[bool, bool]] = {}  # name -> (differs from this one in one word, subset)

        name_bound = max(0.0, w_close, w_weak)  # name_close and name_weak lie in [0, 1], one of them 0

        def shape_of(other: str) -> tuple[bool, bool]:
            # (the names differ in exactly one word, one name's words are a subset of the other's)
            shape = shapes.get(other)
            if shape is None:
                tb = other.split()
                sb = set(tb)
                shape = shapes[other] = (sum(t not in tb for t in ta) == 1 and sum(t not in ta for t in tb) == 1,
                                         bool(sa and sb) and (sa < sb or sb < sa))
            return shape

        # The largest the birth place and the names' shape can add (sim None), by nkk_equal.
        place_most = abs(w_place)  # place_agree lies in [-1, 1]
        shape_most = (max(0.0, w_rare), max(0.0, w_differs, w_rare, w_rare + w_typo))

        def ceiling(b: list, sim: float | None, slip: bool, rel: str, common: float,
                    floor: float | None = None) -> float:
            # sim None: the bound for any name similarity and any commonness from ``common`` up.
            # With ``floor`` (and sim None), a value below it may be returned as soon as the
            # costly terms (birth place, the names' shape) cannot lift the bound to it.
            z = intercept
            if sim is None:
                z += name_bound
            elif sim > 0.8:  # else name_close is 0, and name_weak below
                z += w_close * round(_clip01((sim - 0.8) / 0.2), 4)
            elif sim < 0.8:
                z += w_weak * round(_clip01((0.8 - sim) / 0.25), 4)
            if exact_term and name == b[3]:
                z += exact_term
            z += w_common * common if sim is not None or w_common < 0.0 else w_common
            z += w_dob[rel]
            if rel == "equal":
                z += default_term
            elif rel != "missing" and w_cross and crosses_nik(b):
                z += w_cross
            both_nik = has_nik and b[6] is not None
            if both_nik:
                z += w_nik if nik6 == b[6] and nik7 == b[7] else -w_nik
            sex_b = b[5]
            if sex and sex_b:
                z += w_sex if sex == sex_b else -w_sex
            else:
                z += w_sex_missing
            place_known = bool(place and b[8])
            if rtrw != "/" and rtrw == b[10]:
                z += w_rtrw
            nkk_equal = 1.0 if nkk and nkk == b[11] else 0.0
            if nkk_equal:
                z += w_nkk
            no_id = 1.0 if not both_nik and not (sex and sex_b) and not place_known else 0.0
            if no_id:
                z += w_no_id
            if addr and b[9]:  # addr_close in [0, 1], and the two features made of it
                z += max(0.0, w_addr + w_addr_other_kk * (1.0 - nkk_equal) + w_noid_addr * no_id)
            if slip:
                z += w_near
            if marital and b[12]:
                z += w_marital if marital == b[12] else -w_marital
            if disability or b[13]:
                z += w_disability if disability == b[13] else -w_disability
            if regency and regency == b[14]:
                z += w_regency + w_noid_regency * no_id
            stop = floor is not None and sim is None
            if stop:
                most = z + (place_most if place_known else 0.0) + shape_most[nkk_equal > 0.0] + 0.05
                if most < floor:
                    return most
            shape = shapes.get(b[3]) or shape_of(b[3])  # the lookup inline: most names are known by now
            differs = 0.0
            if nkk_equal and (sim is None or sim < 0.97) and not shape[1]:
                differs = 1.0 if sim is None else _clip01((0.97 - sim) / 0.07)
            # variant_rare = t, household_name_differs = differs (1 - t), household_typo = differs t,
            # with t in [0, 1] from the name sketch when the names differ in exactly one word, else 0;
            # with sim None, differs may be anything from 0 to the 1.0 above: each term is largest at an end.
            if shape[0]:
                if sim is None:
                    z += max(0.0, w_differs * differs, w_rare, w_rare + w_typo * differs)
                else:
                    z += max(w_differs * differs, w_rare + w_typo * differs)
            elif differs:
                z += w_differs * differs if sim is not None else max(0.0, w_differs)
            if place_known:
                if stop and z + place_most + 0.05 < floor:
                    return z + place_most + 0.05  # namesakes: the shape is known from an earlier one
                agree = places.get(b[8])
                if agree is None:
                    agree = places[b[8]] = _place_agree(a, b)
                z += w_place * agree
            # The features are rounded to 4 places, the ceiling's parts are not: a margin.
            return z + 0.05

        def any_candidate(common: float) -> dict[tuple[bool, bool, bool], dict[str, float]]:
            # The loose ceiling's highest value over every candidate of a kind,
            # (nkk_equal, no_id_fields, the names differ in exactly one word:
            # what ``variant_rare`` needs), for each birth-date relation, with no
            # near slip and no NIK-date cross (both checked per candidate). At
            # 10 M voters a common name's blocks are full of namesakes from
            # other households with one part of the birth date wrong, none of
            # whom can reach the threshold: this says so once per record
            # instead of once per namesake. Each term is taken at its largest.
            z = intercept + name_bound + max(0.0, exact_term) + (w_common * common if w_common < 0.0 else w_common)
            if rtrw != "/":
                z += max(0.0, w_rtrw)
            if marital:
                z += abs(w_marital)
            z += abs(w_disability) if disability else max(0.0, -w_disability)
            known = {}
            for nkk_equal, no_id, one_word in itertools.product((False, True), repeat=3):
                t = z + w_nkk * nkk_equal + w_no_id * no_id
                if no_id:
                    t += w_sex_missing  # no NIK pair, no two sexes, no two birth places
                else:
                    t += abs(w_nik) if has_nik else 0.0
                    t += max(abs(w_sex), w_sex_missing) if sex else w_sex_missing
                    t += abs(w_place) if place else 0.0  # place_agree lies in [-1, 1]
                if addr:
                    t += max(0.0, w_addr + w_addr_other_kk * (not nkk_equal) + w_noid_addr * no_id)
                if regency:
                    t += max(0.0, w_regency + w_noid_regency * no_id)
                if one_word:
                    t += max(0.0, w_rare, w_differs, w_rare + w_typo) if nkk_equal else max(0.0, w_rare)
                elif nkk_equal:
                    t += max(0.0, w_differs)
                known[nkk_equal, no_id, one_word] = {  # + its margin, and some for another order of sums
                    r: t + w_dob[r] + (max(0.0, default_term) if r == "equal" else 0.0) + 0.06 for r, _ in _DOB_KEYS}
            return known

        def hopeless(common: float, floor: float) -> tuple[dict, dict, frozenset]:
            # For each kind of candidate, the relations whose bound is below
            # ``floor``; of those, the ones where a NIK-date cross would not
            # lift it either; and every relation hopeless for some kind (a
            # kind whose names differ in more than one word has the lowest
            # bounds, so its sets hold the others'). Kept by :meth:`_hopeless_for`.
            best = any_candidate(common)
            below = {kind: frozenset(r for r, z in zs.items() if z < floor) for kind, zs in best.items()}
            even_crossed = {kind: frozenset(r for r in rels if r == "missing" or best[kind][r] + max(0.0, w_cross)
                                            < floor) for kind, rels in below.items()}
            return below, even_crossed, frozenset().union(*below.values())

        ceiling.any_candidate = any_candidate  # type: ignore[attr-defined]
        ceiling.hopeless = hopeless  # type: ignore[attr-defined]
        ceiling.shape_of = shape_of  # type: ignore[attr-defined]
        self.__dict__["_ceiling_memo"] = (scorer, list(a), ceiling)
        return ceiling

    def learn_feedback(self, features: dict[str, float], is_duplicate: bool) -> None:
        """Learn from a staff verdict on a pair (the ``features`` of its finding's evidence)."""
        x = {k: float(v) for k, v in features.items() if k not in _UNSCORED}
        self.model.learn_one(x, bool(is_duplicate))
        self._verdicts += 1  # scores remembered by _compare are stale now

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
            for tok in set(rec[3].split()):
                self.names.add("t:" + tok)
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

    def _pair_memo(self, rec: list) -> tuple[dict, dict, dict]:
        """What is kept for the record while the name sketch stays as it is:
        the pairs already decided, the names' commonness and the name words' counts.

        A pair's features depend on the two records and the name sketch only,
        and a namesake born the same day sits in most of a record's blocks
        (any ``add()`` changes the sketch's total).
        """
        names = self.names
        pm = self.__dict__.get("_pair_memo_")
        if pm is None or pm[1] is not names.table or pm[2] != names.total or pm[0] != rec:
            pm = (list(rec), names.table, names.total, {}, {}, {})
            self.__dict__["_pair_memo_"] = pm
        return pm[3], pm[4], pm[5]

    def _hopeless_for(self, rec: list, floor: float) -> tuple[dict, dict, frozenset]:
        """The ceiling's ``hopeless`` sets for the record, at its name's commonness.

        They depend on the record only through which of its fields are known
        (and whether its birth date is a filler date), so records alike in
        that share them: most records would otherwise pay for working them out.
        """
        common = self._pair_memo(rec)[1]
        if rec[3] not in common:
            common[rec[3]] = self.name_commonness(rec[3])
        dob = rec[4]
        key = (self._scorer_version(), common[rec[3]], floor, bool(rec[3]), rec[10] != "/", bool(rec[12]),
               bool(rec[13]), rec[6] is not None, bool(rec[5]), bool(rec[8]), bool(rec[9]), bool(rec[14]),
               bool(dob) and dob[5:] in _DEFAULT_DATES)
        cache = self.__dict__.setdefault("_hopeless_cache", {})
        known = cache.get(key)
        if known is None:
            if len(cache) >= 1024:  # ~5 kB each
                cache.clear()
            known = cache[key] = self._ceiling_for(rec).hopeless(common[rec[3]], floor)  # type: ignore[attr-defined]
        return known

    def _compare(self, rec: list, candidates: list, event: dict) -> list[Finding]:
        out = []
        toks = rec[3].split()
        strong = self.min_name_similarity
        # Common names fill blocks with one spelling, and one record visits up
        # to six blocks: each distinct name is compared once per record.
        memo = self.__dict__.get("_sim_memo")
        if memo is None or memo[0] != rec[3]:
            memo = (rec[3], {})
            self.__dict__["_sim_memo"] = memo
        sims = memo[1]

        def sim_of(c: list) -> float:
            sim = sims.get(c[3])
            if sim is None:
                sim = sims[c[3]] = name_similarity(toks, c[3].split()) if toks and c[3] else 0.0
                if len(sims) > 4096:
                    sims.clear()
            return sim

        # Cheapest gate first: the birth date. Most block members were born on
        # another day (the y and n blocks hold a birth year, or no date, of
        # one name sound), and the date costs a twentieth of the name. The
        # gates are the same as name first, date second: a pair is skipped if
        # any one of them says so, and none has a side effect.
        rec0, rec1, a4 = rec[0], rec[1], rec[4]
        ay, am, ad = (a4[:4], a4[5:7], a4[8:10]) if a4 else ("", "", "")
        crosses_nik = _nik_cross_with(rec)
        with_ids = len(rec) > 15 and bool(rec[15])  # else no candidate can be a near slip
        floor = math.log(self.threshold / (1.0 - self.threshold)) if 0.0 < self.threshold < 1.0 else None
        # By the kind of candidate (nkk_equal, no_id_fields, names differing in
        # one word): the birth-date relations with which it cannot reach the
        # threshold, unless a near slip, or a NIK-date cross where the relation
        # is not also in the second set (:meth:`_hopeless_for`, worked out when
        # a candidate first needs them). Telling the kind costs a few
        # comparisons (the names' shape only when it would decide); the
        # ceiling costs a few microseconds.
        hopeless_any: frozenset | None = None if floor is not None else frozenset()
        hopeless: dict = {}
        hopeless_crossed: dict = {}
        shape_of = None
        a_nkk, a_nik, a_sex, a_place = rec[11], rec[6] is not None, rec[5], rec[8]
        kept = []
        rels: dict = {}  # date_relation by the candidate's date: blocks repeat dates (filler dates, namesakes)
        for c in candidates:
            if c[1] == rec1 or c[0] == rec0:
                continue  # same NIK is duplicate_nik's business; never match oneself
            b = c[4]
            # date_relation's "differ" (two of year, month, day wrong, and not a
            # swap), inline and day first: it decides most members here.
            if a4 and b and b[8:10] != ad and b[5:7] != am and not (b[:4] == ay and b[8:10] == am and b[5:7] == ad):
                if not with_ids or not _near_slip(rec, c):
                    if not crosses_nik(c):
                        continue  # two birth dates far apart, unless one NIK says the other's date
                    kept.append((c, "differ", False))
                else:
                    kept.append((c, "differ", True))
                continue
            rel = rels.get(b)
            if rel is None:
                rel = rels[b] = date_relation(a4, b)
            slip = with_ids and _near_slip(rec, c)  # personal numbers one typed character apart: corroboration enough
            if rel == "differ" and not slip and not crosses_nik(c):
                continue
            if not slip:
                if hopeless_any is None:
                    hopeless, hopeless_crossed, hopeless_any = self._hopeless_for(rec, floor)  # type: ignore
                if rel in hopeless_any:
                    nkk_equal = bool(a_nkk) and a_nkk == c[11]
                    no_id = not (a_nik and c[6] is not None) and not (a_sex and c[5]) and not (a_place and c[8])
                    kind = (nkk_equal, no_id, True)
                    if rel in hopeless[kind] and (rel in hopeless_crossed[kind] or not crosses_nik(c)):
                        continue  # no other field of this candidate can lift the pair to the threshold
                    kind = (nkk_equal, no_id, False)
                    if rel in hopeless[kind]:
                        if shape_of is None:
                            shape_of = self._ceiling_for(rec).shape_of  # type: ignore[attr-defined]
                        if not shape_of(c[3])[0] and (rel in hopeless_crossed[kind] or not crosses_nik(c)):
                            continue  # nor with names that differ in more than one word
            kept.append((c, rel, slip))
        if not kept:
            return out
        done, common, counts = self._pair_memo(rec)
        scorer = self._scorer_version()  # a remembered score is this scorer's
        ceiling = None  # self._ceiling_for(rec) when there is a threshold to reach
        if floor is not None:
            ceiling = self._ceiling_for(rec)
            if rec[3] not in common:
                common[rec[3]] = self.name_commonness(rec[3])
        households: dict[str, list] | None = None
        best_in_household: dict[str, float] = {}
        for c, rel, slip in kept:
            seen = done.get(c[0])
            if seen is not None and seen[1] is None and seen[3] == scorer and seen[0] == c:
                continue  # below the threshold's logit for this scorer, found in an earlier block
            if ceiling is not None and ceiling(c, None, slip, rel, common[rec[3]], floor) < floor:
                # Whatever the names' similarity: at 10 M voters most pairs
                # here are namesakes with one part of the birth date wrong,
                # and this spares comparing their names.
                done[c[0]] = (list(c), None, None, scorer)
                continue
            sim = sim_of(c)
            if sim < _WEAKEST_NAME:
                continue
            if c[11]:
                best = best_in_household.get(c[11])
                if best is None:
                    # The closest name among this household's members in the
                    # block (all of them, whatever their birth date): this one
                    # is among them, so members below the name gate never win.
                    if households is None:
                        households = {}
                        for m in candidates:
                            if m[11] and m[1] != rec[1] and m[0] != rec[0]:
                                households.setdefault(m[11], []).append(m)
                    members = households[c[11]]
                    # A household of this one member: its best name is this one, which never skips it.
                    best = best_in_household[c[11]] = -1.0 if len(members) == 1 else max(map(sim_of, members))
                if best >= max(sim + 0.03, strong):
                    # One household holds a closer name: the record is that
                    # member's, and this one is a twin or sibling of theirs.
                    continue
            weak = sim < strong and not slip
            if weak and (rel not in ("equal", "swap") or rec[5] != c[5]
                         or not any(len(t) > 2 and t in c[3].split() for t in toks)):
                continue  # a weaker name needs one of its words, the birth date and sex to agree ...
            if weak and (_addr_close(rec, c) >= 0.8) + _same_regency(rec, c) + _same_household(rec, c) + \
                    (_place_agree(rec, c) >= 0.5) < 2:
                continue  # ... and at least two of address, regency, household, birth place
            if seen is not None and seen[1] is not None and seen[0] == c:
                x, p = seen[1], seen[2]
                if seen[3] != scorer:
                    p = self.score(x)
                    done[c[0]] = (seen[0], x, p, scorer)
            else:
                for name in (rec[3], c[3]):
                    if name not in common:
                        common[name] = self.name_commonness(name)
                most_common = max(common[rec[3]], common[c[3]])
                if ceiling is not None and ceiling(c, sim, slip, rel, most_common) < floor:
                    done[c[0]] = (list(c), None, None, scorer)
                    continue  # cannot reach the threshold whatever the costly features say
                x = self._features(rec, c, sim, slip, rel, most_common, counts)
                p = self.score(x)
                done[c[0]] = (list(c), x, p, scorer)
            if p >= self.threshold:
                out.append(self._finding(rec, c, dict(x), p, event))  # each finding its own dict
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


def _place_agree(a: list, b: list) -> float:
    """The ``place_agree`` feature: +1 same birth place, -1 another, 0 unknown."""
    if not (a[8] and b[8]):
        return 0.0
    # Place names are short: Jakarta / Yogyakarta are 0.82 alike and different.
    return round(max(-1.0, min(1.0, (fuzz.ratio(a[8], b[8]) / 100 - 0.9) / 0.05)), 4)


def _addr_close(a: list, b: list) -> float:
    """The ``addr_close`` feature: how alike the addresses are, 0 if either is unknown."""
    if not (a[9] and b[9]):
        return 0.0
    return round(_clip01((fuzz.token_set_ratio(a[9], b[9]) / 100 - 0.5) / 0.5), 4)


def _same_regency(a: list, b: list) -> bool:
    return bool(a[14]) and a[14] == b[14]


def _same_household(a: list, b: list) -> bool:
    """Both records carry the same NKK (an unknown one matches nothing)."""
    return bool(a[11] and b[11]) and a[11] == b[11]


def _ymd(d: str) -> str:
    return d[2:4] + d[5:7] + d[8:10]


def _nik_cross(a: list, b: list) -> bool:
    """One record's typed birth date is the birth date in the other's NIK."""
    return bool((a[4] and b[6] and _ymd(a[4]) == b[6]) or (b[4] and a[6] and _ymd(b[4]) == a[6]))


_SHAPED_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _nik_cross_with(a: list) -> Callable[[list], bool]:
    """:func:`_nik_cross` with the record ``a`` fixed, its side worked out once: a
    record is checked against most members of its blocks. The other record's
    typed date is compared with ``a``'s NIK date part by part, day first.
    """
    a_ymd, a6 = (_ymd(a[4]) if a[4] else ""), a[6]
    six = bool(a6) and len(a6) == 6  # a NIK's YYMMDD (always, from nik_birth)
    n6, n4, n2 = (a6[:2], a6[2:4], a6[4:6]) if six else ("", "", "")

    def crosses(b: list) -> bool:
        b4 = b[4]
        return bool((a_ymd and a_ymd == b[6]) or (b4 and a6 and (
            b4[8:10] == n2 and b4[5:7] == n4 and b4[2:4] == n6 if six and len(b4) == 10 else _ymd(b4) == a6)))

    return crosses


def _comparable_date(value) -> str | None:
    """The birth date to compare: a valid ``YYYY-MM-DD``, or one of that shape
    with an impossible month or day (``1945-70-03``: a typed slip that
    :func:`date_relation` can still relate to ``1945-07-03``). Blocking keys use
    valid dates only.

    >>> _comparable_date("1945-70-03"), _comparable_date("1990-01-05"), _comparable_date("3 Jan")
    ('1945-70-03', '1990-01-05', None)
    """
    d = clean_date(value)
    if d is None and isinstance(value, str) and _SHAPED_DATE.match(value.strip()):
        return value.strip()
    return d


def _near_id_hashes(secret: bytes, ident: str) -> str:
    """For a personal number other than a NIK (another list's), short keyed
    hashes of it and of every variant with one character deleted,
    concatenated (6 hex characters each). Two numbers one substitution, one
    insertion or deletion, one exchange of neighbouring characters or one
    character moved apart share a variant, so :func:`_ids_near` finds them
    from the hashes alone: the index never holds the number. Each hash has
    24 bits: two unrelated 7-digit numbers (8 hashes each) share one by
    chance about once in 250,000 pairs.

    Not for a 16-digit NIK: NIKs are dense (region, birth date, low
    serials), so people born on one day in neighbouring districts, and
    twins, hold NIKs one digit apart; fitted on the training population the
    signal's weight was 0.

    >>> a, b = (_near_id_hashes(b"k", n) for n in ("1804974", "1809474"))
    >>> _ids_near(a, b), _ids_near(a, _near_id_hashes(b"k", "1840794")), "1804" in a
    (True, False, False)
    >>> _near_id_hashes(b"k", "3273014501900001")
    ''
    """
    if not ident or len(ident) < 5 or (len(ident) == 16 and ident.isdigit()):
        return ""
    key = secret if len(secret) <= 64 else hashlib.blake2b(secret).digest()
    variants = {ident} | {ident[:i] + ident[i + 1:] for i in range(len(ident))}
    return "".join(sorted(hashlib.blake2b(v.encode(), key=key, digest_size=3, person=b"pantau-near-id").hexdigest()
                          for v in variants))


def _ids_near(a: str, b: str) -> bool:
    """Whether two :func:`_near_id_hashes` strings share a variant."""
    return bool(a and b) and not _id_chunks(a).isdisjoint(_id_chunks(b))


@lru_cache(maxsize=65_536)
def _id_chunks(s: str) -> frozenset:
    # A record meets the same candidates in several blocks: split each string once.
    return frozenset(s[i:i + 6] for i in range(0, len(s), 6))


def _near_slip(a: list, b: list) -> bool:
    """Personal numbers (not NIKs) one typed character apart."""
    return len(a) > 15 and len(b) > 15 and _ids_near(a[15], b[15])


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
    put("sex", x["sex_agree"] == 1.0, x["sex_missing"] == 1.0)
    put("birth_place", x["place_agree"] >= 0.5, x["place_missing"] == 1.0)
    put("address", x["addr_close"] >= 0.75, x["addr_missing"] == 1.0)
    put("nkk", x["nkk_equal"] == 1.0, x["nkk_missing"] == 1.0)
    put("marital_status", x["marital_agree"] == 1.0, x.get("marital_missing", 0.0) == 1.0)
    put("disability", x["disability_agree"] == 1.0, x["disability_agree"] == 0.0)
    return agreed, differed
