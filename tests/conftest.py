"""Fixtures shared by all tests: the embedded broker (one per session) and workers.

Integration tests talk to the real Tansu broker and to real ``pantau worker``
processes over real HTTP. Each test gets a fresh app id (consumer group and
topic names), because Tansu can leave a group stuck when its leader leaves
mid-rebalance (docs/broker.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from app.broker import EmbeddedBroker, free_port
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


def fresh_settings(broker_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings with a unique app id and topic names, so tests never share state."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = dict(
        broker_url=broker_url, app_id=f"t-{tag}", partitions=2, web_port=free_port(),
        data_dir=tmp_path / f"data-{tag}",
        topic_registrations=f"reg-{tag}", topic_results=f"res-{tag}", topic_feedback=f"fb-{tag}",
        topic_alerts=f"alerts-{tag}", topic_dead_letters=f"dl-{tag}",
    )
    values.update(overrides)
    return Settings().replace(**values)


class WorkerProcess:
    """A real ``pantau worker`` subprocess with its own log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        from app.demo import worker_env

        env = worker_env(self.settings)
        s = self.settings
        env.update({
            "PANTAU_TOPIC_REGISTRATIONS": s.topic_registrations, "PANTAU_TOPIC_RESULTS": s.topic_results,
            "PANTAU_TOPIC_FEEDBACK": s.topic_feedback, "PANTAU_TOPIC_ALERTS": s.topic_alerts,
            "PANTAU_TOPIC_DEAD_LETTERS": s.topic_dead_letters, "PYTHONPATH": str(ROOT),
        })
        return env

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        from app.broker import _die_with_parent

        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "app.cli", "worker"], env=self.env(), cwd=ROOT,
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.wait_ready(timeout)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def get(self, path: str) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310 - loopback
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 90.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/ready")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def wait_metric(self, name: str, at_least: float, timeout: float = 60.0, **labels: str) -> float:
        started = time.monotonic()
        value = 0.0
        while time.monotonic() - started < timeout:
            try:
                value = self.metric(name, **labels)
            except OSError:
                value = 0.0
            if value >= at_least:
                return value
            time.sleep(0.3)
        raise AssertionError(f"{name}{labels} = {value} < {at_least} after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_factory(broker: EmbeddedBroker, tmp_path: Path) -> Iterator:
    """Make settings and start workers; every worker is stopped after the test."""
    started: list[WorkerProcess] = []

    def make(settings: Settings | None = None, **overrides: object) -> WorkerProcess:
        s = settings or fresh_settings(broker.url, tmp_path, **overrides)
        w = WorkerProcess(s, tmp_path / f"worker-{len(started)}.log")
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


async def produce(settings: Settings, records: list[tuple[str, bytes | None, bytes]], **producer_options) -> None:
    """Send (stream, key, value) records to the input topics (``producer_options`` go to aiokafka)."""
    from app.commands import topic_for
    from app.kafka_io import ensure_topics, start_producer

    await ensure_topics(settings)
    producer = await start_producer(settings, **producer_options)
    try:
        for stream, key, value in records:
            await producer.send(topic_for(settings, stream), key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, until: int, timeout: float = 60.0) -> list:
    """All records of ``topic`` from the start, once at least ``until`` arrived (or on timeout)."""
    from aiokafka import AIOKafkaConsumer

    from app.kafka_io import client_options

    consumer = AIOKafkaConsumer(topic, **client_options(settings), auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
            if len(out) >= until:
                # read a little longer: more may be on the way
                extra = await consumer.getmany(timeout_ms=1000)
                for records in extra.values():
                    out.extend(records)
                if not extra:
                    break
    finally:
        await consumer.stop()
    return out


async def read_alerts_covering(settings: Settings, event_ids: set[str], timeout: float = 180.0) -> list[dict]:
    """Alerts from the start of the alerts topic until every id in ``event_ids`` has one (or timeout)."""
    from aiokafka import AIOKafkaConsumer

    from app.kafka_io import client_options

    consumer = AIOKafkaConsumer(settings.topic_alerts, **client_options(settings), auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    alerts: list[dict] = []
    covered: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not event_ids <= covered:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    alert = orjson.loads(r.value)
                    alerts.append(alert)
                    covered.update(alert["event_ids"])
        # a moment more, so republished copies are seen too
        for records in (await consumer.getmany(timeout_ms=1500)).values():
            alerts.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return alerts


def alerts_of(records: list) -> list[dict]:
    return [orjson.loads(r.value) for r in records]
