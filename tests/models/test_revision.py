"""Revisions that change a tally's figures."""

from __future__ import annotations

from collections import UserDict

import orjson

from models.revision import Revision


class AssignOnlyTable(UserDict):
    def __getitem__(self, key):
        return orjson.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = orjson.dumps(value)  # values must be plain JSON; stored serialised, like a changelog


def tally(revision, votes=None, invalid=4, dpt=280, contest="PPWP", event_id=None):
    votes = votes or {"01": 60, "02": 110, "03": 50}
    valid = sum(votes.values())
    return {"event_id": event_id or f"ev-r{revision}", "submitted_at": "2024-02-15T10:00:00+07:00",
            "tps": "3173011005001", "region": {"province": "31"}, "contest": contest, "revision": revision,
            "registered": {"dpt": dpt, "dptb": 0, "dpk": 0}, "voters": valid + invalid, "votes": votes,
            "valid": valid, "invalid": invalid}


def test_first_upload_and_unchanged_revisions_are_not_findings():
    det = Revision(AssignOnlyTable())
    assert det.process_one(tally(0)) == []
    assert det.process_one(tally(1)) == []
    assert det.process_one(tally(1)) == []   # redelivery (at-least-once)


def test_changed_revision_shows_old_and_new_figures():
    det = Revision(AssignOnlyTable())
    det.process_one(tally(0))
    [f] = det.process_one(tally(1, votes={"01": 50, "02": 120, "03": 50}))
    assert f.evidence["changes"] == {"votes.01": [60, 50], "votes.02": [110, 120]}
    assert (f.kind, f.severity, f.subject_id) == ("change", "warning", "3173011005001")
    assert f.event_ids == ["ev-r1", "ev-r0"]
    assert "votes.01 60 -> 50" in f.summary


def test_correction_of_an_impossible_tally_is_info():
    det = Revision(AssignOnlyTable())
    bad = tally(0, votes={"01": 60, "02": 610, "03": 50})
    bad["valid"], bad["voters"] = 220, 224   # 610 misread for 110
    det.process_one(bad)
    [f] = det.process_one(tally(1))
    assert (f.kind, f.severity) == ("correction", "info")
    assert f.evidence["changes"] == {"votes.02": [610, 110]}


def test_out_of_order_revision_zero_is_ignored_and_does_not_overwrite():
    table = AssignOnlyTable()
    det = Revision(table)
    det.process_one(tally(0))
    det.process_one(tally(2, votes={"01": 50, "02": 120, "03": 50}))
    assert det.process_one(tally(0)) == []            # late revision 0
    assert det.process_one(tally(1, votes={"01": 1, "02": 1, "03": 1})) == []   # late revision 1
    assert table["3173011005001|PPWP"]["revision"] == 2
    assert table["3173011005001|PPWP"]["figures"]["votes.02"] == 120


def test_revision_arriving_first_then_zero():
    det = Revision(AssignOnlyTable())
    det.process_one(tally(1))
    assert det.process_one(tally(0, votes={"01": 1, "02": 2, "03": 3})) == []


def test_same_revision_number_with_different_figures_is_a_conflict():
    det = Revision(AssignOnlyTable())
    det.process_one(tally(1))
    [f] = det.process_one(tally(1, votes={"01": 61, "02": 110, "03": 50}, event_id="ev-r1-other"))
    assert (f.kind, f.severity) == ("conflicting_revision", "warning")


def test_contests_are_separate():
    det = Revision(AssignOnlyTable())
    det.process_one(tally(0))
    assert det.process_one(tally(1, contest="DPR", votes={"PKB": 20, "PDIP": 200})) == []


def test_registered_change_is_reported():
    det = Revision(AssignOnlyTable())
    det.process_one(tally(0, dpt=280))
    [f] = det.process_one(tally(1, dpt=0))
    assert f.evidence["changes"] == {"registered.dpt": [280, 0]}
    assert f.key == "3173011005001|PPWP"
