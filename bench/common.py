"""Shared pieces of the performance benchmarks (``python -m bench``).

Workers are real subprocesses (``pantau worker`` via :class:`tests.conftest.WorkerProcess`,
or :mod:`bench.noop_app`) on the embedded Tansu broker; rates are read from
their own counters over HTTP, so the bench process itself stays light (it
shares the 2 cores with the broker and the worker).
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from app.broker import free_port
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
#: Where the worker and replay subprocesses import app/ and models/ from: the
#: working tree by default, or a snapshot (``python -m bench --commit REV``)
#: while others are editing the tree.
CODE = Path(os.environ.get("BENCH_CODE") or ROOT)


def code_env(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    env["PYTHONPATH"] = str(CODE)
    return env
WIB = timezone(timedelta(hours=7))
_EVENTS_LINE = re.compile(rb'^pantau_events_total\{([^}]*)\} ([0-9.eE+-]+)$', re.M)


# -- the machine ---------------------------------------------------------------
def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()), "cpu": model,
        "python": platform.python_version(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


# -- settings and events ---------------------------------------------------------
def bench_settings(broker_url: str, base: Path, tag: str | None = None, **overrides: object) -> Settings:
    """Settings with unique app id, topics, port and data dir (4 partitions, RocksDB store)."""
    tag = tag or uuid.uuid4().hex[:8]
    values: dict[str, object] = dict(
        broker_url=broker_url, app_id=f"bench-{tag}", partitions=4, web_port=free_port(),
        data_dir=base / f"data-{tag}", store="rocksdb://",
        topic_registrations=f"reg-{tag}", topic_results=f"res-{tag}", topic_feedback=f"fb-{tag}",
        topic_alerts=f"alerts-{tag}", topic_dead_letters=f"dl-{tag}",
    )
    values.update(overrides)
    return Settings().replace(**values)


def with_app(settings: Settings, tag: str | None = None, **overrides: object) -> Settings:
    """Same topics, fresh app id (consumer group), port and data dir."""
    tag = tag or uuid.uuid4().hex[:8]
    return settings.replace(app_id=f"bench-{tag}", web_port=free_port(),
                            data_dir=settings.data_dir.parent / f"data-{tag}", **overrides)


def now_ms() -> str:
    return datetime.now(WIB).isoformat(timespec="milliseconds")


def stamped(sim_event, stamp: str) -> bytes:
    value = dict(sim_event.value)
    value["occurred_at" if sim_event.stream == "registrations" else "submitted_at"] = stamp
    return orjson.dumps(value)


async def produce_all(settings: Settings, records: Iterable[tuple[str, bytes, bytes]]) -> tuple[int, float]:
    """Send (stream, key, value) as fast as possible; (count, seconds)."""
    from app.commands import topic_for
    from app.kafka_io import start_producer

    producer = await start_producer(settings, max_batch_size=256 * 1024)
    started = time.perf_counter()
    n = 0
    try:
        for stream, key, value in records:
            await producer.send(topic_for(settings, stream), key=key, value=value)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n, time.perf_counter() - started


def ensure(settings: Settings) -> None:
    from app.kafka_io import ensure_topics

    asyncio.run(ensure_topics(settings))


# -- reading counters ------------------------------------------------------------
def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return resp.read()


def pantau_processed(port: int) -> float:
    """Sum of pantau_events_total{outcome="processed"} (a cheap regex, no parser)."""
    body = http_get(f"http://127.0.0.1:{port}/metrics")
    return sum(float(v) for labels, v in _EVENTS_LINE.findall(body) if b'outcome="processed"' in labels)


def noop_count(port: int) -> float:
    return float(orjson.loads(http_get(f"http://127.0.0.1:{port}/count"))["count"])


@dataclass
class RateRun:
    """Samples (t, processed) of one run and the steady rate between two fractions of ``total``."""

    total: int
    samples: list[tuple[float, float]] = field(default_factory=list)

    def crossing(self, target: float) -> float | None:
        prev = None
        for t, n in self.samples:
            if n >= target:
                if prev is None or n == prev[1]:
                    return t
                t0, n0 = prev
                return t0 + (t - t0) * (target - n0) / (n - n0)
            prev = (t, n)
        return None

    @property
    def last(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0

    def rate(self, lo: float = 0.1, hi: float = 0.9) -> float | None:
        """Events/s between ``lo`` and ``hi`` of ``total``; a run cut short by its time cap
        is measured from min(lo*total, last/4) to what it reached."""
        lo_n = min(lo * self.total, 0.25 * self.last)
        hi_n = min(hi * self.total, self.last)
        a, b = self.crossing(lo_n), self.crossing(hi_n)
        if a is None or b is None or b <= a or hi_n <= lo_n:
            return None
        return (hi_n - lo_n) / (b - a)


def poll_until(read: Callable[[], float], total: int, timeout: float, interval: float,
               alive: Callable[[], bool] = lambda: True, on_sample: Callable[[float, float], None] | None = None,
               cap: float | None = None) -> RateRun:
    """Poll ``read()`` until it reaches ``total`` (or timeout / the process dies /
    ``cap`` seconds after the first event was processed)."""
    run = RateRun(total)
    deadline = time.monotonic() + timeout
    capped = False
    while time.monotonic() < deadline:
        try:
            n = read()
        except OSError:
            n = run.samples[-1][1] if run.samples else 0.0
        t = time.monotonic()
        run.samples.append((t, n))
        if cap is not None and n > 0 and not capped:
            capped, deadline = True, min(deadline, t + cap)
        if on_sample:
            on_sample(t, n)
        if n >= total or not alive():
            break
        time.sleep(interval)
    return run


# -- processes -------------------------------------------------------------------
def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (load-independent cost, unlike wall-clock rates)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def table_sizes(data_dir: Path) -> dict[str, int]:
    """Bytes on disk per Faust table (all partitions), from the RocksDB directories."""
    sizes: Counter = Counter()
    for db in data_dir.glob("**/tables/*.db"):
        name = db.name[:-3].rsplit("-", 1)[0]
        sizes[name] += dir_bytes(db)
    return dict(sizes)


def start_pyspy(pid: int, out: Path, rate: int = 100) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` attached to ``pid``; stop it with :func:`stop_pyspy`. None when py-spy is missing."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        return None
    return subprocess.Popen(  # noqa: S603
        [str(exe), "record", "--pid", str(pid), "-o", str(out), "--format", "raw", "--rate", str(rate),
         "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )


def stop_pyspy(proc: subprocess.Popen[bytes] | None) -> None:
    import signal

    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- profiles ----------------------------------------------------------------------
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frame(raw: str) -> tuple[str, str]:
    m = _FRAME.match(raw.strip())
    if not m:
        return raw.strip(), ""
    return m.group("func"), m.group("file")


def _module(path: str) -> str:
    """A short owner for a source file: ``faust``, ``aiokafka``, ``models/volume.py``, ``app/worker.py``..."""
    p = path.replace("\\", "/")
    if "site-packages/" in p:
        return p.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for top in ("models/", "app/", "sim/", "bench/"):
        i = p.rfind("/" + top) if not p.startswith(top) else -1
        if p.startswith(top):
            return p
        if i >= 0:
            return p[i + 1:]
    if p.startswith("<"):
        return p
    if "/lib/python3" in p:
        rest = p.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return p


#: What a worker sample is doing: (label, substring of the stack); a sample can count in several.
ACTIVITIES = (
    ("input agent (_handle_input, all of it)", "Worker._handle_input"),
    ("  detectors, stage 1 (Pipeline._run)", "Pipeline._run"),
    ("sending volume counts (_send_routes)", "Worker._send_routes"),
    ("buffering routed events (_buffer_routes)", "Worker._buffer_routes"),
    ("sending buffered routed events (_flush_routes)", "Worker._flush_routes"),
    ("  volume_observe", "Pipeline.volume_observe"),
    ("  validation (Validator.decode)", "Validator.decode"),
    ("second-stage route agents (Pipeline.on_route)", "Pipeline.on_route"),
    ("publishing alerts (Worker._publish)", "Worker._publish"),
    ("table writes (Table.on_key_set, changelog)", "Table.on_key_set"),
    ("table values written at the commit, batched (WriteBehind.flush)", "WriteBehind.flush"),
    ("RocksDB store (faust/stores/rocksdb)", "faust/stores/rocksdb.py"),
    ("aiokafka producer (send, batching, partitioner)", "aiokafka/producer"),
    ("  produce requests (aiokafka Sender._send_produce_req)", "Sender._send_produce_req"),
    ("asyncio socket transport (selector_events)", "asyncio/selector_events.py"),
    ("Faust consumer / stream machinery", "faust/transport/consumer.py"),
    ("/metrics scrapes (the bench polls)", "Worker._metrics_view"),
    ("timers (_housekeeping)", "Worker._housekeeping"),
    ("VolumeMonitor (models/volume_monitor.py)", "models/volume_monitor.py"),
)


@dataclass
class Profile:
    samples: int
    self_funcs: list[tuple[str, float]]
    self_modules: list[tuple[str, float]]
    inclusive_project: list[tuple[str, float]]
    activities: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"samples": self.samples, "self_functions": self.self_funcs, "self_by_module": self.self_modules,
                "inclusive_project": self.inclusive_project, "activities": self.activities}


def summarize_profile(path: Path, top: int = 12, skip: Sequence[str] = (),
                      activities: Sequence[tuple[str, str]] = ACTIVITIES) -> Profile | None:
    """Self time per function and per module, inclusive time of project functions below the
    entry points (under 85 %), and shares of ``activities`` (fractions of all samples).

    ``skip``: stacks containing any of these substrings are left out (e.g. start-up imports).
    """
    act: Counter = Counter()
    if not path.exists():
        return None
    self_f: Counter = Counter()
    self_m: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if any(s in stack for s in skip):
            continue
        n = int(count)
        total += n
        for label, needle in activities:
            if needle in stack:
                act[label] += n
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        func, file = frames[-1]
        mod = _module(file)
        self_f[f"{func} ({mod})"] += n
        self_m[mod] += n
        seen = set()
        for func, file in frames:
            mod = _module(file)
            if mod.startswith(("app/", "models/")):
                key = f"{func} ({mod})"
                if key not in seen:
                    seen.add(key)
                    incl[key] += n
    if not total:
        return None

    def share(c: Counter) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in c.most_common(top)]

    inclusive = [(k, v / total) for k, v in incl.most_common() if v / total < 0.85][:top]
    return Profile(total, share(self_f), share(self_m), inclusive,
                   [(label, act[label] / total) for label, _ in activities if act[label]])


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    vals = sorted(values)
    k = min(len(vals) - 1, max(0, round(q * (len(vals) - 1))))
    return vals[k]
