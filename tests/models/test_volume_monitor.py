"""VolumeMonitor: buckets, silences, lateness, the open -> resolved lifecycle, state round-trip."""

from __future__ import annotations

import json
import pickle
import random
from datetime import datetime, timedelta, timezone

import pytest

from models.base import Finding
from models.volume_monitor import VolumeMonitor

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
REGION = {"province": "32", "regency": "3273", "district": "327301", "village": "3273010001"}
PROV = "registrations/province=32/source=all"


def feed(mon: VolumeMonitor, minutes: int, per_minute: int = 4, start: int = 0, source: str = "online",
         region=REGION, stream: str = "registrations") -> list[Finding]:
    out = []
    for m in range(start, start + minutes):
        for k in range(per_minute):
            out += mon.observe(stream, T0 + timedelta(minutes=m, seconds=k * 60 // per_minute), region, source)
    return out


def test_series_per_level_and_source_without_personal_data():
    mon = VolumeMonitor()
    feed(mon, 1, source="Online")
    feed(mon, 1, source="telegram-bot")  # unknown sources fold into "other"
    ids = set(mon.state_dict()["series"])
    # per-source series at province level; regencies only all sources together
    assert ids == {
        "registrations/province=32/source=online", "registrations/province=32/source=all",
        "registrations/province=32/source=other", "registrations/regency=3273/source=all",
    }
    mon = VolumeMonitor(source_levels=("province", "regency"))
    feed(mon, 1, source="online")
    assert "registrations/regency=3273/source=online" in mon.state_dict()["series"]
    assert not any("3273010001" in i or "327301" in i for i in ids)


def test_streams_keep_their_own_watermark():
    mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=0)
    feed(mon, 60)  # registrations
    regs = mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"]
    # results arriving weeks later must not close weeks of empty registration buckets
    mon.observe("results", T0 + timedelta(days=90), {"province": "32", "regency": "3273"}, "sirekap")
    assert mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"] == regs


def test_the_wall_clock_does_not_advance_a_backfill():
    mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=0)
    feed(mon, 60)
    before = mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"]
    assert mon.advance(T0 + timedelta(days=400), live_within=86400) == []
    assert mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"] == before
    mon.advance(T0 + timedelta(hours=2), live_within=86400)  # live: closes the silent hour
    assert mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"] > before


def test_counts_can_arrive_pre_aggregated():
    one, many = VolumeMonitor(allowed_lateness=0), VolumeMonitor(allowed_lateness=0)
    region = {"province": "32", "regency": "3273"}
    for _ in range(7):
        one.observe("registrations", T0, region, "online")
    many.observe("registrations", T0, region, "online", count=7)
    later = T0 + timedelta(minutes=6)  # closes the first 5-minute bucket only
    one.advance(later), many.advance(later)
    assert one.latest() == many.latest()
    assert many.latest()[("registrations", "32")]["seen"] == 7.0


def test_every_closed_bucket_is_scored_including_empty_ones():
    mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=0)
    feed(mon, 60)  # one hour: buckets 0..11, the last one still open
    state = mon.state_dict()["series"][PROV]
    assert state["model"]["state"]["n_seen"] == 11
    mon.advance(T0 + timedelta(hours=3))  # two silent hours
    state = mon.state_dict()["series"][PROV]
    assert state["model"]["state"]["n_seen"] == 36
    assert mon.latest()[("registrations", "32")]["seen"] == 0.0


def test_empty_buckets_filled_per_gap_are_capped_and_counted():
    mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=0, max_fill_buckets=10)
    feed(mon, 10)  # ten minutes: buckets 0 closed, bucket 1 still open
    n_before = mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"]
    mon.advance(T0 + timedelta(days=2))
    n_after = mon.state_dict()["series"][PROV]["model"]["state"]["n_seen"]
    assert n_after - n_before == 10
    total = 2 * 24 * 12
    # Every series skipped the same buckets: none silently.
    per_series = total - n_before - 10
    assert mon.stats["skipped_buckets"] == per_series * mon.n_series


def test_late_events_within_lateness_count_later_ones_do_not():
    mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=120)
    mon.observe("registrations", T0 + timedelta(minutes=1), REGION, "online")
    mon.observe("registrations", T0 + timedelta(minutes=6), REGION, "online")  # watermark 4:00
    # Bucket 0 (00:00-05:00) is still open: a late event is counted.
    mon.observe("registrations", T0 + timedelta(minutes=2), REGION, "online")
    mon.observe("registrations", T0 + timedelta(minutes=8), REGION, "online")  # watermark 6:00, closes bucket 0
    assert mon.latest()[("registrations", "32")]["seen"] == 2.0
    # Bucket 0 is closed now: this one is only counted as late.
    mon.observe("registrations", T0 + timedelta(minutes=3), REGION, "online")
    assert mon.stats["late_events"] == 1
    counts = mon.state_dict()["series"][PROV]["counts"]
    assert sum(counts.values()) == 2  # minutes 6 and 8, bucket 1


def burst_scenario(mon: VolumeMonitor) -> list[Finding]:
    """Two days of steady traffic, a 30-minute silence, then normal traffic again."""
    rng = random.Random(4)
    out = []
    day2 = 2 * 24 * 60
    for m in range(day2 + 120):
        if day2 <= m < day2 + 30:
            continue
        n = rng.choice((9, 10, 10, 11))
        for k in range(n):
            out += mon.observe("registrations", T0 + timedelta(minutes=m, seconds=k * 60 // n), REGION, "online")
    return out


@pytest.fixture(scope="module")
def silence_findings() -> list[Finding]:
    return burst_scenario(VolumeMonitor(bucket_seconds=300, allowed_lateness=0))


def test_silence_opens_one_alert_with_a_stable_key_then_resolves_it(silence_findings):
    findings = [f for f in silence_findings if f.subject_id == PROV]
    assert findings, "the silence was not detected"
    keys = {f.key for f in findings}
    assert len(keys) == 1
    key = keys.pop()
    assert key.startswith(PROV + "@")
    statuses = [f.status for f in findings]
    assert statuses[-1] == "resolved" and statuses.count("resolved") == 1
    assert all(s == "open" for s in statuses[:-1]) and len(statuses) >= 2
    first = findings[0]
    silence_start = T0 + timedelta(days=2)
    assert first.window[0] == silence_start
    assert first.evidence["seen"] == 0 and first.evidence["direction"] == "drop"
    assert first.evidence["expected"] > 30
    assert first.evidence["since"] == silence_start.isoformat()
    assert first.evidence["model"] == "VolumeModel"
    assert first.evidence["warming_up"] is True  # less than a week of data
    assert first.severity in ("warning", "critical") and 0.6 <= first.score <= 1.0
    assert first.region == {"province": "32"}
    assert first.detector == "volume" and first.subject_kind == "series" and first.kind == "drop"
    assert json.dumps(first.evidence)  # serialisable, and nothing personal in it
    assert findings[-1].window[0] == silence_start


def test_regency_findings_carry_the_regency(silence_findings):
    findings = [f for f in silence_findings if f.subject_id == "registrations/regency=3273/source=all"]
    assert findings and findings[0].region == {"province": "32", "regency": "3273"}


def test_steady_traffic_raises_nothing():
    mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=0)
    rng = random.Random(9)
    out = []
    for m in range(2 * 24 * 60):
        n = rng.choice((4, 5, 6))
        for k in range(n):
            out += mon.observe("registrations", T0 + timedelta(minutes=m, seconds=k * 60 // n), REGION, "online")
    assert out == []
    assert 0.0 <= mon.latest_scores()[("registrations", "32")] < 0.6


def test_state_round_trip_resumes_without_cold_start():
    a = VolumeMonitor(bucket_seconds=300, allowed_lateness=0)
    feed(a, 2 * 24 * 60, per_minute=3)
    blob = pickle.dumps(a.state_dict())
    assert json.loads(json.dumps(a.state_dict())) is not None  # plain data only
    b = VolumeMonitor(bucket_seconds=300, allowed_lateness=0).load_state_dict(pickle.loads(blob))
    assert b.state_dict() == a.state_dict()
    # Both continue identically: the restarted one is already warm.
    fa = feed(a, 60, per_minute=3, start=2 * 24 * 60) + a.advance(T0 + timedelta(days=2, hours=3))
    fb = feed(b, 60, per_minute=3, start=2 * 24 * 60) + b.advance(T0 + timedelta(days=2, hours=3))
    assert [(f.key, f.status, f.score) for f in fa] == [(f.key, f.status, f.score) for f in fb]
    assert any(f.subject_id == PROV for f in fb)  # the silent hours were caught right away
    assert b.latest_scores() == a.latest_scores()


def test_state_with_other_bucket_width_is_refused():
    a = VolumeMonitor(bucket_seconds=300)
    feed(a, 10)
    with pytest.raises(ValueError):
        VolumeMonitor(bucket_seconds=60).load_state_dict(a.state_dict())


def test_series_count_is_bounded_and_overflow_counted():
    mon = VolumeMonitor(max_series=4)
    feed(mon, 1, per_minute=1)  # 3 series: province x (source, all), regency x all
    feed(mon, 1, per_minute=1, region={"province": "33", "regency": "3301"})
    assert mon.n_series == 4
    assert mon.stats["series_overflow"] == 2


def test_malformed_region_codes_make_no_series():
    mon = VolumeMonitor()
    mon.observe("registrations", T0, {"province": "3273010001"}, "online")
    assert mon.n_series == 0 and mon.stats["bad_region"] == 1


# -- several input partitions ---------------------------------------------------

REGENCY = {"province": "32", "regency": "3273"}


def n_seen(mon: VolumeMonitor, sid: str = PROV) -> int:
    return mon.state_dict()["series"][sid]["model"]["state"]["n_seen"]


def two_partitions(hours: int = 30) -> list[tuple[int, datetime, str]]:
    """(partition, time, source) of a steady stream with a silent hour, split over two partitions."""
    rng = random.Random(11)
    out = []
    for m in range(hours * 60):
        if 24 * 60 <= m < 25 * 60:
            continue  # one silent hour on the second day
        for k in range(rng.choice((3, 4, 5))):
            out.append((rng.randrange(2), T0 + timedelta(minutes=m, seconds=10 * k), rng.choice(("online", "coklit"))))
    return out


def test_a_partition_running_ahead_does_not_close_the_buckets_of_a_lagging_one():
    events = two_partitions()
    in_order = VolumeMonitor(allowed_lateness=120)
    expected = [f for p, t, src in events for f in in_order.observe("registrations", t, REGENCY, src)]
    # A backfill read through two partitions: partition 0 is consumed to its
    # end before partition 1 gets going (each has sent one count at the start).
    skewed = VolumeMonitor(allowed_lateness=120)
    first = {p: next(e for e in events if e[0] == p) for p in (0, 1)}
    order = [first[0], first[1]] + [e for e in events if e[0] == 0 and e is not first[0]] + \
        [e for e in events if e[0] == 1 and e is not first[1]]
    got = [f for p, t, src in order for f in skewed.observe("registrations", t, REGENCY, src, partition=p)]
    assert skewed.stats["late_events"] == 0
    # the same findings (series were created in another order, so compare them sorted)
    assert sorted((f.key, f.status, f.score) for f in got) == sorted((f.key, f.status, f.score) for f in expected)
    assert any(f.subject_id == PROV and f.kind == "drop" for f in got)  # the silent hour was found
    assert skewed.state_dict()["series"] == in_order.state_dict()["series"]
    # The newest count alone as the watermark (no partitions) loses the lagging half.
    newest = VolumeMonitor(allowed_lateness=120)
    for p, t, src in order:
        newest.observe("registrations", t, REGENCY, src)
    assert newest.stats["late_events"] > len(events) // 3


def test_an_idle_partition_stops_holding_the_watermark_back():
    mon = VolumeMonitor(allowed_lateness=0, idle_seconds=300)
    wall = T0 + timedelta(days=30)  # a backfill: the wall clock is far ahead of the events
    mon.advance(wall, live_within=86400)
    mon.observe("registrations", T0, REGION, "online", partition=1)  # then nothing more from 1
    for m in range(60):
        mon.observe("registrations", T0 + timedelta(minutes=m), REGION, "online", partition=0)
    assert n_seen(mon) == 0  # partition 1 may still have counts for the first bucket
    mon.advance(wall + timedelta(seconds=200), live_within=86400)
    assert n_seen(mon) == 0  # not idle yet
    for m in range(60, 120):
        mon.observe("registrations", T0 + timedelta(minutes=m), REGION, "online", partition=0)
    mon.advance(wall + timedelta(seconds=400), live_within=86400)
    assert n_seen(mon) == 23  # partition 0 alone now: two hours, the last bucket still open
    # heard from again, it holds the watermark back again
    mon.observe("registrations", T0 + timedelta(minutes=125), REGION, "online", partition=1)
    mon.observe("registrations", T0 + timedelta(minutes=140), REGION, "online", partition=0)
    assert n_seen(mon) == 25  # up to partition 1's 02:05, not partition 0's 02:20


def test_expected_partitions_are_waited_for_until_they_report_or_turn_idle():
    mon = VolumeMonitor(allowed_lateness=0, partitions=3, idle_seconds=300)
    for m in range(60):
        mon.observe("registrations", T0 + timedelta(minutes=m), REGION, "online", partition=0)
    mon.observe("registrations", T0 + timedelta(minutes=59), REGION, "online", partition=2)
    assert n_seen(mon) == 0  # partition 1 has not reported: it may hold the first minutes
    mon.observe("registrations", T0 + timedelta(minutes=30), REGION, "online", partition=1)
    assert n_seen(mon) == 6  # buckets up to minute 30 closed
    # counts without a partition (replay) never wait for anyone
    plain = VolumeMonitor(allowed_lateness=0, partitions=3)
    for m in range(60):
        plain.observe("registrations", T0 + timedelta(minutes=m), REGION, "online")
    assert n_seen(plain) == 11
    # a partition that never reports is idle idle_seconds after the stream's first count
    lone = VolumeMonitor(allowed_lateness=0, partitions=2, idle_seconds=300)
    wall = T0 + timedelta(days=30)
    lone.advance(wall, live_within=86400)
    for m in range(60):
        lone.observe("registrations", T0 + timedelta(minutes=m), REGION, "online", partition=0)
    lone.advance(wall + timedelta(seconds=100), live_within=86400)
    assert n_seen(lone) == 0
    lone.advance(wall + timedelta(seconds=301), live_within=86400)
    assert n_seen(lone) == 11


def test_a_batch_counted_before_closing_keeps_its_older_buckets():
    region = REGENCY
    batch = [(T0 + timedelta(minutes=50), 4), (T0 + timedelta(minutes=2), 3)]  # newer bucket first
    eager, batched = VolumeMonitor(allowed_lateness=0), VolumeMonitor(allowed_lateness=0)
    for t, n in batch:
        eager.observe("registrations", t, region, "online", count=n, partition=0)
        batched.observe("registrations", t, region, "online", count=n, partition=0, close=False)
    assert n_seen(batched) == 0
    batched.close()
    assert eager.stats["late_events"] == 3 and batched.stats["late_events"] == 0
    assert n_seen(batched) == 10


def test_partition_watermark_is_a_partitions_progress_not_only_its_counts():
    mon = VolumeMonitor(allowed_lateness=0)
    mon.observe("registrations", T0, REGION, "online", partition=0)
    mon.observe("registrations", T0, REGION, "online", partition=1, watermark=T0 + timedelta(hours=1))
    mon.observe("registrations", T0 + timedelta(minutes=40), REGION, "online", partition=0)
    assert n_seen(mon) == 8  # partition 1 got to 01:00 elsewhere: up to 00:40 is closed


def test_partition_watermarks_survive_a_snapshot_and_old_snapshots_still_load():
    a = VolumeMonitor(allowed_lateness=0, partitions=2)
    a.advance(T0 + timedelta(days=30), live_within=86400)
    for m in range(60):
        a.observe("registrations", T0 + timedelta(minutes=m), REGION, "online", partition=m % 2)
    blob = json.loads(json.dumps(a.state_dict()))
    b = VolumeMonitor(allowed_lateness=0, partitions=2).load_state_dict(blob)
    assert b.state_dict() == a.state_dict()
    for mon in (a, b):
        for m in range(60, 90):
            mon.observe("registrations", T0 + timedelta(minutes=m), REGION, "online", partition=0)
    assert n_seen(a) == n_seen(b) == 11  # partition 1 still holds both at minute 59
    old = dict(blob)
    del old["partitions"], old["clock"]  # a snapshot from before partition watermarks
    c = VolumeMonitor(allowed_lateness=0, partitions=2).load_state_dict(old)
    c.observe("registrations", T0 + timedelta(minutes=95), REGION, "online", partition=0)
    c.observe("registrations", T0 + timedelta(minutes=95), REGION, "online", partition=1)
    assert n_seen(c) == 19 and c.stats["late_events"] == 0
