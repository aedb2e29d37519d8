"""Volume alerts raised and resolved by a real worker on the embedded broker."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import produce, run
from tests.factories import dumps
from tests.volume_shape import spike_and_silence

pytestmark = pytest.mark.integration


async def volume_alerts(settings, want: int, timeout: float = 120.0) -> list[dict]:
    import time

    import orjson
    from aiokafka import AIOKafkaConsumer

    from app.kafka_io import client_options

    consumer = AIOKafkaConsumer(settings.topic_alerts, **client_options(settings), auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [a for a in map(lambda r: orjson.loads(r.value), records) if a["detector"] == "volume"]
            if sum(a["status"] == "resolved" for a in out) >= want:
                break
    finally:
        await consumer.stop()
    return out


def overlaps(alert: dict, window: tuple[datetime, datetime]) -> bool:
    start, end = (datetime.fromisoformat(alert["window"][k]) for k in ("start", "end"))
    return start < window[1] and window[0] < end


def test_spike_and_silence_are_raised_then_resolved(worker_factory):
    # One input partition: this test sends eight hours of history at once, and
    # with several partitions one can run hours ahead of another in event
    # time, so the other's counts arrive after their bucket closed (a known
    # limit of the per-stream watermark with backfills, docs/volume.md).
    worker = worker_factory(partitions=1).start()
    s = worker.settings
    events, windows = spike_and_silence()
    run(produce(s, [("results", e["tps"].encode(), dumps(e)) for e in events]))
    alerts = run(volume_alerts(s, want=6))
    series = "results/regency=3273/source=all"
    mine = [a for a in alerts if a["subject"]["id"] == series]
    spike = [a for a in mine if a["evidence"]["direction"] == "spike" and overlaps(a, windows["spike"])]
    silence = [a for a in mine if overlaps(a, windows["silence"]) and a["evidence"]["direction"] == "drop"]
    assert spike and silence, [(a["status"], a["evidence"]["direction"], a["window"]) for a in mine]
    for found in (spike, silence):
        assert {a["alert_id"] for a in found} == {found[0]["alert_id"]}, "one alert per series while it lasts"
    assert any(a["status"] == "resolved" for a in alerts if a["alert_id"] == spike[0]["alert_id"])
    assert any(a["status"] == "resolved" for a in alerts if a["alert_id"] == silence[0]["alert_id"])
    opened = next(a for a in spike if a["status"] == "open")
    assert opened["evidence"]["seen"] == 150 and opened["evidence"]["expected"] < 20
    assert opened["subject"]["kind"] == "series" and opened["region"]["regency"] == "3273"
    # the gauge Grafana reads has the province's latest score
    worker.wait_metric("pantau_volume_score", 0.0, stream="results", province="32")
