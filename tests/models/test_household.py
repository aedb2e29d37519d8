"""Family cards (NKK) with too many voters or a burst of additions."""

from __future__ import annotations

import json
from collections import UserDict

import orjson

from models.household import Household
from models.privacy import keyed_hash

SECRET = b"test-secret"
NKK = "3273010101230007"


class AssignOnlyTable(UserDict):
    """Like a Faust table: values handed out are copies, so only assignments persist."""

    def __getitem__(self, key):
        return orjson.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = orjson.dumps(value)  # values must be plain JSON; stored serialised, like a changelog


def reg(i, when="2023-11-01T09:00:00+07:00", action="add", nkk=NKK):
    return {"event_id": f"ev-{i}-{action}", "occurred_at": when, "action": action,
            "voter": {"nik": f"3273011708{i:02d}0001"[:16].ljust(16, "1"), "nkk": nkk, "name": f"Anggota {i}"},
            "region": {"province": "32", "regency": "3273"}}


def hourly(i):
    # One addition every 2 hours: no burst.
    day, hour = divmod(2 * i, 24)
    return f"2023-11-{1 + day:02d}T{hour:02d}:00:00+07:00"


def test_a_normal_family_is_quiet():
    det = Household(SECRET, AssignOnlyTable())
    assert [f for i in range(5) for f in det.process_one(reg(i, hourly(i)))] == []


def test_more_than_twelve_is_warning_more_than_twenty_critical():
    det = Household(SECRET, AssignOnlyTable())
    sev = {}
    for i in range(22):
        for f in det.process_one(reg(i, hourly(i))):
            sev[i + 1] = f.severity
    assert 12 not in sev and sev[13] == "warning" and sev[20] == "warning"
    assert sev[21] == "critical" and sev[22] == "critical"


def test_state_is_keyed_on_a_keyed_hash_and_removes_decrement():
    table = AssignOnlyTable()
    det = Household(SECRET, table)
    for i in range(4):
        det.process_one(reg(i, hourly(i)))
    key = keyed_hash(SECRET, "nkk:" + NKK)
    assert list(table) == [key] and NKK.encode() not in table.data[key]
    assert table[key]["count"] == 4
    det.process_one(reg(2, hourly(5), action="remove"))
    assert table[key]["count"] == 3
    det.process_one(reg(2, hourly(5), action="remove"))  # removing twice does not go below
    assert table[key]["count"] == 3


def test_resent_or_updated_member_is_not_counted_twice():
    table = AssignOnlyTable()
    det = Household(SECRET, table, warn_members=2)
    det.process_one(reg(1, hourly(1)))
    det.process_one(reg(2, hourly(2)))
    assert det.process_one(reg(2, hourly(3))) == []
    assert det.process_one(reg(2, hourly(4), action="update")) == []
    assert table[keyed_hash(SECRET, "nkk:" + NKK)]["count"] == 2


def test_eleven_additions_within_an_hour_is_a_burst():
    det = Household(SECRET, AssignOnlyTable())
    found = []
    for i in range(11):
        found += det.process_one(reg(i, f"2023-11-01T09:{5 * i:02d}:00+07:00"))
    [f] = found
    assert (f.kind, f.severity) == ("burst", "warning") and f.evidence["additions"] == 11
    assert f.window[0].isoformat() == "2023-11-01T09:00:00+07:00"


def test_a_large_family_registered_in_one_coklit_visit_is_not_a_burst():
    det = Household(SECRET, AssignOnlyTable())
    assert [f for i in range(9) for f in det.process_one(reg(i, f"2023-11-01T09:{2 * i:02d}:00+07:00"))] == []


def test_burst_threshold_is_a_constructor_argument():
    det = Household(SECRET, AssignOnlyTable(), burst_count=6)
    found = [f for i in range(7) for f in det.process_one(reg(i, f"2023-11-01T09:{5 * i:02d}:00+07:00"))]
    assert [f.kind for f in found] == ["burst"]


def test_additions_spread_over_a_day_are_not_a_burst():
    det = Household(SECRET, AssignOnlyTable())
    assert [f for i in range(8) for f in det.process_one(reg(i, f"2023-11-01T{8 + i:02d}:30:00+07:00"))] == []


def test_records_without_nkk_are_skipped():
    table = AssignOnlyTable()
    det = Household(SECRET, table)
    assert det.process_one(reg(1, nkk=None)) == [] and det.process_one(reg(2, nkk="")) == []
    assert len(table) == 0


def test_member_list_is_bounded_but_count_keeps_growing():
    table = AssignOnlyTable()
    det = Household(SECRET, table, max_tracked=5, warn_members=1000, critical_members=2000)
    for i in range(30):
        det.process_one(reg(i, hourly(i)))
    v = table[keyed_hash(SECRET, "nkk:" + NKK)]
    assert len(v["members"]) == 5 and v["count"] == 30


def test_no_personal_data_in_findings():
    det = Household(SECRET, AssignOnlyTable(), warn_members=1)
    det.process_one(reg(1, hourly(1)))
    [f] = det.process_one(reg(2, hourly(2)))
    text = json.dumps({"s": f.summary, "e": f.evidence, "k": f.key, "id": f.subject_id})
    assert NKK not in text and "Anggota" not in text and f.subject_kind == "household"
