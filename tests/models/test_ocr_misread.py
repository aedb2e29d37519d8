"""Single-digit OCR misreads: which figure, and the corrected value."""

from __future__ import annotations

import pytest

from models.ocr_misread import OcrMisread, one_digit_edits


def tally(votes, valid, invalid, voters, dpt=280, dptb=0, dpk=0):
    return {"event_id": "ev-1", "submitted_at": "2024-02-14T19:00:00+07:00", "tps": "3173011005001",
            "region": {"province": "31"}, "contest": "PPWP", "revision": 0,
            "registered": {"dpt": dpt, "dptb": dptb, "dpk": dpk},
            "voters": voters, "votes": votes, "valid": valid, "invalid": invalid}


def best(ev):
    found = OcrMisread().process_one(ev)
    assert len(found) == 1 and found[0].severity == "warning"
    s = found[0].evidence["suggestions"][0]
    return s["field"], s["seen"], s["suggested"]


@pytest.mark.parametrize("true,read", [(177, 677), (152, 652)])
def test_hundreds_digit_misreads_of_2024(true, read):
    ev = tally({"01": 30, "02": read, "03": 16}, valid=true + 46, invalid=10, voters=true + 56)
    assert best(ev) == ("votes.02", read, true)


def test_leading_digit_inserted():
    # 48 read as 948 (a stray leading digit).
    ev = tally({"01": 48, "02": 150, "03": 20}, valid=218, invalid=5, voters=223)
    ev["votes"]["01"] = 948
    assert best(ev) == ("votes.01", 948, 48)


def test_leading_digit_dropped():
    ev = tally({"01": 18, "02": 150, "03": 20}, valid=288, invalid=5, voters=293)   # 118 read as 18
    assert best(ev) == ("votes.01", 18, 118)


def test_misread_total_is_found_too():
    ev = tally({"01": 60, "02": 110, "03": 50}, valid=720, invalid=4, voters=224)   # 220 read as 720
    assert best(ev) == ("valid", 720, 220)


def test_consistent_tally_has_no_suggestion():
    ev = tally({"01": 60, "02": 110, "03": 50}, valid=220, invalid=4, voters=224)
    assert OcrMisread().process_one(ev) == []


def test_consistent_tally_above_dpt_from_dptb_is_left_alone():
    ev = tally({"01": 70, "02": 150, "03": 40}, valid=260, invalid=5, voters=265, dpt=250, dptb=12, dpk=3)
    assert OcrMisread().process_one(ev) == []


def test_two_digit_misread_gets_no_single_digit_suggestion():
    # 214 read as 713: two digits changed; the arithmetic detector flags it, this one cannot fix it.
    ev = tally({"01": 713, "02": 30, "03": 10}, valid=254, invalid=4, voters=258)
    assert OcrMisread().process_one(ev) == []


def test_several_fixes_are_all_listed_and_ranked_by_plausibility():
    # Sum is 10 short: 01, 02 or 03 could each have lost a ten.
    ev = tally({"01": 60, "02": 110, "03": 40}, valid=220, invalid=4, voters=224)
    [f] = OcrMisread().process_one(ev)
    fields = {s["field"] for s in f.evidence["suggestions"]}
    assert {"votes.01", "votes.02", "votes.03"} <= fields
    # Equally plausible alternatives weaken the score.
    assert f.score < 0.5


def test_ranking_prefers_a_fix_that_keeps_candidates_under_the_cap():
    # 02 = 677 is both impossible (> 300) and the only figure whose fix leaves everything plausible.
    ev = tally({"01": 30, "02": 677, "03": 16}, valid=223, invalid=10, voters=233)
    [f] = OcrMisread().process_one(ev)
    top = f.evidence["suggestions"][0]
    assert top["consistent_after"] and (top["field"], top["suggested"]) == ("votes.02", 177)
    assert all(s["plausibility"] <= top["plausibility"] for s in f.evidence["suggestions"])


def test_one_digit_edits_of_small_and_zero_values():
    edits = dict(one_digit_edits(0))
    assert 7 in edits and 10 in edits and all(not str(v).startswith("0") or v == 0 for v in edits)
    assert dict(one_digit_edits(58))[958] == "insert_leading"
    # 58 read as 948 (a 2024 case) is a leading digit added AND 5 -> 4: two edits, not claimed.
    assert 948 not in dict(one_digit_edits(58))
