"""End-to-end worker throughput on the embedded broker: a Faust no-op app vs ``pantau worker``.

Run alone: ``.venv/bin/python -m bench.throughput [--repeats 3] [--seed 1]`` (``python -m bench`` runs it too).

A mixed simulator stream (``app.demo.interleaved``: registrations with the
tallies spread among them, ~530-byte JSON, timestamps set when produced) is
pre-produced onto fresh topics. Then, alternately on the same topics, a no-op
Faust app (:mod:`bench.noop_app`) and a real ``pantau worker`` (all
detectors, RocksDB store), each with a fresh app id, read it from the start.
The rate is taken over the steady part: between the moments 10 % and 90 % of
the events were processed (``/count`` of the no-op app, ``pantau_events_total``
on the worker's ``/metrics``; crossing times interpolated between polls).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from app.settings import Settings
from bench.common import (
    CODE, ROOT, RateRun, bench_settings, dir_bytes, ensure, noop_count, now_ms, pantau_processed, poll_until,
    code_env, cpu_seconds, produce_all, rss_mb, stamped, start_pyspy, stop_pyspy, table_sizes, with_app,
)
from tests.conftest import WorkerProcess


def records(events, stamp: str | None = None):
    stamp = stamp or now_ms()
    for e in events:
        yield e.stream, e.key.encode(), stamped(e, stamp)


def prepare(broker_url: str, base: Path, events, tag: str | None = None) -> tuple[Settings, dict]:
    """Fresh topics holding ``events``; the settings and how fast they were produced."""
    settings = bench_settings(broker_url, base, tag)
    ensure(settings)
    n, seconds = asyncio.run(produce_all(settings, records(events)))
    return settings, {"events": n, "produce_seconds": seconds, "produce_rate": n / seconds}


def spawn(worker: WorkerProcess) -> WorkerProcess:
    """Start the worker process without waiting for /ready."""
    from app.broker import _die_with_parent

    worker.proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "app.cli", "worker"], env=code_env(worker.env()), cwd=CODE,
        stdout=worker.log_path.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    return worker


def run_noop(settings: Settings, total: int, logs: Path, timeout: float = 120.0) -> dict:
    from app.broker import _die_with_parent, free_port
    from app.demo import stop_process

    settings = with_app(settings)
    port = free_port()
    env = code_env(WorkerProcess(settings, logs / "x").env())
    env["BENCH_COUNT_PORT"] = str(port)
    log = logs / f"noop-{settings.app_id}.log"
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, str(ROOT / "bench" / "noop_app.py")], env=env, cwd=CODE, stdout=log.open("ab"),
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
    )
    started = time.monotonic()
    try:
        run = poll_until(lambda: noop_count(port), total, timeout, 0.05, alive=lambda: proc.poll() is None)
    finally:
        stop_process(proc)
    return _result(run, started, f"noop {settings.app_id}", log)


def _result(run: RateRun, started: float, what: str, log: Path) -> dict:
    last = run.last
    rate = run.rate()
    if rate is None:
        raise RuntimeError(f"{what}: processed {last:.0f} of {run.total} (log: {log})")
    first = run.crossing(1)
    return {"rate": rate, "processed": last, "total": run.total, "complete": last >= run.total,
            "first_event_after": (first - started) if first else None,
            "end_after": run.samples[-1][0] - started}


def run_pantau(settings: Settings, total: int, logs: Path, timeout: float = 240.0,
               profile_out: Path | None = None, cap: float | None = None) -> dict:
    """One ``pantau worker`` (fresh app id) over the topics: rate, RSS, data on disk."""
    settings = with_app(settings)
    worker = spawn(WorkerProcess(settings, logs / f"worker-{settings.app_id}.log"))
    pid = worker.proc.pid
    state: dict = {"rss_base": None, "spy": None, "cpu_base": None}

    def sample(t: float, n: float) -> None:
        if n == 0:
            state["rss_base"] = rss_mb(pid)
            state["cpu_base"] = cpu_seconds(pid)
        elif profile_out is not None and state["spy"] is None:
            state["spy"] = start_pyspy(pid, profile_out)

    started = time.monotonic()
    try:
        run = poll_until(lambda: pantau_processed(settings.web_port), total, timeout, 0.5,
                         alive=lambda: worker.proc.poll() is None, on_sample=sample, cap=cap)
        stop_pyspy(state["spy"])
        cpu_end, n_end = cpu_seconds(pid), run.last
        time.sleep(1.0)  # let the second-stage agents finish the last routed events
        rss_end = rss_mb(pid)
        registrations = worker.metric("pantau_events_total", stream="registrations", outcome="processed")
        index_entries = {
            index: worker.metric("pantau_duplicate_index_entries", index=index) for index in ("nik", "person")
        }
    finally:
        stop_pyspy(state["spy"])
        worker.stop()
    result = _result(run, started, f"pantau {settings.app_id}", worker.log_path)
    result.update(
        pid=pid, rss_base_mb=state["rss_base"], rss_end_mb=rss_end, registrations=registrations,
        cpu_ms_per_event=(1000 * (cpu_end - state["cpu_base"]) / n_end
                          if n_end and cpu_end is not None and state["cpu_base"] is not None else None),
        index_entries=index_entries, data_bytes=dir_bytes(settings.data_dir), tables=table_sizes(settings.data_dir),
    )
    return result


async def _route_progress(settings: Settings) -> tuple[int, int]:
    """(end offsets, committed offsets of the worker's group) summed over the second-stage topics."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from app.kafka_io import client_options
    from app.pipeline import ROUTE_KINDS
    from app.worker import internal_topic_name

    consumer = AIOKafkaConsumer(**client_options(settings), group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(internal_topic_name(settings, k), p)
               for k in ROUTE_KINDS for p in range(settings.partitions)]
        end = sum((await consumer.end_offsets(tps)).values())
        committed = sum([(await consumer.committed(tp)) or 0 for tp in tps])
    finally:
        await consumer.stop()
    return end, committed


def run_end_to_end(settings: Settings, total: int, logs: Path, timeout: float = 240.0) -> dict:
    """One uncapped ``pantau worker`` over ``total`` events: when the input was done, and when the
    second-stage (routed) topics were committed to their end, i.e. all the work was done.

    Committed offsets move every ``broker_commit_every`` (Faust: ~2.8 s), so the stage-2 time is
    known to a few seconds; Tansu's end offsets can be off by up to a batch (docs/broker.md).
    """
    settings = with_app(settings)
    worker = spawn(WorkerProcess(settings, logs / f"e2e-{settings.app_id}.log"))
    try:
        started = time.monotonic()
        run = poll_until(lambda: pantau_processed(settings.web_port), total, timeout, 0.5,
                         alive=lambda: worker.proc.poll() is None)
        first, input_done = run.crossing(1), run.crossing(total)
        if first is None or input_done is None:
            raise RuntimeError(f"end to end: input processed {run.last:.0f} of {total} (log: {worker.log_path})")
        routed = committed = 0
        stage2_done = None
        while time.monotonic() - started < timeout and worker.proc.poll() is None:
            routed, committed = asyncio.run(_route_progress(settings))
            if routed and committed >= routed - 4:  # Tansu's end offsets may be off by a little
                stage2_done = time.monotonic()
                break
            time.sleep(1.0)
    finally:
        worker.stop()
    return {"events": total, "input_seconds": input_done - first, "input_rate": run.rate(),
            "routed": routed, "committed": committed,
            "all_seconds": (stage2_done - first) if stage2_done else None,
            "end_to_end_rate": total / (stage2_done - first) if stage2_done else None}


def sustainable_rate(input_rate: float, end_to_end_rate: float | None) -> tuple[float, str]:
    """What one worker sustains: the slower of its input rate and its end-to-end rate.

    Above the end-to-end rate (second stage included) the routed topics'
    backlog grows without bound, and the route agents take the input
    agent's core, so that rate, when measured and lower, is the one to halve
    for the latency target.

    >>> sustainable_rate(202.0, 98.0), sustainable_rate(202.0, None), sustainable_rate(90.0, 98.0)
    ((98.0, 'end to end'), (202.0, 'input'), (90.0, 'input'))
    """
    if end_to_end_rate and end_to_end_rate < input_rate:
        return end_to_end_rate, "end to end"
    return input_rate, "input"


def run_scaleout(broker_url: str, base: Path, events, logs: Path, workers: int = 2,
                 timeout: float = 240.0, cap: float | None = None) -> dict:
    """``workers`` pantau workers in one group (4 partitions): all ready first, then the events arrive."""
    settings = bench_settings(broker_url, base)
    ensure(settings)
    group = [spawn(WorkerProcess(settings.replace(web_port=_free(), data_dir=base / f"data-{settings.app_id}-{i}"),
                                 logs / f"scale-{settings.app_id}-{i}.log")) for i in range(workers)]
    try:
        _wait_all_ready(group, timeout=120)
        total = len(events)
        n, _ = asyncio.run(produce_all(settings, records(events)))
        started = time.monotonic()

        def processed() -> float:
            return sum(pantau_processed(w.settings.web_port) for w in group)

        run = poll_until(processed, total, timeout, 0.5, alive=lambda: all(w.proc.poll() is None for w in group),
                         cap=cap)
        split = [pantau_processed(w.settings.web_port) for w in group]
        rss = [rss_mb(w.proc.pid) for w in group]
    finally:
        for w in group:  # one at a time (docs/broker.md: a group whose leader leaves mid-rebalance can stick)
            w.stop()
    result = _result(run, started, f"scale-out {settings.app_id}", group[0].log_path)
    result.update(split=split, rss_mb=rss, workers=workers, partitions=settings.partitions)
    return result


def _free() -> int:
    from app.broker import free_port

    return free_port()


def _wait_all_ready(group: list[WorkerProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        for w in group:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{w.log_tail()}")
        try:
            ok = all(w.get("/ready")[0] == 200 for w in group)
        except OSError:
            ok = False
        streak = streak + 1 if ok else 0
        if streak >= 6:  # ready together for ~3 s: the group has settled
            return
        time.sleep(0.5)
    raise RuntimeError("workers not ready together:\n" + "\n".join(w.log_tail(10) for w in group))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``waits`` is the list of fetch waits to run side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cap", type=float, default=None, help="stop a pantau run this long after its first event")
    parser.add_argument("--fetch-max-wait-ms", default=str(Settings().fetch_max_wait_ms),
                        help="the worker's PANTAU_FETCH_MAX_WAIT_MS; several (e.g. 100,1500) are run side by side")
    args = parser.parse_args(argv)
    args.waits = [int(w) for w in args.fetch_max_wait_ms.split(",")]
    return args


def main() -> None:
    from app.broker import EmbeddedBroker
    from app.demo import interleaved
    from bench.common import median

    args = parse_args()
    waits = args.waits
    base = Path(os.environ.get("BENCH_DIR", f"/tmp/pantau-bench-{os.getpid()}"))
    base.mkdir(parents=True, exist_ok=True)
    events = interleaved(args.seed)
    with EmbeddedBroker(log_path=base / "broker.log") as broker:
        settings, produced = prepare(broker.url, base, events)
        print("produced", produced)
        noop: list[float] = []
        pantau: dict[int, list] = {w: [] for w in waits}
        ratio: dict[int, list] = {w: [] for w in waits}
        cpu: dict[int, list] = {w: [] for w in waits}
        for _ in range(args.repeats):
            noop.append(run_noop(settings, len(events), base)["rate"])
            for wait in waits:
                run = run_pantau(settings.replace(fetch_max_wait_ms=wait), len(events), base, cap=args.cap)
                pantau[wait].append(run["rate"])
                ratio[wait].append(pantau[wait][-1] / noop[-1])
                cpu[wait].append(run["cpu_ms_per_event"])
                print(f"noop {noop[-1]:.0f} ev/s  pantau (fetch wait {wait} ms) {pantau[wait][-1]:.0f} ev/s  "
                      f"ratio {ratio[wait][-1]:.3f}  pantau CPU {cpu[wait][-1] or float('nan'):.2f} ms/event")
        for wait in waits:
            print(f"median, fetch wait {wait} ms: noop {median(noop):.0f}, pantau {median(pantau[wait]):.0f}, "
                  f"ratio {median(ratio[wait]):.3f}, pantau CPU {median(cpu[wait]) or float('nan'):.2f} ms/event")

if __name__ == "__main__":
    main()
