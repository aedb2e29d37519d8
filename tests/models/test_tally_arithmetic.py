"""Impossible tally arithmetic, and the legitimate tallies that must pass."""

from __future__ import annotations

from collections import UserDict

import orjson

import pytest

from models.tally_arithmetic import TallyArithmetic, check_tally, registered_limit


class AssignOnlyTable(UserDict):
    def __getitem__(self, key):
        return orjson.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = orjson.dumps(value)  # values must be plain JSON; stored serialised, like a changelog


def tally(votes=None, dpt=280, dptb=0, dpk=0, voters=None, valid=None, invalid=4, revision=0,
          tps="3173011005001", event_id="ev-1"):
    votes = votes or {"01": 60, "02": 110, "03": 50}
    valid = sum(votes.values()) if valid is None else valid
    voters = valid + invalid if voters is None else voters
    return {"event_id": event_id, "submitted_at": "2024-02-14T19:00:00+07:00", "tps": tps,
            "region": {"province": "31", "regency": "3173", "district": "317301", "village": "3173011005"},
            "contest": "PPWP", "revision": revision, "registered": {"dpt": dpt, "dptb": dptb, "dpk": dpk},
            "voters": voters, "votes": votes, "valid": valid, "invalid": invalid, "source": "sirekap"}


def rules(ev, **kw):
    return [f.kind for f in TallyArithmetic(**kw).process_one(ev)]


def test_a_consistent_tally_passes():
    assert rules(tally()) == []


def test_dptb_and_dpk_voters_above_dpt_are_legitimate():
    # 250 DPT all came, plus 12 moved-in and 3 special voters: 265 voters > DPT.
    ev = tally(votes={"01": 70, "02": 150, "03": 40}, dpt=250, dptb=12, dpk=3, invalid=5)
    assert ev["voters"] == 265
    assert rules(ev) == []


def test_turnout_exactly_dpt_is_not_an_error():
    assert rules(tally(votes={"01": 90, "02": 150, "03": 36}, dpt=280, invalid=4)) == []


def test_reserve_ballots_two_percent_rounded_up():
    assert registered_limit({"dpt": 250}) == 255
    assert registered_limit({"dpt": 201}) == 206   # 4.02 -> 5
    assert registered_limit({"dpt": 150}) == 153   # exactly 3, no float round-up to 4
    ok = tally(votes={"01": 100, "02": 100, "03": 51}, dpt=250, invalid=4)   # 255 voters
    assert rules(ok) == []
    over = tally(votes={"01": 100, "02": 100, "03": 52}, dpt=250, invalid=4)   # 256 voters
    assert rules(over) == ["voters_registered"]


def test_sum_of_candidates_differs_from_valid():
    # From the 2024 sample: 71 / 641 / 511 against a valid total of 185.
    ev = tally(votes={"01": 71, "02": 641, "03": 511}, valid=185, invalid=5, dpt=250)
    found = TallyArithmetic().process_one(ev)
    assert [f.kind for f in found] == ["sum_valid", "candidate_cap"]
    assert all(f.severity == "critical" and f.subject_kind == "tps" and f.subject_id == ev["tps"] for f in found)
    assert found[0].evidence["expected"] == 185 and found[0].evidence["seen"] == 1223


def test_valid_plus_invalid_differs_from_voters():
    assert rules(tally(voters=260, invalid=5)) == ["valid_invalid_voters"]


def test_candidate_above_cap_and_cap_is_a_constructor_argument():
    ev = tally(votes={"01": 20, "02": 301, "03": 0}, dpt=300, dptb=0, invalid=0)
    assert "candidate_cap" in rules(ev)
    assert "candidate_cap" not in rules(ev, cap=500)
    assert "candidate_cap" not in rules(ev, cap=None)


def test_candidate_above_300_with_moved_in_voters_is_legitimate():
    ev = tally(votes={"01": 0, "02": 301, "03": 0}, dpt=298, dptb=2, dpk=1, invalid=0)
    assert rules(ev) == []


def test_dpt_zero_with_votes():
    ev = tally(dpt=0)
    assert rules(ev) == ["dpt_zero"]
    # A TPS with no DPT and nothing recorded is not an arithmetic error.
    assert rules(tally(votes={"01": 0, "02": 0, "03": 0}, dpt=0, invalid=0)) == []


def test_one_finding_per_rule_with_stable_keys():
    ev = tally(votes={"01": 71, "02": 641, "03": 11}, valid=223, voters=250, invalid=10)
    found = TallyArithmetic().process_one(ev)
    assert [f.key for f in found] == [f"{ev['tps']}|PPWP|{r}" for r in ("sum_valid", "valid_invalid_voters",
                                                                          "candidate_cap")]
    again = TallyArithmetic().process_one(dict(ev, event_id="ev-2", revision=1))
    assert [f.key for f in again] == [f.key for f in found]   # a re-upload with the same error coalesces


def test_fixing_revision_resolves_and_stale_revision_is_ignored():
    table = AssignOnlyTable()
    det = TallyArithmetic(state=table)
    bad = tally(votes={"01": 71, "02": 641, "03": 11}, valid=223, revision=0, event_id="r0")
    assert [f.kind for f in det.process_one(bad)] == ["sum_valid", "candidate_cap"]
    good = tally(votes={"01": 71, "02": 141, "03": 11}, valid=223, revision=1, event_id="r1")
    out = det.process_one(good)
    assert out and {f.status for f in out} == {"resolved"}
    # Revision 0 delivered late after revision 1: not re-opened.
    assert det.process_one(bad) == []
    assert table[f"{bad['tps']}|PPWP"]["revision"] == 1


def test_without_state_every_tally_stands_alone():
    det = TallyArithmetic()
    bad = tally(dpt=0)
    assert det.process_one(bad) and det.process_one(bad)


@pytest.mark.parametrize("field", ["dptb", "dpk"])
def test_missing_dptb_dpk_count_as_zero(field):
    ev = tally()
    ev["registered"][field] = None
    assert check_tally(ev) == []
