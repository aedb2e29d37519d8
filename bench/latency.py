"""Event-to-alert latency through the broker and a real ``pantau worker``.

Run alone: ``.venv/bin/python -m bench.latency --rate 50 --seconds 20``

A fresh worker (fresh app id and topics) gets the simulator's mixed stream at
a steady ``--rate``, timestamps (``occurred_at`` / ``submitted_at``) set to
now with millisecond precision; one event in ``--alert-every`` is a tally
whose candidate votes do not sum to ``valid`` (a ``tally_arithmetic``
alert), on a TPS code of its own. The alerts topic is read in the same
process; latency = alert received - event handed to the producer, for the
first alert naming each such event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import datetime
from pathlib import Path

import orjson

from app.settings import Settings
from bench.common import bench_settings, cpu_seconds, ensure, now_ms, percentile, rss_mb
from bench.throughput import spawn
from tests.conftest import WorkerProcess


def alerting_tally(template: dict, k: int, tag: str) -> tuple[str, dict]:
    """A tally on its own TPS code whose votes sum to ``valid`` + 7."""
    value = orjson.loads(orjson.dumps(template))
    tps = value["tps"][:10] + f"{100 + k % 800:03d}"
    first = next(iter(value["votes"]))
    value["votes"][first] += 7
    value.update(tps=tps, event_id=f"lat-{tag}-{k}", revision=0, operator_id=f"KPPS-{tps}")
    return tps, value


class Stream:
    """Endless sim events, timestamps set at send time; every ``alert_every``-th an alerting tally."""

    def __init__(self, events, alert_every: int, tag: str):
        self.events = events
        self.templates = [e.value for e in events if e.stream == "results"]
        self.alert_every = alert_every
        self.tag = tag
        self.i = 0
        self.k = 0

    def next(self) -> tuple[str, bytes, dict, bool]:
        self.i += 1
        if self.i % self.alert_every == 0:
            template = self.templates[self.k % len(self.templates)]
            tps, value = alerting_tally(template, self.k, f"{self.tag}-{self.k // (800 * len(self.templates))}")
            self.k += 1
            value["submitted_at"] = now_ms()
            return "results", tps.encode(), value, True
        e = self.events[(self.i - self.i // self.alert_every) % len(self.events)]
        value = dict(e.value)
        cycle = self.i // len(self.events)
        if cycle:
            value["event_id"] = f"{value['event_id']}-{cycle}"
        value["occurred_at" if e.stream == "registrations" else "submitted_at"] = now_ms()
        return e.stream, e.key.encode(), value, False


async def drive(settings: Settings, stream: Stream, rate: float, seconds: float, drain: float = 15.0,
                on_tick=None, reset: str = "earliest", dump: Path | None = None) -> dict:
    """Produce at ``rate`` for ``seconds`` while reading alerts; latency of the alerting events."""
    from aiokafka import AIOKafkaConsumer

    from app.commands import topic_for
    from app.kafka_io import Pacer, client_options, start_producer

    sent_at: dict[str, float] = {}
    got: dict[str, float] = {}
    detected: dict[str, float] = {}  # the alert's detected_at: when the worker built it
    # The reader's own fetch wait is measuring overhead, not the worker's latency: keep it short.
    consumer = AIOKafkaConsumer(settings.topic_alerts, **client_options(settings), auto_offset_reset=reset,
                                fetch_max_wait_ms=50,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                for r in records:
                    alert = orjson.loads(r.value)
                    for eid in alert.get("event_ids", ()):
                        if eid in sent_at and eid not in got:
                            got[eid] = now
                            detected[eid] = datetime.fromisoformat(alert["detected_at"]).timestamp()

    reader = asyncio.create_task(read())
    producer = await start_producer(settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    pacer = Pacer(rate)
    n = 0
    try:
        while loop.time() - started < seconds:
            s, key, value, alerting = stream.next()
            if alerting:
                sent_at[value["event_id"]] = time.time()
            await producer.send(topic_for(settings, s), key=key, value=orjson.dumps(value))
            n += 1
            if on_tick is not None:
                on_tick(n, sent_at, got)
            await pacer.sent(n)
        await producer.flush()
        produced_for = loop.time() - started
        deadline = loop.time() + drain
        while loop.time() < deadline and len(got) < len(sent_at):
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await reader
        await producer.stop()
        await consumer.stop()
    lat = [got[e] - sent_at[e] for e in got]
    result = {"sent": n, "rate": n / produced_for, "alerting": len(sent_at), "alerted": len(got),
              "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "max": max(lat) if lat else None}
    if dump is not None:
        # Per alerting event: seconds after the start, latency, and the part of it
        # before the worker built the alert (the rest is publishing and delivery).
        first = min(sent_at.values(), default=0.0)
        dump.write_bytes(orjson.dumps(sorted(
            (sent_at[e] - first, got[e] - sent_at[e], detected[e] - sent_at[e]) for e in got)))
    return result


def run_latency(broker_url: str, base: Path, events, rate: float, seconds: float, alert_every: int = 10,
                dump: Path | None = None, **overrides: object) -> dict:
    settings = bench_settings(broker_url, base, **overrides)
    ensure(settings)
    worker = spawn(WorkerProcess(settings, base / f"latency-{settings.app_id}.log"))
    try:
        worker.wait_ready(120)
        cpu_before = cpu_seconds(worker.proc.pid)
        result = asyncio.run(drive(settings, Stream(events, alert_every, settings.app_id), rate, seconds,
                                   dump=dump))
        result["rss_mb"] = rss_mb(worker.proc.pid)
        cpu_after = cpu_seconds(worker.proc.pid)
        if cpu_before is not None and cpu_after is not None:  # the worker's cost of keeping up, per event sent
            result["worker_cpu_ms_per_event"] = 1000 * (cpu_after - cpu_before) / result["sent"]
    finally:
        worker.stop()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--alert-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=Settings().fetch_max_wait_ms,
                        help="the worker's PANTAU_FETCH_MAX_WAIT_MS (Faust's own is 1500)")
    parser.add_argument("--dump", type=Path, help="write [seconds after start, latency] per alerting event (JSON)")
    return parser.parse_args(argv)


def main() -> None:
    from app.broker import EmbeddedBroker
    from app.demo import interleaved

    args = parse_args()
    base = Path(os.environ.get("BENCH_DIR", f"/tmp/pantau-bench-{os.getpid()}"))
    base.mkdir(parents=True, exist_ok=True)
    events = interleaved(args.seed)
    with EmbeddedBroker(log_path=base / "broker.log") as broker:
        print(run_latency(broker.url, base, events, args.rate, args.seconds, args.alert_every,
                                args.dump, fetch_max_wait_ms=args.fetch_max_wait_ms))


if __name__ == "__main__":
    main()
