"""Alert ids, coalescing, resolution and masking."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import fastjsonschema

from app.alerter import Alerter, alert_id
from app.validation import load_schema
from models.base import Finding
from models.privacy import keyed_hash, mask_nik

T0 = datetime(2024, 2, 14, 20, 0, tzinfo=timezone.utc)
validate_alert = fastjsonschema.compile(load_schema("alert.v1"), formats={"date-time": lambda _: True})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def finding(key: str = "k", event_ids: list[str] | None = None, status: str = "open", **kw) -> Finding:
    base = dict(detector="tally_arithmetic", key=key, severity="critical", score=1.0, subject_kind="tps",
                subject_id="3273011001001", summary="Votes add up to 210, valid says 200.",
                evidence={"expected": 200, "seen": 210}, event_ids=event_ids or ["e1"],
                region={"province": "32"}, status=status)
    base.update(kw)
    return Finding(**base)


def test_alert_ids_are_deterministic_and_distinct():
    assert alert_id("volume", "a") == alert_id("volume", "a")
    assert alert_id("volume", "a") != alert_id("volume", "b")
    assert alert_id("volume", "a") != alert_id("revision", "a")
    # same id across processes: no salt, no time
    assert alert_id("tally_arithmetic", "3273011001001|PPWP|sum_valid") == "tally_arithmetic-" + \
        __import__("hashlib").sha256(b"tally_arithmetic|3273011001001|PPWP|sum_valid").hexdigest()[:20]


def test_alerts_follow_the_schema():
    alert = Alerter({}, clock=Clock()).publish(finding())
    validate_alert(alert)
    assert alert["status"] == "open" and alert["revision"] == 0


def test_reprocessing_republishes_the_same_payload_once_per_process():
    store, clock = {}, Clock()
    alerter = Alerter(store, clock=clock)
    first = alerter.publish(finding(event_ids=["e1"]))
    clock.now += timedelta(minutes=5)
    assert alerter.publish(finding(event_ids=["e1"])) is None  # this process sent it already
    restarted = Alerter(store, clock=clock)  # after a restart the last sends may have been lost
    assert restarted.publish(finding(event_ids=["e1"])) == first
    assert restarted.publish(finding(event_ids=["e1"])) is None
    assert len(store) == 1


def test_a_repeat_within_the_window_updates_the_open_alert():
    store, clock = {}, Clock()
    alerter = Alerter(store, coalesce_seconds=3600, clock=clock)
    first = alerter.publish(finding(event_ids=["e1"]))
    clock.now += timedelta(minutes=10)
    second = alerter.publish(finding(event_ids=["e2"]))
    assert second["alert_id"] == first["alert_id"]
    assert second["status"] == "updated" and second["revision"] == 1
    assert second["event_ids"] == ["e2", "e1"]  # the new record first


def test_a_repeat_after_the_window_reopens_with_a_new_revision():
    store, clock = {}, Clock()
    alerter = Alerter(store, coalesce_seconds=3600, clock=clock)
    first = alerter.publish(finding(event_ids=["e1"]))
    clock.now += timedelta(hours=3)
    later = alerter.publish(finding(event_ids=["e9"]))
    assert later["alert_id"] == first["alert_id"]
    assert later["status"] == "open" and later["revision"] == 1 and later["event_ids"] == ["e9"]


def test_resolution_closes_and_a_resolved_without_open_alert_says_nothing():
    store, clock = {}, Clock()
    alerter = Alerter(store, clock=clock)
    assert alerter.publish(finding(status="resolved")) is None
    alerter.publish(finding(event_ids=["e1"]))
    closed = alerter.publish(finding(event_ids=["e2"], status="resolved"))
    assert closed["status"] == "resolved"
    assert alerter.publish(finding(event_ids=["e3"], status="resolved")) is None


def test_values_are_assigned_back_to_the_store():
    class RecordingDict(dict):
        writes = 0

        def __setitem__(self, key, value):
            RecordingDict.writes += 1
            super().__setitem__(key, value)

    store = RecordingDict()
    alerter = Alerter(store, clock=Clock())
    alerter.publish(finding(event_ids=["e1"]))
    alerter.publish(finding(event_ids=["e2"]))
    assert RecordingDict.writes == 2


def test_windows_widen_while_an_alert_stays_open():
    clock = Clock()
    alerter = Alerter({}, clock=clock)
    alerter.publish(finding(window=(T0, T0 + timedelta(minutes=5))))
    updated = alerter.publish(finding(event_ids=["e2"], window=(T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))))
    assert updated["window"] == {"start": T0.isoformat(), "end": (T0 + timedelta(minutes=10)).isoformat()}


def test_event_ids_are_capped_with_the_total_kept():
    alerter = Alerter({}, clock=Clock(), max_event_ids=3)
    alert = alerter.publish(finding(event_ids=[f"e{i}" for i in range(10)]))
    assert len(alert["event_ids"]) == 3 and alert["evidence"]["event_ids_total"] == 10


def test_masking_and_keyed_hashes():
    assert mask_nik("3273014501900001") == "3273**********01"
    assert mask_nik(None) == ""
    assert keyed_hash(b"a", "3273014501900001") != keyed_hash(b"b", "3273014501900001")
    assert "3273014501900001" not in keyed_hash(b"a", "3273014501900001")


def test_a_finding_without_records_updates_when_its_window_grows():
    clock = Clock()
    alerter = Alerter({}, clock=clock)
    alerter.publish(finding(event_ids=[], window=(T0, T0 + timedelta(minutes=5))))
    assert alerter.publish(finding(event_ids=[], window=(T0, T0 + timedelta(minutes=5)))) is None
    grown = alerter.publish(finding(event_ids=[], window=(T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))))
    assert grown["status"] == "updated" and grown["window"]["end"] == (T0 + timedelta(minutes=10)).isoformat()
