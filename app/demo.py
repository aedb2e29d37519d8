"""``pantau demo``: the embedded broker, a worker and the simulator on one laptop.

Alerts are shown live in a table; ``/metrics`` is served; Ctrl-C (or
``--duration``) stops the simulator, lets the worker drain, stops the worker,
then the broker, and prints a summary taken from the worker's own metrics.

The simulator's events keep their ids and content, but their timestamps are
set to the moment they are sent, so latency figures are real ones.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from app.broker import EmbeddedBroker, _die_with_parent, free_port
from app.settings import Settings

WIB = timezone(timedelta(hours=7))
#: One malformed event in this many, so the dead-letter path shows too.
BAD_EVERY = 500
BAD_SAMPLES = (b'{"event_id": "bad-json", ', b"\xff\xfe not utf-8", b'{"event_id": 7, "action": "add"}')


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update({
        "PANTAU_BROKER_URL": settings.broker_url, "PANTAU_APP_ID": settings.app_id,
        "PANTAU_DATA_DIR": str(settings.data_dir), "PANTAU_WEB_PORT": str(settings.web_port),
        "PANTAU_WEB_HOST": settings.web_host, "PANTAU_PARTITIONS": str(settings.partitions),
        "PANTAU_STORE": settings.store, "PANTAU_HMAC_SECRET": settings.hmac_secret,
        "PANTAU_FETCH_MAX_WAIT_MS": str(settings.fetch_max_wait_ms),
    })
    return env


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """``pantau worker`` in its own process group, dying with this process."""
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "app.cli", "worker"], env=worker_env(settings),
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    import aiohttp

    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with status {proc.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the worker was not ready after {timeout:.0f}s")


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The worker's /metrics as {(name, labels): value}."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def now_stamp() -> str:
    return datetime.now(WIB).isoformat(timespec="seconds")


def interleaved(seed: int) -> list:
    """Registrations and tallies spread evenly over one list.

    The simulator orders events by their simulated time (the registration
    period comes weeks before polling day); the demo spreads the tallies among
    the registrations so both streams show from the first minute.
    """
    from sim.simulator import Simulator

    sim = Simulator(seed=seed)
    registrations, results = list(sim.registrations()), list(sim.results())
    if not results:
        return registrations
    step = max(1, len(registrations) // len(results))
    out = []
    for i, result in enumerate(results):
        out += registrations[i * step:(i + 1) * step] + [result]
    return out + registrations[len(results) * step:]


async def simulate(settings: Settings, events, rate: float, stop: asyncio.Event, sent: Counter) -> None:
    from app.commands import topic_for
    from app.kafka_io import Pacer, start_producer

    producer = await start_producer(settings)
    pacer = Pacer(rate, every=20)
    n = 0
    try:
        for sim_event in events:
            if stop.is_set():
                break
            value = dict(sim_event.value)
            value["occurred_at" if sim_event.stream == "registrations" else "submitted_at"] = now_stamp()
            await producer.send(topic_for(settings, sim_event.stream), key=sim_event.key.encode(),
                                value=orjson.dumps(value))
            sent[sim_event.stream] += 1
            n += 1
            if n % BAD_EVERY == 0:
                bad = BAD_SAMPLES[(n // BAD_EVERY) % len(BAD_SAMPLES)]
                await producer.send(topic_for(settings, sim_event.stream), key=None, value=bad)
                sent["malformed"] += 1
            await pacer.sent(n)
        await producer.flush()
    finally:
        await producer.stop()


async def watch_alerts(settings: Settings, recent: deque, counts: Counter, stop: asyncio.Event) -> None:
    from app.kafka_io import consume

    async for record in consume(settings, settings.topic_alerts):
        alert = orjson.loads(record.value)
        recent.appendleft(alert)
        counts[(alert["detector"], alert["status"])] += 1
        if stop.is_set():
            break


def render(recent: deque, counts: Counter, sent: Counter, metrics_url: str, elapsed: float) -> Group:
    table = Table("time", "severity", "detector", "status", "province", "summary", expand=True, title="latest alerts")
    for a in list(recent)[:15]:
        style = {"critical": "bold red", "warning": "yellow", "info": "cyan"}.get(a["severity"], "")
        table.add_row(a["detected_at"][11:19], f"[{style}]{a['severity']}[/]", a["detector"], a["status"],
                      (a.get("region") or {}).get("province") or "-", a["summary"])
    by_detector = Counter()
    for (det, _status), c in counts.items():
        by_detector[det] += c
    header = (f"[bold]Pantau demo[/]  {elapsed:5.0f}s  sent: "
              + ", ".join(f"{k} {v}" for k, v in sorted(sent.items()))
              + f"\nalerts: " + (", ".join(f"{k} {v}" for k, v in by_detector.most_common()) or "none yet")
              + f"\nmetrics: {metrics_url}   (Ctrl-C stops)")
    return Group(Panel(header), table)


async def _demo(settings: Settings, duration: float | None, rate: float, seed: int,
                worker: subprocess.Popen[bytes], console: Console) -> dict:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The simulator builds its population while the worker starts.
    events_future = loop.run_in_executor(None, interleaved, seed)
    ready_after = await wait_ready(settings.web_port, worker)
    events = await events_future
    metrics_url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    console.print(f"worker ready after {ready_after:.1f}s; metrics at [link]{metrics_url}[/]")
    recent: deque = deque(maxlen=50)
    counts: Counter = Counter()
    sent: Counter = Counter()
    started = time.monotonic()
    sim_task = asyncio.create_task(simulate(settings, events, rate, stop, sent))
    watch_task = asyncio.create_task(watch_alerts(settings, recent, counts, stop))
    with Live(render(recent, counts, sent, metrics_url, 0), console=console, refresh_per_second=2) as live:
        while not stop.is_set():
            if duration and time.monotonic() - started >= duration:
                stop.set()
            if sim_task.done() and sim_task.exception() is not None:
                raise sim_task.exception()
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with status {worker.returncode} (see its log)")
            live.update(render(recent, counts, sent, metrics_url, time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        await sim_task
        # Let the worker drain what was sent before it stops.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lag = await scrape(settings.web_port)
            if sum(v for (name, _), v in lag.items() if name == "pantau_consumer_lag_messages") == 0:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        live.update(render(recent, counts, sent, metrics_url, time.monotonic() - started))
    watch_task.cancel()
    final = await scrape(settings.web_port)
    return {"sent": sent, "metrics": final, "seconds": time.monotonic() - started}


def print_summary(console: Console, result: dict) -> None:
    metrics = result["metrics"]

    def total(name: str, **match: str) -> dict[str, float]:
        out: Counter = Counter()
        for (n, labels), v in metrics.items():
            d = dict(labels)
            if n == name and all(d.get(k) == val for k, val in match.items()):
                key = "/".join(d[k] for k in sorted(d) if k not in match)
                out[key] += v
        return dict(out)

    processed = total("pantau_events_total", outcome="processed")
    events = sum(processed.values())
    table = Table("what", "count", title=f"summary after {result['seconds']:.0f}s")
    for stream, count in sorted(processed.items()):
        table.add_row(f"events processed: {stream}", f"{count:.0f}")
    for reason, count in sorted(total("pantau_dead_letters_total").items()):
        table.add_row(f"dead letters: {reason}", f"{count:.0f}")
    alerts: Counter = Counter()
    for key, count in total("pantau_alerts_total").items():
        alerts[key.split("/")[0]] += count
    for det, count in alerts.most_common():
        table.add_row(f"alerts: {det}", f"{count:.0f}")
    table.add_row("events per second (processed)", f"{events / max(result['seconds'], 1e-9):.0f}")
    console.print(table)


def run_demo(duration: float | None, rate: float, seed: int) -> int:
    console = Console()
    base = Path(".pantau") / "demo"
    base.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_path=base / "broker.log")
    console.print("starting the embedded broker ...")
    broker.start()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        settings = Settings.from_env().replace(
            broker_url=broker.url, app_id=f"pantau-demo-{stamp}", data_dir=base / f"data-{stamp}",
        )
    except Exception as exc:  # noqa: BLE001
        broker.stop()
        console.print(f"[red]pantau: {exc}[/]")
        return 2
    if settings.web_port == 6066 and not _port_free(settings.web_host, 6066):
        settings = settings.replace(web_port=free_port())
    from app.kafka_io import ensure_topics

    asyncio.run(ensure_topics(settings))
    console.print(f"broker at {broker.bootstrap}; starting a worker (log: {base / 'worker.log'}) ...")
    worker = start_worker(settings, base / "worker.log")
    try:
        result = asyncio.run(_demo(settings, duration, rate, seed, worker, console))
    except RuntimeError as exc:
        console.print(f"[red]pantau demo: {exc}[/]")
        return 1
    finally:
        console.print("stopping the worker, then the broker ...")
        stop_process(worker)
        broker.stop()
    print_summary(console, result)
    return 0


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0
