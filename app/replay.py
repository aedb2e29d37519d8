"""``pantau replay``: the worker's detectors over JSON Lines files, no broker.

Each line is validated exactly as the worker validates a message; bad lines
go to the dead-letter file with their reason, file and line number. Event time
comes from the events, and so does the alerts' ``detected_at``, so the same
input always gives the same output.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from app.alerter import Alerter
from app.pipeline import Pipeline, dict_stores
from app.scoring import score
from app.settings import Settings
from app.validation import InvalidEvent, Validator


def guess_stream(payload: bytes) -> str | None:
    """Which stream a JSON line belongs to, from its ``schema`` field or its shape."""
    head = payload[:4096]
    if b'"registration.v1"' in head or b'"voter"' in head:
        return "registrations"
    if b'"result.v1"' in head or (b'"tps"' in head and b'"votes"' in head):
        return "results"
    if b'"feedback.v1"' in head or b'"verdict"' in head:
        return "feedback"
    return None


@dataclass
class ReplaySummary:
    events: Counter = field(default_factory=Counter)
    dead_letters: Counter = field(default_factory=Counter)
    alerts: Counter = field(default_factory=Counter)
    findings: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    #: CPU time of the replay itself (process time, start-up excluded): steadier than ``seconds``
    #: on a shared machine.
    cpu_seconds: float = 0.0
    quality: dict[str, dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.events.values()) + sum(self.dead_letters.values())
        return {
            "events": dict(self.events), "dead_letters": dict(self.dead_letters),
            "alerts": dict(self.alerts), "findings": dict(self.findings),
            "seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
            "events_per_second": round(total / self.seconds) if self.seconds else None,
            "quality": self.quality,
        }


class Replayer:
    """Runs the pipeline over lines; keeps the last version of every alert."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.validator = Validator(settings.max_event_bytes)
        self.stores = dict_stores()
        self.pipeline = Pipeline(settings, self.stores)
        self._now: datetime | None = None
        self.alerter = Alerter(self.stores("alerts"), settings.alert_coalesce_seconds, clock=self._clock)
        self.summary = ReplaySummary()
        self.latest: dict[str, dict[str, Any]] = {}

    def _clock(self) -> datetime:
        assert self._now is not None
        return self._now

    def process_line(self, payload: bytes, where: str) -> tuple[list[dict], dict | None]:
        """Alerts published for one line, and its dead letter (or None)."""
        payload = payload.rstrip(b"\r\n")
        if not payload.strip():
            return [], None
        stream = guess_stream(payload) or "registrations"
        try:
            event = self.validator.decode(stream, payload)
        except InvalidEvent as exc:
            self.summary.dead_letters[exc.reason] += 1
            return [], _dead_letter(payload, exc, stream, where)
        self.summary.events[stream] += 1
        if stream == "feedback":
            alert = self.latest.get(event["alert_id"])
            if alert is not None:
                self.pipeline.on_feedback(alert, event["verdict"] == "true_positive")
            return [], None
        when = event.get("occurred_at") or event.get("submitted_at")
        self._now = datetime.fromisoformat(when)
        alerts = []
        for finding in self.pipeline.process_local(stream, event):
            self.summary.findings[finding.detector] += 1
            alert = self.alerter.publish(finding)
            if alert is not None:
                alerts.append(alert)
                self.latest[alert["alert_id"]] = alert
                self.summary.alerts[f"{alert['detector']}/{alert['status']}"] += 1
        return alerts, None

    def finish(self) -> list[dict]:
        """Close what is still open at the end of the input (volume buckets)."""
        if self._now is None:
            return []
        out = []
        for finding in self.pipeline.volume_advance(self._now):
            alert = self.alerter.publish(finding)
            if alert is not None:
                out.append(alert)
                self.latest[alert["alert_id"]] = alert
                self.summary.alerts[f"{alert['detector']}/{alert['status']}"] += 1
        return out


def _dead_letter(payload: bytes, exc: InvalidEvent, stream: str, where: str) -> dict[str, Any]:
    try:
        original: dict[str, str] = {"text": payload[:65536].decode("utf-8")}
    except UnicodeDecodeError:
        original = {"base64": base64.b64encode(payload[:65536]).decode()}
    return {"reason": exc.reason, "detail": exc.detail, "stream": stream, "source": where,
            "truncated": len(payload) > 65536, **original}


def _lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            yield number, line, fh.tell()


def run_replay(
    files: list[Path],
    out: IO[bytes],
    dead_letters: IO[bytes] | None = None,
    labels: list[Path] | None = None,
    settings: Settings | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Replay ``files`` in order, writing alerts (JSON Lines) to ``out``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    replayer = Replayer(settings or Settings())
    started, cpu_started = time.perf_counter(), time.process_time()
    total = sum(p.stat().st_size for p in files)
    with Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                  disable=not progress or total < 5_000_000, transient=True) as bar:
        task = bar.add_task("replaying", total=total)
        done = 0
        for path in files:
            position = 0
            for number, line, position in _lines(path):
                alerts, dead = replayer.process_line(line, f"{path.name}:{number}")
                for alert in alerts:
                    out.write(orjson.dumps(alert) + b"\n")
                if dead is not None and dead_letters is not None:
                    dead_letters.write(orjson.dumps(dead) + b"\n")
                if number % 2000 == 0:
                    bar.update(task, completed=done + position)
            done += position
        for alert in replayer.finish():
            out.write(orjson.dumps(alert) + b"\n")
    summary = replayer.summary
    summary.seconds = time.perf_counter() - started
    summary.cpu_seconds = time.process_time() - cpu_started
    if labels:
        label_rows = [orjson.loads(line) for p in labels for line in p.read_bytes().splitlines() if line.strip()]
        summary.quality = score(list(replayer.latest.values()), label_rows)
    return summary
