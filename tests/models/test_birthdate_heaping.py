"""Regional share of the civil registry's default birth dates (1 Jan, 1 Jul, 31 Dec)."""

from __future__ import annotations

import json
import random
from collections import UserDict

import orjson

from models.birthdate_heaping import BirthdateHeaping


class AssignOnlyTable(UserDict):
    def __getitem__(self, key):
        return orjson.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = orjson.dumps(value)  # values must be plain JSON; stored serialised, like a changelog


def make(rnd):
    n = [0]

    def reg(regency, share, action="add", default="01-01"):
        n[0] += 1
        if rnd.random() < share:
            birth = f"{rnd.randint(1950, 2005)}-{default}"
        else:
            birth = f"{rnd.randint(1950, 2005)}-{rnd.randint(2, 11):02d}-{rnd.randint(2, 28):02d}"
        return {"event_id": f"ev-{n[0]}", "occurred_at": "2023-11-01T09:00:00+07:00", "action": action,
                "voter": {"nik": "3273014501900001", "name": "x", "birth_date": birth},
                "region": {"province": regency[:2], "regency": regency}}
    return reg


def run(det, reg, plan):
    out = []
    for regency, share, count in plan:
        for _ in range(count):
            out += det.process_one(reg(regency, share))
    return out


def test_default_dates_at_the_usual_share_never_alert():
    # About 9 % of voters carry a default date (17.5 M of 192.8 M in 2019): all legitimate.
    rnd = random.Random(1)
    det = BirthdateHeaping(b"k", AssignOnlyTable(), window=300, min_national=1000)
    plan = [(rg, 0.09, 1) for rg in ("3273", "3171", "5103", "9471")] * 2000
    assert run(det, make(rnd), plan) == []


def test_a_single_first_of_january_is_never_a_finding():
    det = BirthdateHeaping(b"k", {}, window=1, min_national=0)
    ev = {"event_id": "e", "occurred_at": "2023-11-01T09:00:00+07:00", "action": "add",
          "voter": {"nik": "3273014501900001", "name": "x", "birth_date": "1990-01-01"},
          "region": {"province": "32", "regency": "3273"}}
    assert det.process_one(ev) == []


def test_region_with_its_own_high_baseline_is_not_flagged():
    # Some regencies (e.g. in Papua) have many unknown birth dates all along: 15 % here, 8 % elsewhere.
    rnd = random.Random(2)
    table = AssignOnlyTable()
    det = BirthdateHeaping(b"k", table, window=300, min_national=1000, prior_strength=600)
    reg = make(rnd)
    assert run(det, reg, [(rg, 0.08, 1) for rg in ("3273", "3171", "5103")] * 1000) == []
    # While 9471 has no history its baseline is the national share; a chance high first window may show ...
    run(det, reg, [("9471", 0.15, 1), ("3273", 0.08, 1)] * 900)
    # ... but once its own history is the baseline, its steady 15 % never alerts.
    later = run(det, reg, [("9471", 0.15, 1), ("3273", 0.08, 1)] * 3000)
    assert [f for f in later if f.status == "open"] == []
    r = table["r:9471"]
    assert 0.12 < r["k"] / r["n"] < 0.18


def test_region_departing_from_both_baseline_and_national_is_flagged():
    rnd = random.Random(3)
    table = AssignOnlyTable()
    det = BirthdateHeaping(b"k", table, window=300, min_national=1000)
    reg = make(rnd)
    assert run(det, reg, [(rg, 0.09, 1) for rg in ("3273", "3171", "3204")] * 3000) == []
    found = run(det, reg, [("3204", 0.45, 600)])
    assert found and {f.subject_id for f in found} == {"3204"}
    f = found[0]
    assert (f.subject_kind, f.kind) == ("region", "default_date_share")
    assert f.severity in ("info", "warning")
    assert f.evidence["window_share"] > 3 * f.evidence["national_share"]
    assert f.key == "3204|heaping"
    # Flagged windows do not enter the baseline, so the anomaly keeps showing ...
    assert table["r:3204"]["flagged"] is True
    # ... and a normal window afterwards resolves it.
    after = run(det, reg, [("3204", 0.09, 600)])
    assert after and after[-1].status == "resolved"
    # No individual dates in the evidence.
    assert "birth_date" not in json.dumps(f.evidence)


def test_removals_and_updates_do_not_count():
    table = AssignOnlyTable()
    det = BirthdateHeaping(b"k", table)
    reg = make(random.Random(4))
    for action in ("remove", "update"):
        det.process_one(reg("3273", 1.0, action=action))
    assert len(table) == 0


def test_finding_lists_the_windows_default_date_records():
    rnd = random.Random(5)
    det = BirthdateHeaping(b"k", AssignOnlyTable(), window=300, min_national=1000, max_event_ids=20)
    reg = make(rnd)
    run(det, reg, [(rg, 0.09, 1) for rg in ("3273", "3171")] * 1500)
    events = [reg("3204", 0.5) for _ in range(300)]
    found = [f for ev in events for f in det.process_one(ev)]
    [f] = found
    defaults = [e["event_id"] for e in events if e["voter"]["birth_date"][5:] == "01-01"]
    assert f.event_ids == list(reversed(defaults[-20:]))
