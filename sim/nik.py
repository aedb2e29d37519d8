"""NIK and NKK numbers as Dukcapil issues them, and the checks the simulator uses
to keep legitimate records consistent and to prove injected ones are not.

NIK: PP KK CC DDMMYY SSSS — province, regency, district of issue (6 digits), birth
date with day + 40 for women, a serial that is never 0000.
NKK: the same 6-digit district prefix, the issue date DDMMYY, and a serial.
"""

from __future__ import annotations

import datetime as dt
import random

from .regions import province_codes

PLACEHOLDER_NIK = "2222222222222222"


def date_part(birth: dt.date, sex: str) -> str:
    """DDMMYY with day + 40 for women."""
    day = birth.day + (40 if sex == "P" else 0)
    return f"{day:02d}{birth.month:02d}{birth.year % 100:02d}"


class NikIssuer:
    """Issues unique NIKs and NKKs; remembers every number it gave out."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._next: dict[str, int] = {}
        self.issued: set[str] = set()

    def _serial(self, prefix: str) -> str:
        # Serials grow with small random gaps, as numbers issued to people who died
        # or moved leave holes; never 0000.
        n = self._next.get(prefix, 0) + self._rng.randint(1, 3)
        if n > 9999:
            raise RuntimeError(f"serial space exhausted for {prefix}")
        self._next[prefix] = n
        return f"{n:04d}"

    def nik(self, district: str, birth: dt.date, sex: str) -> str:
        """A fresh NIK for a person born on `birth`, issued in `district`."""
        while True:
            prefix = district + date_part(birth, sex)
            value = prefix + self._serial(prefix)
            if value not in self.issued:
                self.issued.add(value)
                return value

    def nkk(self, district: str, issued_on: dt.date) -> str:
        """A fresh family-card number (NKK) issued in `district` on `issued_on`."""
        while True:
            prefix = district + issued_on.strftime("%d%m%y")
            value = prefix + self._serial("KK" + prefix)
            if value not in self.issued:
                self.issued.add(value)
                return value


def nik_problems(nik: str, birth_date: str | None, sex: str | None) -> list[str]:
    """Why a NIK cannot belong to a record with this birth date and sex ([] if it can).

    Kinds: format, placeholder, patterned, unknown_province, bad_date, serial_0000,
    birth_date_mismatch, sex_mismatch. The century is not encoded, so only DDMMYY is compared.
    """
    if len(nik) != 16 or not nik.isdigit():
        return ["format"]
    if nik == PLACEHOLDER_NIK:
        return ["placeholder"]
    problems = []
    if len(set(nik)) <= 2 or nik in "01234567890123456789" or nik in "98765432109876543210":
        problems.append("patterned")
    if nik[:2] not in province_codes():
        problems.append("unknown_province")
    if nik[2:4] == "00" or nik[4:6] == "00":
        problems.append("patterned")
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    nik_sex = "P" if day > 40 else "L"
    day = day - 40 if day > 40 else day
    try:
        dt.date(2000 + yy, month, day)
    except ValueError:
        problems.append("bad_date")
    if nik[12:] == "0000":
        problems.append("serial_0000")
    if birth_date:
        y, m, d = birth_date.split("-")
        if (int(d), int(m), int(y) % 100) != (day, month, yy):
            problems.append("birth_date_mismatch")
    if sex in ("L", "P") and sex != nik_sex:
        problems.append("sex_mismatch")
    return problems


def patterned_nik(rng: random.Random, district: str) -> str:
    """A NIK that is structurally a fake: repeated digits, a run, zeros or serial 0000."""
    kind = rng.randrange(4)
    if kind == 0:
        return str(rng.choice((1, 3, 9))) * 16
    if kind == 1:
        return rng.choice(("1234567890123456", "0123456789012345"))
    if kind == 2:
        return district + "000000" + "0001"
    return district + f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(60, 99):02d}" + "0000"
