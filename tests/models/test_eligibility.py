"""Eligibility on polling day: age 17 or married, implausible ages, regional over-90 shares."""

from __future__ import annotations

import json
from collections import UserDict

import orjson
from datetime import date

import pytest

from models.eligibility import Eligibility, age_on

SECRET = b"test-secret"
POLLING = date(2024, 2, 14)


class AssignOnlyTable(UserDict):
    """Like a Faust table: values handed out are copies, so only assignments persist."""

    def __getitem__(self, key):
        return orjson.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = orjson.dumps(value)  # values must be plain JSON; stored serialised, like a changelog


def nik_for(district, birth, sex, serial=1):
    y, m, d = birth.split("-")
    return f"{district}{int(d) + (40 if sex == 'P' else 0):02d}{m}{y[2:]}{serial:04d}"


def reg(birth, marital="B", sex="L", action="add", regency="3273", nik=None, with_birth=True, n=1):
    return {"event_id": f"ev-{n}", "occurred_at": "2023-11-01T09:00:00+07:00", "action": action,
            "voter": {"nik": nik or nik_for(regency + "01", birth, sex, n % 9999 + 1), "name": "Budi Santoso",
                      "birth_date": birth if with_birth else None, "sex": sex, "marital_status": marital},
            "region": {"province": regency[:2], "regency": regency, "district": regency + "01"}}


@pytest.fixture
def det():
    return Eligibility(SECRET, AssignOnlyTable(), polling_day=POLLING)


def test_seventeen_on_polling_day_may_vote(det):
    assert det.process_one(reg("2007-02-14", "B")) == []


def test_one_day_short_of_seventeen_and_never_married_is_critical(det):
    [f] = det.process_one(reg("2007-02-15", "B"))
    assert (f.kind, f.severity, f.evidence["age_on_polling_day"]) == ("under_age", "critical", 16)


@pytest.mark.parametrize("marital", ["S", "P"])
def test_married_or_previously_married_sixteen_year_old_may_vote(det, marital):
    assert det.process_one(reg("2007-06-01", marital, sex="P")) == []


def test_under_age_with_unknown_marital_status_is_a_warning(det):
    [f] = det.process_one(reg("2008-03-01", None))
    assert (f.kind, f.severity) == ("under_age", "warning")


def test_birth_date_from_nik_when_record_has_none(det):
    nik = nik_for("327301", "2009-05-20", "P")
    [f] = det.process_one(reg("2009-05-20", "B", sex="P", nik=nik, with_birth=False))
    assert f.evidence["birth_date_from"] == "nik" and f.evidence["age_on_polling_day"] == 14
    # A two-digit year cannot tell 14 from 114, so a NIK-only finding is at most a warning.
    assert f.severity == "warning"


def test_implausible_age_is_a_finding(det):
    [f] = det.process_one(reg("1910-01-01", "P"))
    assert (f.kind, f.severity) == ("implausible_age", "warning")
    assert f.evidence["age_on_polling_day"] == 114


def test_over_ninety_is_not_a_per_person_alarm(det):
    assert det.process_one(reg("1930-07-01", "P")) == []


def test_married_child_under_thirteen_is_implausible(det):
    [f] = det.process_one(reg("2013-01-01", "S"))
    assert f.kind == "implausible_age"


def test_birth_after_polling_day(det):
    [f] = det.process_one(reg("2025-01-01", "B"))
    assert f.kind == "born_after_polling_day"


def test_default_polling_day_is_a_documented_constructor_argument():
    assert Eligibility(SECRET, {}).polling_day == date(2029, 2, 14)
    # The same person is under age for 2024 and of age for 2029.
    ev = reg("2010-01-01", "B")
    assert Eligibility(SECRET, {}, polling_day=POLLING).process_one(ev)
    assert Eligibility(SECRET, {}).process_one(ev) == []


def test_age_on_leap_day_birthday():
    assert age_on(date(2008, 2, 29), date(2025, 2, 28)) == 16
    assert age_on(date(2008, 2, 29), date(2025, 3, 1)) == 17


def test_no_personal_data_in_findings(det):
    ev = reg("2008-03-01", "B")
    [f] = det.process_one(ev)
    text = json.dumps({"s": f.summary, "e": f.evidence, "k": f.key, "id": f.subject_id})
    assert ev["voter"]["nik"] not in text and "Budi" not in text and "2008-03-01" not in text


def feed_region(det, regency, n, over90_every, start=0):
    out = []
    for i in range(n):
        birth = "1925-05-05" if i % over90_every == 0 else "1975-05-05"
        out += det.process_one(reg(birth, "S", regency=regency, n=start + i))
    return [f for f in out if f.subject_kind == "region"]


def test_region_far_above_the_national_over_ninety_share_is_info():
    table = AssignOnlyTable()
    det = Eligibility(SECRET, table, polling_day=POLLING, check_every=200, min_region_count=1000)
    # Four ordinary regencies with 1 % over 90, then one with 10 %.
    for k, rg in enumerate(["3201", "3202", "3203", "3204"]):
        assert feed_region(det, rg, 2000, 100, start=10000 * k) == []
    found = feed_region(det, "3205", 1200, 10, start=50000)
    assert found and all(f.severity == "info" and f.subject_id == "3205" for f in found)
    assert found[-1].evidence["region_share"] > 5 * found[-1].evidence["national_share"]
    # State is bounded: one entry per regency plus the national counts.
    assert set(table) == {"national", "r:3201", "r:3202", "r:3203", "r:3204", "r:3205"}


def test_removing_the_deceased_brings_the_region_back():
    table = AssignOnlyTable()
    det = Eligibility(SECRET, table, polling_day=POLLING, check_every=100, min_region_count=500)
    for k, rg in enumerate(["3201", "3202", "3203"]):
        feed_region(det, rg, 2000, 100, start=10000 * k)
    found = feed_region(det, "3205", 1000, 10, start=50000)
    assert found and found[-1].status == "open"
    before = table["r:3205"]["old"]
    # The old voters (every 10th) are removed after coklit; removals decrement.
    out = []
    for i in range(0, 1000, 10):
        out += [f for f in det.process_one(reg("1925-05-05", "S", regency="3205", n=50000 + i, action="remove"))
                if f.subject_kind == "region"]
    assert table["r:3205"]["old"] == before - 100
    assert out and out[-1].status == "resolved"


def test_updates_do_not_double_count():
    table = AssignOnlyTable()
    det = Eligibility(SECRET, table, polling_day=POLLING)
    det.process_one(reg("1925-05-05", "S"))
    det.process_one(reg("1925-05-05", "S", action="update"))
    assert table["r:3273"]["n"] == 1 and table["national"]["old"] == 1
