"""Faults on the real broker: a worker killed mid-stream, a cut connection, a worker joining and leaving.

Load is a stream of tallies that each break the arithmetic in their own way,
so each event must produce exactly one ``tally_arithmetic`` alert of its own:
an event lost shows as a missing alert, a finding doubled shows as two ids.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict

import pytest

from app.broker import BrokerProxy, EmbeddedBroker, free_port, wait_for_metadata
from tests.conftest import fresh_settings, read_alerts_covering, run
from tests.factories import dumps, result

pytestmark = pytest.mark.integration


def broken_tallies(n: int, start: int = 0) -> list[dict]:
    """``n`` tallies at distinct TPS whose candidate sum exceeds valid by exactly 1."""
    out = []
    for i in range(start, start + n):
        tps = f"3273{(i // 1000) % 100:02d}{1001 + (i // 10) % 100:04d}{i % 1000:03d}"
        out.append(result(tps=tps, votes={"01": 50, "02": 60, "03": 41}, valid=150, invalid=3, voters=153,
                          event_id=f"load-{i}"))
    return out


class SteadyProducer(threading.Thread):
    """Sends events at a steady rate, retrying each until the broker takes it (at-least-once)."""

    def __init__(self, settings, events: list[dict], rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.events, self.rate = settings, events, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def _run(self) -> None:
        from app.kafka_io import start_producer

        producer = await start_producer(self.settings, request_timeout_ms=5000, retry_backoff_ms=500)
        try:
            started = time.monotonic()
            for i, event in enumerate(self.events):
                while True:
                    try:
                        await producer.send_and_wait(self.settings.topic_results, key=event["tps"].encode(),
                                                     value=dumps(event))
                        break
                    except Exception:  # noqa: BLE001 - the connection is being cut on purpose
                        await asyncio.sleep(0.5)
                self.sent += 1
                ahead = (i + 1) / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()


def assert_one_alert_per_event(alerts: list[dict], events: list[dict]) -> None:
    ids_by_event: dict[str, set[str]] = defaultdict(set)
    payloads: dict[str, list] = defaultdict(list)
    for a in alerts:
        if a["detector"] == "tally_arithmetic":
            for e in a["event_ids"]:
                ids_by_event[e].add(a["alert_id"])
            # everything but the emission time must be the same when an alert is republished
            payloads[a["alert_id"]].append({k: v for k, v in a.items() if k != "detected_at"})
    missing = [e["event_id"] for e in events if not ids_by_event.get(e["event_id"])]
    assert not missing, f"{len(missing)} events lost, e.g. {missing[:5]}"
    doubled = {e: ids for e, ids in ids_by_event.items() if len(ids) > 1}
    assert not doubled, f"findings with more than one alert id: {list(doubled.items())[:3]}"
    for aid, versions in payloads.items():
        assert all(v == versions[0] for v in versions), f"{aid} republished with another payload"


def test_worker_killed_mid_stream_then_restarted(worker_factory):
    first = worker_factory().start()
    s = first.settings
    events = broken_tallies(400, start=20_000)
    producer = SteadyProducer(s, events, rate=10)
    producer.start()
    first.wait_metric("pantau_events_total", 60, stream="results", outcome="processed")
    first.kill()  # SIGKILL: no commit, no flush, no goodbye to the group
    killed_at = time.monotonic()
    exit_code = first.proc.returncode

    # The same data dir, as a supervisor would restart it; tables come back from RocksDB and the changelog.
    second = worker_factory(s)
    second.start(timeout=120)
    ready_in = time.monotonic() - killed_at
    producer.join(timeout=300)
    assert producer.error is None and producer.sent == len(events)
    # at-least-once: events after the last commit are processed again, so count alerts, not the metric
    alerts = run(read_alerts_covering(s, {e["event_id"] for e in events}, timeout=240))
    caught_up_in = time.monotonic() - killed_at
    print(f"\nkilled (exit {exit_code}); the restarted worker was ready {ready_in:.1f}s after the kill "
          f"and every one of {len(events)} events had its alert {caught_up_in:.1f}s after the kill "
          f"(the producer sent for {len(events) / 10:.0f}s)")
    assert_one_alert_per_event(alerts, events)
    assert second.proc.poll() is None


def test_cut_connection_for_a_minute_then_recover(worker_factory, tmp_path):
    proxy_port = free_port()
    with EmbeddedBroker(advertised_port=proxy_port, log_path=tmp_path / "broker.log") as broker:
        proxy = BrokerProxy(origin_port=broker.port, port=proxy_port).start()
        run(wait_for_metadata(broker.bootstrap))
        worker = worker_factory(fresh_settings(broker.url, tmp_path)).start()
        s = worker.settings
        events = broken_tallies(600)
        producer = SteadyProducer(s, events, rate=5)
        producer.start()
        worker.wait_metric("pantau_events_total", 30, stream="results", outcome="processed")

        proxy.stop()
        cut_at = time.monotonic()
        saw_not_ready = False
        while time.monotonic() - cut_at < 60:
            status, _ = worker.get("/ready")
            saw_not_ready |= status == 503
            time.sleep(1)
        assert saw_not_ready, "/ready stayed true while the broker was unreachable"
        assert worker.metric("pantau_broker_disconnects_total") >= 1
        assert worker.metric("pantau_broker_up") == 0

        proxy = BrokerProxy(origin_port=broker.port, port=proxy_port).start()
        restored_at = time.monotonic()
        recovered_in = worker.wait_ready(timeout=120)
        print(f"\nready again {recovered_in:.1f}s after the connection was restored")
        producer.join(timeout=300)
        assert producer.error is None and producer.sent == len(events)
        worker.wait_metric("pantau_events_total", len(events), timeout=180, stream="results", outcome="processed")
        print(f"all {len(events)} events processed {time.monotonic() - restored_at:.1f}s after the restore")
        alerts = run(read_alerts_covering(s, {e["event_id"] for e in events}))
        assert_one_alert_per_event(alerts, events)
        assert worker.proc.poll() is None, "the worker must not exit on a lost connection"
        proxy.stop()


def test_second_worker_joins_and_leaves_under_load(worker_factory, broker, tmp_path):
    first = worker_factory(partitions=4).start()
    s = first.settings
    events = broken_tallies(900, start=10_000)
    producer = SteadyProducer(s, events, rate=15)
    producer.start()
    first.wait_metric("pantau_events_total", 50, stream="results", outcome="processed")

    second = worker_factory(s.replace(web_port=free_port(), data_dir=tmp_path / "second")).start(timeout=120)
    second.wait_metric("pantau_events_total", 1, timeout=120, stream="results", outcome="processed")
    time.sleep(15)  # more than a session timeout: leave only after the group settled (docs/broker.md)
    processed_by_second = second.metric("pantau_events_total", stream="results", outcome="processed")
    second.stop()

    producer.join(timeout=300)
    assert producer.error is None
    alerts = run(read_alerts_covering(s, {e["event_id"] for e in events}))
    assert processed_by_second > 0, "the second worker never got partitions"
    assert_one_alert_per_event(alerts, events)
