"""Convert raw Sirekap 2024 TPS records (presidential contest) to ``result.v1`` events.

A Sirekap record (one JSON per TPS, named by the 13-digit TPS code) holds
``chart`` (votes per candidate pair: ``100025`` = 01, ``100026`` = 02,
``100027`` = 03), ``administrasi`` (registered and voters, split by sex and by
list) and ``ts`` (when the record was published).

What the administrative fields mean, and how they map:

* ``pemilih_dpt_j`` is the registered DPT of the TPS -> ``registered.dpt``.
* Moved-in (DPTb) and special (DPK, ``non_dpt``) voters register on polling day
  itself, so the number registered *is* the number who voted:
  ``pengguna_dptb_j`` -> ``registered.dptb`` and ``pengguna_non_dpt_j`` ->
  ``registered.dpk``.
* ``pengguna_total_j`` (everyone who used their right) -> ``voters``;
  ``suara_sah`` -> ``valid``; ``suara_tidak_sah`` -> ``invalid``.
* ``registered_by_sex`` adds the same three lists per sex (``_l``/``_p``) so it
  is comparable with ``registered``; ``voters_by_sex`` is ``pengguna_total_l/_p``.

``ts`` is the publication server's clock, not the TPS's: hundreds of records
across a regency share one ``ts`` to the second (batch publication), so it is
read as WIB (+07:00) whatever the province.

A record that cannot make a valid ``result.v1`` (no votes yet, no
administrative page, a malformed TPS code) raises :class:`SirekapRecordError`
from :func:`convert`, whose ``reason`` is a short code fit for a dead letter;
:func:`sirekap_to_result` returns ``None`` for it instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

__all__ = ["SirekapRecordError", "convert", "sirekap_to_result", "rejection_reason", "iter_sample",
           "CANDIDATES", "DEFAULT_SAMPLE"]

#: Sirekap chart ids of the 2024 presidential pairs, in ballot order.
CANDIDATES = {"100025": "01", "100026": "02", "100027": "03"}

#: The sample shipped with the project (see its README and LICENSE).
DEFAULT_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sirekap2024-sample"

_TPS = re.compile(r"^[0-9]{13}$")
_ADMIN_REQUIRED = ("pemilih_dpt_j", "pengguna_total_j", "suara_sah", "suara_tidak_sah")


class SirekapRecordError(ValueError):
    """A Sirekap record that cannot become a ``result.v1``; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _int(value, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise SirekapRecordError("bad_number", f"{field}={value!r}")
    return int(value)


def _event_id(tps_code: str, record: dict) -> str:
    # Content-addressed: the same published record always gives the same id, a re-published one a new id.
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"sirekap-{tps_code}-PPWP-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def convert(tps_code: str, record: dict) -> dict:
    """Convert one record or raise :class:`SirekapRecordError`.

    Examples
    --------
    >>> rec = {"chart": {"null": None, "100025": 83, "100026": 107, "100027": 38},
    ...        "administrasi": {"suara_sah": 228, "suara_tidak_sah": 5, "suara_total": 233,
    ...            "pemilih_dpt_j": 292, "pemilih_dpt_l": 147, "pemilih_dpt_p": 145,
    ...            "pengguna_dptb_j": 1, "pengguna_dptb_l": 0, "pengguna_dptb_p": 1,
    ...            "pengguna_non_dpt_j": 0, "pengguna_non_dpt_l": 0, "pengguna_non_dpt_p": 0,
    ...            "pengguna_total_j": 233, "pengguna_total_l": 110, "pengguna_total_p": 123},
    ...        "ts": "2024-02-16 16:25:10"}
    >>> ev = convert("3101011001001", rec)
    >>> ev["votes"], ev["registered"], ev["voters"], ev["submitted_at"]
    ({'01': 83, '02': 107, '03': 38}, {'dpt': 292, 'dptb': 1, 'dpk': 0}, 233, '2024-02-16T16:25:10+07:00')
    >>> ev["region"]["regency"], ev["registered_by_sex"]
    ('3101', {'L': 147, 'P': 146})
    >>> convert("3101011001001", dict(rec, chart=None))
    Traceback (most recent call last):
    ...
    app.sirekap.SirekapRecordError: no_votes: chart is empty
    """
    if not isinstance(tps_code, str) or not _TPS.match(tps_code):
        raise SirekapRecordError("bad_tps_code", repr(tps_code))
    if not isinstance(record, dict):
        raise SirekapRecordError("not_an_object")

    chart = record.get("chart") or {}
    votes_raw = {code: chart.get(cid) for cid, code in CANDIDATES.items()}
    present = {c: v for c, v in votes_raw.items() if v is not None}
    if not present:
        raise SirekapRecordError("no_votes", "chart is empty")
    if len(present) < len(CANDIDATES):
        # A partly read chart would look exactly like a sum error; better dead-lettered than mis-alerted.
        missing = sorted(set(votes_raw) - set(present))
        raise SirekapRecordError("votes_incomplete", "no count for candidate " + ", ".join(missing))
    votes = {c: _int(v, f"chart.{c}") for c, v in present.items()}

    adm = record.get("administrasi")
    if not adm:
        raise SirekapRecordError("no_admin", "administrasi is empty")
    missing = [f for f in _ADMIN_REQUIRED if adm.get(f) is None]
    if missing:
        raise SirekapRecordError("admin_incomplete", "missing " + ", ".join(missing))
    a = {k: _int(v, k) for k, v in adm.items()}

    ts = record.get("ts")
    try:
        submitted = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").isoformat() + "+07:00"
    except (TypeError, ValueError):
        raise SirekapRecordError("bad_ts", repr(ts)) from None

    event = {
        "schema": "result.v1",
        "event_id": _event_id(tps_code, record),
        "submitted_at": submitted,
        "tps": tps_code,
        "region": {"province": tps_code[:2], "regency": tps_code[:4], "district": tps_code[:6],
                   "village": tps_code[:10]},
        "contest": "PPWP",
        "revision": 0,
        "registered": {"dpt": a["pemilih_dpt_j"], "dptb": a.get("pengguna_dptb_j"),
                       "dpk": a.get("pengguna_non_dpt_j")},
        "voters": a["pengguna_total_j"],
        "votes": votes,
        "valid": a["suara_sah"],
        "invalid": a["suara_tidak_sah"],
        "source": "sirekap",
        "operator_id": None,
    }
    by_sex_reg = {}
    by_sex_voters = {}
    for sex, suffix in (("L", "_l"), ("P", "_p")):
        parts = [a.get(f"pemilih_dpt{suffix}"), a.get(f"pengguna_dptb{suffix}"), a.get(f"pengguna_non_dpt{suffix}")]
        if parts[0] is not None:
            by_sex_reg[sex] = sum(p or 0 for p in parts)
        if a.get(f"pengguna_total{suffix}") is not None:
            by_sex_voters[sex] = a[f"pengguna_total{suffix}"]
    event["registered_by_sex"] = by_sex_reg or None
    event["voters_by_sex"] = by_sex_voters or None
    return event


def sirekap_to_result(tps_code: str, record: dict) -> dict | None:
    """``result.v1`` for one record, or ``None`` when it cannot make one (see :func:`rejection_reason`)."""
    try:
        return convert(tps_code, record)
    except SirekapRecordError:
        return None


def rejection_reason(tps_code: str, record: dict) -> str | None:
    """Why a record cannot be converted (a short code), or ``None`` if it can."""
    try:
        convert(tps_code, record)
    except SirekapRecordError as e:
        return e.reason
    return None


def _from_zip(path: Path) -> Iterator[tuple[str, str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith(".json"):
                yield name, Path(name).stem, zf.read(name)


def iter_sample(path: str | Path = DEFAULT_SAMPLE) -> Iterator[tuple[str, dict]]:
    """Yield ``(tps_code, record)`` from a Sirekap zip, a ``.json`` file or a directory of them.

    Files are read in sorted order. The published sample's two zips overlap, so
    a record seen before (same TPS, same content) is yielded once; a TPS whose
    content differs between files is yielded each time (a re-publication).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".zip", ".json"))
    else:
        files = [path]
    seen: set[tuple[str, str]] = set()
    for f in files:
        if f.suffix == ".zip":
            items = _from_zip(f)
        else:
            items = iter([(f.name, f.stem, f.read_bytes())])
        for name, tps, raw in items:
            record = json.loads(raw)
            digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
            if (tps, digest) in seen:
                continue
            seen.add((tps, digest))
            yield tps, record
