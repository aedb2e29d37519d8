"""Each detector family end to end on the embedded broker, through real workers."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import produce, read_alerts_covering, read_topic, run
from tests.factories import dumps, registration, result

pytestmark = pytest.mark.integration


def reg_records(*events):
    return [("registrations", e["voter"]["nik"].encode(), dumps(e)) for e in events]


def test_duplicates_of_all_three_kinds_and_feedback(worker_factory, tmp_path):
    worker = worker_factory().start()
    s = worker.settings
    ridwan = registration(name="Muhammad Ridwan", birth="1988-04-12", sex="L", serial=21, village="3273011001",
                          birth_place="Bandung", nkk="3273011204880001")
    # same person, another NIK (re-issued elsewhere), name written the short way, moved house
    ridwan_again = registration(name="M. Ridwan", birth="1988-04-12", sex="L", serial=77, village="3201021002",
                                birth_place="Bandung", nkk="3201020202020002", address="Gg. Melati 12")
    # same NIK, same person, second TPS
    dewi = registration(name="Dewi Lestari", birth="1992-09-03", sex="P", serial=5, village="3273011001")
    dewi_again = registration(name="Dewi Lestari", birth="1992-09-03", sex="P", nik=dewi["voter"]["nik"],
                              village="3273021003", tps_no=4)
    # the NIK typed onto somebody else
    stranger = registration(name="Yohanes Simanjuntak", birth="1965-12-30", sex="L", nik=dewi["voter"]["nik"],
                            village="1271011001", birth_place="Medan", nkk="1271010101650003")
    # family members at one address with one name are not duplicates
    father = registration(name="Ahmad Hidayat", birth="1960-02-01", sex="L", serial=31, nkk="3273010101600009")
    son = registration(name="Ahmad Hidayat", birth="1990-07-15", sex="L", serial=32, nkk="3273010101600009")
    run(produce(s, reg_records(ridwan, dewi, father, son, ridwan_again, dewi_again, stranger)))

    alerts = run(read_alerts_covering(s, {ridwan_again["event_id"], dewi_again["event_id"], stranger["event_id"]}))
    kinds = {a["detector"]: a for a in alerts if a["detector"] in ("duplicate_person", "duplicate_nik", "nik_conflict")}
    assert kinds["duplicate_person"]["event_ids"][:2] == [ridwan_again["event_id"], ridwan["event_id"]]
    assert kinds["duplicate_nik"]["event_ids"][:2] == [dewi_again["event_id"], dewi["event_id"]]
    assert stranger["event_id"] in kinds["nik_conflict"]["event_ids"]
    assert not any({father["event_id"], son["event_id"]} <= set(a["event_ids"]) for a in alerts), \
        "father and son with one name at one address were flagged"
    for a in kinds.values():
        text = orjson.dumps(a).decode()
        for e in (ridwan, ridwan_again, dewi, stranger):
            assert e["voter"]["nik"] not in text and e["voter"]["name"] not in text

    # Staff say the match was wrong. A/B: a control worker gets the same
    # events but no verdicts; the later pair of the same shape must score
    # lower on the worker that learned.
    control = worker_factory().start()
    c = control.settings
    run(produce(c, reg_records(ridwan, dewi, father, son, ridwan_again, dewi_again, stranger)))
    first = kinds["duplicate_person"]
    verdicts = [{"alert_id": first["alert_id"], "verdict": "false_positive",
                 "decided_at": "2023-11-02T10:00:00+07:00", "reviewer": "staff-1"}] * 5
    run(produce(s, [("feedback", first["alert_id"].encode(), orjson.dumps(v)) for v in verdicts]))
    worker.wait_metric("pantau_feedback_learned_total", 5)  # through the verdict topic, like every worker
    yusuf = registration(name="Muhammad Yusuf", birth="1979-06-21", sex="L", serial=41, village="3273011001",
                         birth_place="Bandung", nkk="3273012106790001")
    yusuf_again = registration(name="M. Yusuf", birth="1979-06-21", sex="L", serial=88, village="3201021002",
                               birth_place="Bandung", nkk="3201020202020002", address="Gg. Melati 12")

    def later_score(settings) -> float | None:
        run(produce(settings, reg_records(yusuf, yusuf_again)))
        found = [a["score"] for a in run(read_alerts_covering(settings, {yusuf_again["event_id"]}, timeout=60))
                 if a["detector"] == "duplicate_person" and yusuf_again["event_id"] in a["event_ids"]]
        return found[0] if found else None

    learned, unlearned = later_score(s), later_score(c)
    assert unlearned is not None, "the control worker should flag the pair"
    assert learned is None or learned < unlearned, (learned, unlearned)
    control.stop()

    # The worker sends its name counts to the name-count topic (numbers, no
    # names): they add up to what it counted.
    # (The gauge follows every 5 s, the topic every second: wait for them to meet.)
    deadline = time.monotonic() + 60
    while True:
        counted = worker.wait_metric("pantau_duplicate_name_counts", 2 * 9)  # nine names, a word or more each
        on_topic = counts_on_topic(s, at_least=counted)
        if on_topic == counted == worker.metric("pantau_duplicate_name_counts") or time.monotonic() > deadline:
            break
    assert on_topic == counted

    # Kill the worker: a fresh process recovers the person index and still catches a third record.
    worker.kill()
    second = worker_factory(s.replace(data_dir=tmp_path / "after-kill"))
    ridwan_third = registration(name="Mohamad Ridwan", birth="1988-04-12", sex="L", serial=99,
                                village="3174011001", birth_place="Bandung", nkk="3174010101880004")
    run(produce(s, reg_records(ridwan_third)))
    second.start()
    alerts = run(read_alerts_covering(s, {ridwan_third["event_id"]}))
    assert any(a["detector"] == "duplicate_person" and ridwan_third["event_id"] in a["event_ids"]
               and ridwan["event_id"] in a["event_ids"] for a in alerts)
    # ... and, before comparing it, read back the name counts and the verdicts of its earlier life.
    second.wait_metric("pantau_duplicate_name_counts", counted + 2)
    assert second.metric("pantau_feedback_learned_total") == 5


def test_two_workers_share_name_counts_and_verdicts(worker_factory, tmp_path):
    # Each worker holds half the blocks; both must weigh names by the whole
    # list and score with what staff taught either of them.
    from app.broker import free_port
    from models.duplicate_person import PersonDuplicateDetector

    first = worker_factory(partitions=4).start()
    s = first.settings
    second = worker_factory(s.replace(web_port=free_port(), data_dir=tmp_path / "second")).start(timeout=120)
    namesakes = [registration(name="Nurhayati", birth=f"{1950 + i}-{1 + i % 12:02d}-{1 + i % 28:02d}", sex="P",
                              serial=200 + i, village=f"32730{1 + i % 9}1001") for i in range(30)]
    ridwan = registration(name="Muhammad Ridwan", birth="1988-04-12", sex="L", serial=21, village="3273011001",
                          birth_place="Bandung", nkk="3273011204880001")
    ridwan_again = registration(name="M. Ridwan", birth="1988-04-12", sex="L", serial=77, village="3201021002",
                                birth_place="Bandung", nkk="3201020202020002", address="Gg. Melati 12")
    events = [*namesakes, ridwan, ridwan_again]
    run(produce(s, reg_records(*events)))
    alerts = run(read_alerts_covering(s, {ridwan_again["event_id"]}))
    pair = next(a for a in alerts if a["detector"] == "duplicate_person" and ridwan_again["event_id"] in a["event_ids"])

    one_process = PersonDuplicateDetector({}, b"any key: counts do not depend on it")
    for e in events:
        one_process.process_one(e)
    expected = one_process.name_count_items
    for w in (first, second):
        assert w.metric("pantau_events_total", stream="registrations", outcome="processed") > 0, \
            "one worker got no partition: nothing would be shared"
        w.wait_metric("pantau_duplicate_name_counts", expected)
        assert w.metric("pantau_duplicate_name_counts") == expected

    verdicts = [{"alert_id": pair["alert_id"], "verdict": "false_positive", "decided_at": "2023-11-02T10:00:00+07:00",
                 "reviewer": "staff-1"}] * 3
    run(produce(s, [("feedback", pair["alert_id"].encode(), orjson.dumps(v)) for v in verdicts]))
    for w in (first, second):
        w.wait_metric("pantau_feedback_learned_total", 3)
    assert first.metric("pantau_events_total", stream="feedback", outcome="processed") + \
        second.metric("pantau_events_total", stream="feedback", outcome="processed") == 3
    second.stop()


def counts_on_topic(settings, at_least, timeout=30.0):
    """Names and words in the worker's name-count messages, once they reach ``at_least``."""
    from app.worker import shared_topic_name
    from models.duplicate_person import PersonDuplicateDetector

    deadline = time.monotonic() + timeout
    while True:
        sketch = PersonDuplicateDetector({}, b"cells only: the key plays no part")
        for record in run(read_topic(settings, shared_topic_name(settings, "name_counts"), until=1, timeout=5)):
            sketch.merge_name_counts(record.value)
        if sketch.name_count_items >= at_least or time.monotonic() > deadline:
            return sketch.name_count_items
        time.sleep(0.5)


def test_tally_findings_end_to_end(worker_factory):
    worker = worker_factory().start()
    s = worker.settings
    village = "3273011001"
    peers = [result(tps=f"{village}{i:03d}", votes={"01": 70 + i, "02": 95 - i, "03": 40}, dpt=290, invalid=4)
             for i in range(1, 9)]
    # 100 % turnout, one candidate takes everything, among ordinary peers
    lone = result(tps=f"{village}020", votes={"01": 0, "02": 286, "03": 0}, dpt=286, invalid=0)
    # 177 read as 677: the sum no longer matches valid votes
    misread = result(tps=f"{village}021", votes={"01": 677, "02": 60, "03": 20}, valid=257, invalid=5, dpt=280)
    first = result(tps=f"{village}022", votes={"01": 100, "02": 90, "03": 30})
    revised = dict(result(tps=f"{village}022", votes={"01": 100, "02": 99, "03": 30}), revision=1)
    events = peers + [lone, misread, first, revised]
    run(produce(s, [("results", e["tps"].encode(), dumps(e)) for e in events]))
    alerts = run(read_alerts_covering(s, {lone["event_id"], misread["event_id"], revised["event_id"]}))
    by = {}
    for a in alerts:
        for e in a["event_ids"]:
            by.setdefault(e, {})[a["detector"]] = a
    assert "peer_outlier" in by[lone["event_id"]]
    misread_alert = by[misread["event_id"]]["ocr_misread"]
    assert misread_alert["severity"] == "warning"
    assert "177" in orjson.dumps(misread_alert["evidence"]).decode()
    assert by[misread["event_id"]]["tally_arithmetic"]["severity"] == "critical"
    rev = by[revised["event_id"]]["revision"]
    assert "90" in orjson.dumps(rev["evidence"]).decode() and "99" in orjson.dumps(rev["evidence"]).decode()
    assert not any("tally_arithmetic" in by.get(p["event_id"], {}) for p in peers)


def test_registration_integrity_end_to_end(worker_factory):
    worker = worker_factory().start()
    s = worker.settings
    # province code 10 does not exist (found in the 2019 list)
    bad_province = registration(name="Rina Wulandari", birth="1991-03-04", sex="P", serial=3,
                                nik="1001014403910003")
    # 14 on polling day and never married: not eligible
    child = registration(name="Putri Ayu", birth="2010-01-20", sex="P", serial=8, marital_status="B")
    # a married 16-year-old may vote: no eligibility alert
    married = registration(name="Sri Wahyuni", birth="2007-06-01", sex="P", serial=9, marital_status="S")
    # 25 registrations on one family card within minutes
    card = "3273010101010077"
    burst = [registration(name=f"Anggota Keluarga {i}", birth=f"19{60 + i}-01-1{i % 9 + 1}", sex="L",
                          serial=200 + i, nkk=card, occurred_at=f"2023-11-01T10:{i:02d}:00+07:00")
             for i in range(25)]
    events = [bad_province, child, married, *burst]
    run(produce(s, reg_records(*events)))
    alerts = run(read_alerts_covering(s, {bad_province["event_id"], child["event_id"], burst[-1]["event_id"]}))
    by_event: dict[str, set[str]] = {}
    for a in alerts:
        for e in a["event_ids"]:
            by_event.setdefault(e, set()).add(a["detector"])
    assert "nik_integrity" in by_event[bad_province["event_id"]]
    assert "eligibility" in by_event[child["event_id"]]
    assert "eligibility" not in by_event.get(married["event_id"], set())
    household = [a for a in alerts if a["detector"] == "household"]
    assert household and household[-1]["subject"]["kind"] == "household"
    assert card not in orjson.dumps(household).decode(), "the NKK is personal data: keyed hash only"
