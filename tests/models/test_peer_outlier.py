"""Turnout and vote-share outliers against peer TPS, re-judged as peers come in."""

from __future__ import annotations

import math
import random
from collections import UserDict

import orjson
import pytest

from models.peer_outlier import PeerOutlier


class AssignOnlyTable(UserDict):
    def __getitem__(self, key):
        return orjson.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = orjson.dumps(value)  # values must be plain JSON; stored serialised, like a changelog


def tally(village, no, turnout, shares, dpt=250, invalid=3, event_id=None):
    voters = round(dpt * turnout)
    valid = voters - invalid
    votes = [int(valid * s) for s in shares[:-1]]
    votes.append(valid - sum(votes))
    tps = f"{village}{no:03d}"
    return {"event_id": event_id or f"ev-{tps}", "submitted_at": "2024-02-14T19:00:00+07:00", "tps": tps,
            "region": {"province": village[:2], "regency": village[:4], "district": village[:6], "village": village},
            "contest": "PPWP", "revision": 0, "registered": {"dpt": dpt, "dptb": 0, "dpk": 0},
            "voters": voters, "votes": {f"0{i + 1}": v for i, v in enumerate(votes)}, "valid": valid,
            "invalid": invalid}


def village_of(rnd, village, n, turnout, shares, start=1):
    out = []
    for i in range(n):
        t = min(1.0, rnd.gauss(turnout, 0.02))
        s = [max(0.01, rnd.gauss(x, 0.02)) for x in shares]
        s = [x / sum(s) for x in s]
        out.append(tally(village, start + i, t, s, dpt=rnd.randint(200, 290)))
    return out


def open_ids(det, events):
    status = {}
    for ev in events:
        for f in det.process_one(ev):
            status[f.subject_id] = f
    return {k: f for k, f in status.items() if f.status == "open"}


def test_lone_tps_at_full_turnout_with_one_candidate_is_flagged():
    rnd = random.Random(1)
    det = PeerOutlier(AssignOnlyTable())
    events = village_of(rnd, "3173011005", 10, 0.78, [0.3, 0.5, 0.2])
    events.append(tally("3173011005", 11, 1.0, [0.0, 1.0, 0.0], invalid=0))
    flagged = open_ids(det, events)
    assert set(flagged) == {"3173011005011"}
    f = flagged["3173011005011"]
    assert f.severity == "warning" and f.kind in ("share", "turnout_share")
    assert f.evidence["level"] == "village" and f.evidence["outliers"]["share.02"]["seen"] == 1.0


def test_full_turnout_alone_is_judged_against_the_spread_floor():
    # 100 % against a village median of 70 % is 6 spread-floors (0.05) away: flagged.
    rnd = random.Random(6)
    events = village_of(rnd, "3173011005", 10, 0.70, [0.3, 0.5, 0.2])
    events.append(tally("3173011005", 11, 1.0, [0.3, 0.5, 0.2], invalid=0))
    flagged = open_ids(PeerOutlier({}), events)
    assert set(flagged) == {"3173011005011"} and flagged["3173011005011"].kind == "turnout"


def test_whole_village_at_95_percent_is_not_flagged_even_in_a_75_percent_district():
    rnd = random.Random(2)
    det = PeerOutlier(AssignOnlyTable())
    district = []
    for v in range(1, 5):
        district += village_of(rnd, f"31730110{v:02d}", 8, 0.75, [0.3, 0.5, 0.2])
    high = village_of(rnd, "3173011009", 10, 0.95, [0.3, 0.5, 0.2])
    events = district + high
    assert open_ids(det, events) == {}


def test_early_district_judgement_is_resolved_when_the_village_fills_in():
    rnd = random.Random(3)
    det = PeerOutlier(AssignOnlyTable())
    district = []
    for v in range(1, 4):
        district += village_of(rnd, f"31730110{v:02d}", 8, 0.70, [0.3, 0.5, 0.2])
    for ev in district:
        assert det.process_one(ev) == []
    # The first TPS of a village where one candidate is far stronger: judged against the district ...
    stronghold = village_of(rnd, "3173011009", 9, 0.72, [0.05, 0.9, 0.05])
    first = det.process_one(stronghold[0])
    assert first and first[0].evidence["level"] == "district" and first[0].status == "open"
    # ... and resolved once its village shows the same figures.
    later = [f for ev in stronghold[1:] for f in det.process_one(ev)]
    resolved = [f for f in later if f.status == "resolved"]
    assert stronghold[0]["tps"] in {f.subject_id for f in resolved}
    assert open_ids(PeerOutlier({}), district + stronghold) == {}


def test_no_judgement_before_minimum_peers():
    det = PeerOutlier({}, min_peers=5)
    events = [tally("3173011005", i, 0.78, [0.3, 0.5, 0.2]) for i in range(1, 4)]
    events.append(tally("3173011005", 4, 1.0, [0.0, 1.0, 0.0], invalid=0))
    assert [f for ev in events for f in det.process_one(ev)] == []


def test_block_of_tps_voting_alike_within_a_big_village_is_not_flagged():
    # A 60-TPS urban village where TPS 31-45 (one neighbourhood) vote very differently.
    rnd = random.Random(4)
    events = village_of(rnd, "3173011002", 30, 0.78, [0.35, 0.5, 0.15])
    events += village_of(rnd, "3173011002", 15, 0.78, [0.05, 0.4, 0.55], start=31)
    events += village_of(rnd, "3173011002", 15, 0.78, [0.35, 0.5, 0.15], start=46)
    assert open_ids(PeerOutlier({}), events) == {}


def test_inconsistent_tallies_are_left_to_arithmetic_and_state_is_bounded():
    table = AssignOnlyTable()
    det = PeerOutlier(table, max_peers=20)
    rnd = random.Random(5)
    events = village_of(rnd, "3173011005", 40, 0.78, [0.3, 0.5, 0.2])
    bad = tally("3173011005", 99, 0.78, [0.3, 0.5, 0.2])
    bad["valid"] += 100
    events.append(bad)
    for ev in events:
        det.process_one(ev)
    assert len(table["v:3173011005"]["peers"]) == 20
    assert all(p[0] != bad["tps"] for p in table["v:3173011005"]["peers"])


def test_new_revision_replaces_the_old_row():
    table = AssignOnlyTable()
    det = PeerOutlier(table)
    ev = tally("3173011005", 1, 0.78, [0.3, 0.5, 0.2])
    det.process_one(ev)
    det.process_one(dict(ev, event_id="ev-r1", revision=1))
    assert len(table["v:3173011005"]["peers"]) == 1


def test_late_older_revision_does_not_replace_newer_figures():
    table = AssignOnlyTable()
    det = PeerOutlier(table)
    ev = tally("3173011005", 1, 0.78, [0.3, 0.5, 0.2])
    det.process_one(dict(ev, event_id="ev-r1", revision=1))
    assert det.process_one(dict(ev, event_id="ev-r0", revision=0, voters=10)) == []
    assert [p[3] for p in table["v:3173011005"]["peers"]] == ["ev-r1"]


def test_nearest_peers_match_sorting_the_whole_village():
    """The windowed neighbour search picks exactly the rows a full sort by
    (distance of TPS numbers, TPS code) picks, ties and odd prefixes included."""
    import heapq
    import random

    from models.peer_outlier import PeerOutlier

    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(1, 120)
        nums = rng.sample(range(1, 400), n)
        village = [[rng.choice(["3173011005", "3173011006"]) + f"{k:03d}", 0.5, {}, f"e{k}",
                    rng.choice(["PPWP", "DPR"]), 0] for k in nums]
        village = list({(r[0], r[4]): r for r in village}.values())
        by_contest = PeerOutlier._by_contest(village)
        for row in rng.sample(village, min(5, len(village))):
            tps, contest, k = row[0], row[4], rng.choice([1, 3, 12])
            me = int(tps[10:])
            others = [p for p in village if p[0] != tps and p[4] == contest]
            want = heapq.nsmallest(k, others, key=lambda p: (abs(int(p[0][10:]) - me), p[0]))
            nums_c, entries, codes = by_contest[contest]
            assert PeerOutlier._nearest(nums_c, entries, me, tps, k, codes[tps]) == want


def _statistics_robust_z(x, values, min_scale):
    """The robust z with statistics.median for both medians."""
    import statistics

    from models.peer_outlier import _MAD_TO_SD

    med = statistics.median(values)
    scale = max(_MAD_TO_SD * statistics.median([abs(v - med) for v in values]), min_scale)
    return (x - med) / scale, med, scale


def test_robust_z_equals_the_statistics_median_version_to_the_bit():
    """_robust_z (its two medians inlined, deviations taken in sorted order) gives exactly what
    statistics.median of the values and of their absolute deviations gives."""
    from models.peer_outlier import _robust_z

    rng = random.Random(12)
    for _ in range(2000):
        n = rng.randint(1, 120)
        pool = [round(rng.random(), 4) for _ in range(rng.randint(1, 30))]  # ties are common
        values = [rng.choice(pool) if rng.random() < 0.5 else round(rng.random(), 4) for _ in range(n)]
        if rng.random() < 0.1:
            values = [int(v * 3) for v in values]  # integers, as a hand-made state could hold
        x, min_scale = round(rng.random() * 1.2, 4), rng.choice([0.001, 0.05])
        assert _robust_z(x, values, min_scale) == _statistics_robust_z(x, values, min_scale)


def test_district_judgement_equals_the_reference(monkeypatch):
    """District verdicts with several contests, candidates missing from some rows, lone outliers
    and few peers: the same as the judgement made with statistics' medians."""
    rng = random.Random(13)
    det = PeerOutlier({}, threshold=3.0)
    for _ in range(300):
        district = []
        for k in range(rng.randint(0, 60)):
            cands = rng.choice([["01", "02", "03"], ["01", "02"], ["01", "02", "03", "04"]])
            raw = [rng.random() + (5 if rng.random() < 0.05 else 0) for _ in cands]
            district.append([f"31730110{rng.randint(10, 30):02d}{k:03d}", round(rng.uniform(0.5, 1.1), 4),
                             {c: round(x / sum(raw), 4) for c, x in zip(cands, raw)}, f"e{k}",
                             rng.choice(["PPWP", "PPWP", "DPR"]), 0])
        if not district:
            continue
        for row in rng.sample(district, min(8, len(district))):
            # An empty village: every TPS is judged against its district.
            got = det._judge(row, [], district, {})
            with monkeypatch.context() as m:
                m.setattr("models.peer_outlier._robust_z", _statistics_robust_z)
                reference = det._judge(row, [], district, {})
            assert got == reference


def test_skipping_tps_near_every_median_never_changes_a_verdict(monkeypatch):
    """A TPS within threshold * min_scale of its peers' median on every measure is
    not judged further; judged in full, it must come out the same (None)."""
    rng = random.Random(29)
    for threshold, min_scale in ((5.0, 0.05), (3.0, 0.05), (2.0, 0.1), (5.0, 0.001)):
        det = PeerOutlier({}, threshold=threshold, min_scale=min_scale)
        for _ in range(300):
            spread = rng.choice([0.0, 0.01, 0.05, 0.2])
            village = []
            for k in range(rng.randint(5, 30)):
                t = round(0.7 + rng.gauss(0, spread), 4)
                a = max(0.0, 0.4 + rng.gauss(0, spread))
                # Some rows sit right at the bound from the others' centre, on either side.
                if rng.random() < 0.2:
                    t = round(0.7 + rng.choice([-1, 1]) * threshold * min_scale * rng.choice([0.999, 1.0, 1.001]), 4)
                village.append([f"3173011005{k + 1:03d}", t, {"01": round(min(a, 1.0), 4),
                                                               "02": round(1 - min(a, 1.0), 4)}, f"e{k}", "PPWP", 0])
            for row in rng.sample(village, min(6, len(village))):
                got = det._judge(row, village, [])
                with monkeypatch.context() as m:
                    m.setattr("models.peer_outlier._median", lambda values: math.inf)  # never skip
                    reference = det._judge(row, village, [])
                assert got == reference


def test_a_spread_floor_of_zero_is_refused():
    with pytest.raises(ValueError, match="min_scale"):
        PeerOutlier({}, min_scale=0.0)
