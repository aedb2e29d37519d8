"""Scoring alerts against labels, detector family by family."""

from __future__ import annotations

from app.scoring import score


def alert(det, ids, **kw):
    return {"alert_id": f"{det}-{'-'.join(ids) or kw.get('aid', 'x')}", "detector": det, "event_ids": ids, **kw}


def test_pairs_within_one_person_count_and_transitive_pairs_are_right():
    labels = [{"detector": "duplicate_nik", "event_ids": ["n1", "o"]},
              {"detector": "duplicate_nik", "event_ids": ["n2", "o"]}]
    alerts = [alert("duplicate_nik", ["n2", "o", "n1"]), alert("duplicate_nik", ["x", "o"])]
    s = score(alerts, labels)["duplicate_nik"]
    # true pairs: (n1,o) (n2,o) (n1,n2); alerted: those three + (x,o) (x,...) none more
    assert s["pairs_labelled"] == 3 and s["pairs_right"] == 3
    assert s["recall"] == 1.0 and s["precision"] == 0.75


def test_region_detectors_match_on_the_region():
    labels = [{"detector": "birthdate_heaping", "event_ids": ["e1"], "region": {"province": "35", "regency": "3521"}}]
    right = alert("birthdate_heaping", [], region={"province": "35", "regency": "3521"}, aid="a")
    wrong = alert("birthdate_heaping", [], region={"province": "35", "regency": "3522"}, aid="b")
    s = score([right, wrong], labels)["birthdate_heaping"]
    assert s["precision"] == 0.5 and s["recall"] == 1.0


def test_volume_matches_on_window_stream_and_region():
    labels = [{"detector": "volume", "event_ids": [], "stream": "registrations", "region": {"province": "31"},
               "window": {"start": "2023-11-09T10:15:00+07:00", "end": "2023-11-09T10:30:00+07:00"}}]
    hit = {"alert_id": "v1", "detector": "volume", "event_ids": [], "subject": {"id": "registrations/province=31"},
           "evidence": {"stream": "registrations"}, "region": {"province": "31"},
           "window": {"start": "2023-11-09T03:20:00+00:00", "end": "2023-11-09T03:25:00+00:00"}}
    other_stream = {**hit, "alert_id": "v2", "evidence": {"stream": "results"}}
    s = score([hit, other_stream], labels)["volume"]
    assert s["precision"] == 0.5 and s["recall"] == 1.0


def test_detectors_without_labels_report_counts_only():
    s = score([alert("peer_outlier", ["e"])], [])["peer_outlier"]
    assert s == {"alerts": 1, "labels": 0, "precision": None, "recall": None}
