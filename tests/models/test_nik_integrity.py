"""NIK structure, placeholders, and consistency with the record's birth date and sex."""

from __future__ import annotations

import json
from datetime import date

import pytest

from models.nik_integrity import NikIntegrity, pattern_of

SECRET = b"test-secret"


def reg(nik, birth_date=None, sex=None, region=None, action="add"):
    return {"event_id": "ev-1", "occurred_at": "2023-11-01T09:00:00+07:00", "action": action,
            "voter": {"nik": nik, "name": "Siti Rahmawati", "birth_date": birth_date, "sex": sex,
                      "address": "Jl. Merdeka No. 5"},
            "region": region or {"province": "32", "regency": "3273", "district": "327301", "village": "3273011001"}}


@pytest.fixture
def det():
    return NikIntegrity(SECRET)


def kinds(findings):
    return [(f.kind, f.severity) for f in findings]


def test_valid_woman_nik_matching_record_is_clean(det):
    # Born 5 Jan 1990, woman: day 05 + 40 = 45.
    assert det.process_one(reg("3273014501900001", "1990-01-05", "P")) == []


def test_valid_man_nik_is_clean(det):
    assert det.process_one(reg("3273011708850003", "1985-08-17", "L")) == []


def test_nik_from_another_region_than_the_current_one_is_not_a_finding(det):
    # Issued in Kota Bandung (3273), now living in Jakarta Selatan: people move.
    jakarta = {"province": "31", "regency": "3174", "district": "317401", "village": "3174011001"}
    assert det.process_one(reg("3273014501900001", "1990-01-05", "P", region=jakarta)) == []


@pytest.mark.parametrize("nik,kind", [
    ("2222222222222222", "same_digit"),
    ("0000000000000000", "same_digit"),
    ("1234567890123456", "ascending_run"),
    ("9876543210987654", "descending_run"),
    ("3273327332733273", "repeating_block"),
])
def test_placeholder_and_patterned_niks_are_critical(det, nik, kind):
    [f] = det.process_one(reg(nik))
    assert (f.kind, f.severity) == (kind, "critical")


def test_known_placeholder_list_is_used():
    det = NikIntegrity(SECRET, known_placeholders=frozenset({"3273010101010101"}))
    [f] = det.process_one(reg("3273010101010101"))
    assert (f.kind, f.severity) == ("placeholder", "critical")


@pytest.mark.parametrize("prov", ["10", "30", "37", "99"])
def test_impossible_province_codes_are_critical(det, prov):
    [f] = det.process_one(reg(f"{prov}01014501900001"))
    assert (f.kind, f.severity) == ("province_unknown", "critical")


@pytest.mark.parametrize("nik,kind", [
    ("3273010101900000", "serial_zero"),
    ("3200014501900001", "region_zero"),
    ("3273003201900001", "region_zero"),
    ("3273013501900001", "nik_birth_date_invalid"),   # day 35: neither a man's day nor a woman's
    ("3273017201900001", "nik_birth_date_invalid"),   # day 72 - 40 = 32
    ("3273010113900001", "nik_birth_date_invalid"),   # month 13
    ("3273013002900001", "nik_birth_date_invalid"),   # 30 February
])
def test_structurally_impossible_niks_are_critical(det, nik, kind):
    found = det.process_one(reg(nik))
    assert found and found[0].severity == "critical"
    assert kind in [p["code"] for p in found[0].evidence["problems"]]


@pytest.mark.parametrize("nik", ["327301450190000", "32730145019000012", "3273-0145-0190-001", "327301450190000X", ""])
def test_not_sixteen_digits_is_critical(det, nik):
    [f] = det.process_one(reg(nik))
    assert (f.kind, f.severity) == ("format", "critical")


def test_unknown_regency_under_known_province_is_only_info(det):
    # 91.01 (Merauke) moved to Papua Selatan (93.01) in 2022; NIKs issued before keep 9101.
    [f] = det.process_one(reg("9101014501900001", "1990-01-05", "P"))
    assert (f.kind, f.severity) == ("regency_unknown", "info")


def test_unknown_district_under_known_regency_is_only_info(det):
    [f] = det.process_one(reg("3273994501900001", "1990-01-05", "P"))
    assert (f.kind, f.severity) == ("district_unknown", "info")


def test_sex_mismatch_is_a_warning(det):
    [f] = det.process_one(reg("3273014501900001", "1990-01-05", "L"))
    assert (f.kind, f.severity) == ("sex_mismatch", "warning")


def test_birth_date_mismatch_is_a_warning(det):
    [f] = det.process_one(reg("3273014501900001", "1990-01-06", "P"))
    assert (f.kind, f.severity) == ("birth_date_mismatch", "warning")


def test_birth_date_compared_without_guessing_the_century(det):
    # Born 1925 (yy = 25): century inference from 2023 would say 1925 anyway, but the
    # comparison uses day/month/yy so a 2025 guess could not create a mismatch either.
    assert det.process_one(reg("3273010503250001", "1925-03-05", "L")) == []
    assert NikIntegrity(SECRET, reference_date=date(2029, 2, 14)).process_one(
        reg("3273010503250001", "1925-03-05", "L")) == []


def test_missing_birth_date_and_sex_are_not_findings(det):
    assert det.process_one(reg("3273014501900001", None, None)) == []
    assert det.process_one(reg("3273014501900001", "", "")) == []


def test_most_severe_problem_leads_and_all_are_listed(det):
    [f] = det.process_one(reg("3273019901900000", "1990-01-05", "P"))
    codes = [p["code"] for p in f.evidence["problems"]]
    assert f.severity == "critical"
    assert {"nik_birth_date_invalid", "serial_zero"} <= set(codes)


def test_removals_are_not_checked(det):
    assert det.process_one(reg("2222222222222222", action="remove")) == []


def test_no_raw_nik_or_name_in_finding_and_key_is_stable(det):
    nik = "3273014501900001"
    [a] = det.process_one(reg(nik, "1990-01-05", "L"))
    [b] = det.process_one(reg(nik, "1990-01-05", "L"))
    text = json.dumps({"s": a.summary, "e": a.evidence, "k": a.key, "id": a.subject_id})
    assert nik not in text and "Siti" not in text and "Merdeka" not in text and "1990-01-05" not in text
    assert a.subject_id == "3273**********01"
    assert a.key == b.key and a.key != NikIntegrity(b"other").process_one(reg(nik, "1990-01-05", "L"))[0].key


def test_pattern_of_leaves_real_niks_alone():
    assert pattern_of("3273014501900001") is None
    assert pattern_of("3578101208790002") is None
