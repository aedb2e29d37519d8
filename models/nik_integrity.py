"""Structural integrity of a NIK and its consistency with the voter's birth date and sex.

A NIK is PP KK CC DDMMYY SSSS: province, regency and district where it was
first issued, the birth date (day + 40 for women) and a serial. The region is
where the NIK was issued, not where the voter lives now, so a NIK from another
region is normal (people move) and is not checked against the record's region.
Codes change when regions split (pemekaran) while NIKs keep the old code, so
an unknown regency/district under a known province is only ``info``.
"""

from __future__ import annotations

import re
from datetime import date, datetime


from models.base import Finding
from models.lookups import parse_nik, wilayah_name
from models.privacy import keyed_hash, mask_nik

__all__ = ["NikIntegrity"]

_SEV_RANK = {"info": 0, "warning": 1, "critical": 2}
_DIGITS16 = re.compile(r"^[0-9]{16}$")
_ASC = "0123456789" * 3
_DESC = "9876543210" * 3


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return None


def pattern_of(nik: str) -> str | None:
    """Name of the placeholder pattern a 16-digit NIK follows, or None.

    Examples
    --------
    >>> pattern_of("2222222222222222"), pattern_of("1234567890123456"), pattern_of("3210987654321098")
    ('same_digit', 'ascending_run', 'descending_run')
    >>> pattern_of("1212121212121212"), pattern_of("3273014501900001")
    ('repeating_block', None)
    """
    if len(set(nik)) == 1:
        return "same_digit"
    if nik in _ASC:
        return "ascending_run"
    if nik in _DESC:
        return "descending_run"
    n = len(nik)
    for period in (2, 3, 4, 8):
        # nik[i] == nik[i % period] for every i, i.e. the first block repeated.
        if (nik[:period] * (n // period + 1))[:n] == nik:
            return "repeating_block"
    return None


class NikIntegrity:
    """Findings for impossible, placeholder or inconsistent NIKs on registration events.

    Parameters
    ----------
    secret
        Key for the HMAC that identifies a NIK in finding keys (no raw NIK in keys).
    known_placeholders
        NIKs seen used as placeholders, always ``critical``.
    reference_date
        Date used to infer the NIK's birth century; ``None`` uses each event's
        ``occurred_at`` (a two-digit year above the event's is the 1900s).

    Notes
    -----
    Severity follows how impossible the problem is:

    * ``critical``: not 16 digits, a placeholder or patterned NIK (all one
      digit, a run such as 1234567890123456, a repeating block), an unknown
      province (10, 30 and 37 turned up in 2019), regency or district 00, an
      impossible NIK birth date (day 0, 32-40, above 71, month 13), serial 0000.
    * ``warning``: the NIK's birth date or sex disagrees with the record's
      (compared on day, month and two-digit year, so no century guess is needed).
    * ``info``: province known but regency/district not in the current
      Kemendagri list (likely a pre-pemekaran code).

    One finding per event, keyed ``nik_integrity|<keyed hash of NIK>``, with the
    most severe problem as ``kind`` and all problems in the evidence. Removals
    are not checked.

    Examples
    --------
    >>> det = NikIntegrity(secret=b"k")
    >>> def reg(nik, **voter):
    ...     return {"event_id": "e1", "occurred_at": "2023-05-01T10:00:00+07:00", "action": "add",
    ...             "voter": {"nik": nik, "name": "Siti", **voter}, "region": {"province": "31"}}
    >>> det.process_one(reg("3273014501900001", birth_date="1990-01-05", sex="P"))
    []
    >>> [(f.kind, f.severity, f.subject_id) for f in det.process_one(reg("2222222222222222"))]
    [('same_digit', 'critical', '2222**********22')]
    >>> [(f.kind, f.severity) for f in det.process_one(reg("3273014501900001", sex="L"))]
    [('sex_mismatch', 'warning')]
    """

    name = "nik_integrity"
    version = "1"

    def __init__(self, secret: bytes, known_placeholders: frozenset[str] = frozenset({"2222222222222222"}),
                 reference_date: date | None = None):
        self.secret = secret
        self.known_placeholders = known_placeholders
        self.reference_date = reference_date

    def problems(self, nik: str, birth_date: str | None = None, sex: str | None = None,
                 reference_date: date | None = None) -> list[dict]:
        """Every problem found, as ``{"code", "severity", "detail"}`` (no personal data in detail)."""
        out: list[dict] = []

        def add(code: str, severity: str, detail: str) -> None:
            out.append({"code": code, "severity": severity, "detail": detail})

        nik = (nik or "").strip()
        if not _DIGITS16.match(nik):
            add("format", "critical", f"a NIK has 16 digits; this has {len(nik)} characters"
                + ("" if nik.isdigit() else " including non-digits"))
            return out
        pattern = pattern_of(nik)
        if pattern:
            add(pattern, "critical", f"patterned NIK ({pattern.replace('_', ' ')})")
        elif nik in self.known_placeholders:
            add("placeholder", "critical", "a known placeholder NIK")

        info = parse_nik(nik, reference_date or date.today())
        for issue in info.errors:
            if issue.code == "province":
                add("province_unknown", "critical", f"province code {nik[:2]} does not exist")
            elif issue.code == "wilayah":
                add("region_zero", "critical", "regency or district code is 00")
            elif issue.code == "birth_date":
                add("nik_birth_date_invalid", "critical", f"digits 7-12 are not a date (day field {nik[6:8]})")
            elif issue.code == "serial":
                add("serial_zero", "critical", "serial 0000 is never issued")
        if info.province and nik[2:4] != "00" and nik[4:6] != "00":
            if wilayah_name(nik[:4]) is None:
                add("regency_unknown", "info", f"regency {nik[:4]} not in the current Kemendagri list (old code?)")
            elif wilayah_name(nik[:6]) is None:
                add("district_unknown", "info", f"district {nik[:6]} not in the current Kemendagri list (old code?)")

        if info.birth_date and birth_date:
            try:
                rec = date.fromisoformat(birth_date)
            except ValueError:
                rec = None
            if rec is not None:
                nd = date.fromisoformat(info.birth_date)
                if (nd.day, nd.month, nd.year % 100) != (rec.day, rec.month, rec.year % 100):
                    add("birth_date_mismatch", "warning", "the NIK's birth date differs from the record's")
        if info.gender and sex in ("L", "P") and info.gender != sex:
            add("sex_mismatch", "warning",
                f"the NIK encodes sex {info.gender} (day {'+40' if info.gender == 'P' else 'as is'}), "
                f"the record says {sex}")
        return out

    def process_one(self, event: dict) -> list[Finding]:
        if event.get("action") == "remove":
            return []
        voter = event.get("voter") or {}
        nik = str(voter.get("nik") or "")
        when = _when(event)
        ref = self.reference_date or (when.date() if when else None)
        found = self.problems(nik, voter.get("birth_date") or None, voter.get("sex") or None, ref)
        if not found:
            return []
        found.sort(key=lambda p: -_SEV_RANK[p["severity"]])
        worst = found[0]
        score = {"critical": 1.0, "warning": 0.6, "info": 0.2}[worst["severity"]]
        masked = mask_nik(nik)
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        return [Finding(
            detector=self.name, key=f"nik_integrity|{keyed_hash(self.secret, nik)}", severity=worst["severity"],
            score=score, subject_kind="voter", subject_id=masked,
            summary=f"NIK {masked}: {worst['detail']}{more}.",
            evidence={"nik": masked, "problems": found, "model": self.name, "version": self.version},
            event_ids=[event["event_id"]], region=event.get("region"), occurred_at=when, kind=worst["code"],
        )]
