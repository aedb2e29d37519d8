"""Soak: one ``pantau worker`` at a steady rate for a long time; memory, lag and latency per minute.

Run: ``.venv/bin/python -m bench.soak --minutes 30 --rate 100 [--commit HEAD]`` (not part of ``make bench``);
RSS after a million events: ``--minutes 180 --rate 200 --backlog 1000000 --until-processed 1000000``.

The embedded broker and a fresh worker (RocksDB store); the simulator's mixed
stream is sent at ``--rate`` with timestamps set to now, cycled with fresh
identities so the indexes keep growing as in a real registration period
(cycle k: NIK serial and NKK serial shifted by k, first name rotated, new
event ids; tallies get new TPS numbers). One event in ``--alert-every`` is a
tally that fails its arithmetic, for latency. Every minute one line: events
sent and processed, lag (sent - processed), worker RSS, data dir size, RocksDB
memory in use (memtables + block cache, from /metrics), and
p50/p99 of alert latency over that minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import orjson

if __name__ == "__main__" and "--commit" in os.sys.argv:  # the snapshot must be chosen before bench.common loads
    from bench.__main__ import _snapshot

    os.environ["BENCH_CODE"] = str(_snapshot(os.sys.argv[os.sys.argv.index("--commit") + 1]))

from bench.common import (  # noqa: E402
    WIB, bench_settings, dir_bytes, ensure, http_get, pantau_processed, produce_all, rss_mb,
)
from bench.latency import Stream, drive  # noqa: E402
from bench.throughput import spawn  # noqa: E402
from tests.conftest import WorkerProcess  # noqa: E402


class CyclingStream(Stream):
    """Like :class:`bench.latency.Stream`, with fresh voters and TPS on every pass over the events."""

    def next(self):  # noqa: ANN201
        stream, key, value, alerting = super().next()
        cycle = self.i // len(self.events)
        if alerting or not cycle:
            return stream, key, value, alerting
        value = orjson.loads(orjson.dumps(value))
        if stream == "registrations":
            voter = value["voter"]
            nik = voter["nik"]
            voter["nik"] = nik[:12] + f"{(int(nik[12:]) + 37 * cycle) % 9999 + 1:04d}"
            if voter.get("nkk"):
                voter["nkk"] = voter["nkk"][:12] + f"{(int(voter['nkk'][12:]) + 37 * cycle) % 9999 + 1:04d}"
            names = voter["name"].split(" ")
            other = self.events[(self.i * 7919) % len(self.events)].value
            if other["schema"] == "registration.v1":
                names[0] = other["voter"]["name"].split(" ")[0]
            voter["name"] = " ".join(names)
            key = voter["nik"].encode()
        else:
            tps = value["tps"][:10] + f"{(int(value['tps'][10:]) + 50 * cycle) % 999 + 1:03d}"
            value.update(tps=tps, operator_id=f"KPPS-{tps}")
            key = tps.encode()
        return stream, key, value, alerting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--alert-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--until-processed", type=int, default=None, metavar="N",
                        help="stop at the end of the first minute with N events processed")
    parser.add_argument("--backlog", type=int, default=None, metavar="N",
                        help="send N events at once before the first minute instead of --rate per second (their "
                             "timestamps spaced 1/--rate apart, ending now), then only watch; no latency figures")
    parser.add_argument("--commit", default=None, help="run the worker from this git revision (snapshot in /tmp)")
    args = parser.parse_args()

    from app.broker import EmbeddedBroker
    from app.demo import interleaved

    base = Path(tempfile.mkdtemp(prefix="pantau-soak-"))
    events = interleaved(args.seed)
    with EmbeddedBroker(log_path=base / "broker.log") as broker:
        settings = bench_settings(broker.url, base)
        ensure(settings)
        worker = spawn(WorkerProcess(settings, base / "worker.log"))
        try:
            worker.wait_ready(120)
            print(f"soak: {args.minutes} min at {args.rate} ev/s; worker log {worker.log_path}", flush=True)
            print("minute  sent  processed  lag  rss_MB  data_MB  rocks_MB  alerts  p50_ms  p99_ms", flush=True)
            stream = CyclingStream(events, args.alert_every, settings.app_id)
            if args.backlog:
                n, seconds = asyncio.run(produce_all(settings, _backlog(stream, args.backlog, args.rate)))
                print(f"backlog: {n} events sent in {seconds:.0f} s", flush=True)
            asyncio.run(_soak(settings, worker, stream, args))
        finally:
            worker.stop()


def _backlog(stream: CyclingStream, n: int, rate: float):
    """``n`` events of ``stream`` as (stream, key, value bytes), event times 1/``rate`` s apart up to now."""
    start = datetime.now(WIB) - timedelta(seconds=n / rate)
    for i in range(n):
        kind, key, value, _alerting = stream.next()
        stamp = (start + timedelta(seconds=i / rate)).isoformat(timespec="milliseconds")
        value["occurred_at" if kind == "registrations" else "submitted_at"] = stamp
        yield kind, key, orjson.dumps(value)


def rocksdb_mb(port: int) -> float:
    """RocksDB memtables + block cache in use (``pantau_rocksdb_memory_bytes``), MB."""
    body = http_get(f"http://127.0.0.1:{port}/metrics")
    return sum(float(v) for v in re.findall(rb'^pantau_rocksdb_memory_bytes\{[^}]*\} (\S+)$', body, re.M)) / 2**20


async def _soak(settings, worker: WorkerProcess, stream: CyclingStream, args) -> None:
    sent_total = 0
    for minute in range(1, int(args.minutes + 0.999) + 1):
        seconds = min(60.0, args.minutes * 60 - (minute - 1) * 60)
        if args.backlog:
            await asyncio.sleep(seconds)
            result = {"sent": args.backlog if minute == 1 else 0, "alerted": 0, "alerting": 0, "p50": None,
                      "p99": None}
        else:
            result = await drive(settings, stream, args.rate, seconds, drain=0, reset="latest")
        sent_total += result["sent"]
        processed = await asyncio.to_thread(pantau_processed, settings.web_port)
        rss = rss_mb(worker.proc.pid)
        data = dir_bytes(settings.data_dir) / 2**20
        rocks = await asyncio.to_thread(rocksdb_mb, settings.web_port)
        fmt = lambda v: "-" if v is None else f"{v * 1000:.0f}"  # noqa: E731
        print(f"{minute:6d} {sent_total:6d} {processed:10.0f} {sent_total - processed:5.0f} {rss or 0:7.0f} "
              f"{data:8.1f} {rocks:9.1f} {result['alerted']:3d}/{result['alerting']:<3d} {fmt(result['p50']):>6} "
              f"{fmt(result['p99']):>6}", flush=True)
        if worker.proc.poll() is not None:
            print("the worker exited:", worker.log_tail(), flush=True)
            return
        if args.until_processed and processed >= args.until_processed:
            print(f"{processed:.0f} events processed: RSS {rss or 0:.0f} MB, data dir {data:.1f} MB", flush=True)
            return


if __name__ == "__main__":
    main()
