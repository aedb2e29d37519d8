"""``pantau replay``: the worker's detectors over JSON Lines files, no broker.

Each line is validated exactly as the worker validates a message; bad lines
go to the dead-letter file with their reason, file and line number. Event time
comes from the events, and so does the alerts' ``detected_at``, so the same
input always gives the same output.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import os
import queue
import shutil
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from app import gc_tuning
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
    #: Processes that judged the results (``--jobs``).
    jobs: int = 1

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.events.values()) + sum(self.dead_letters.values())
        return {
            "events": dict(self.events), "dead_letters": dict(self.dead_letters),
            "alerts": dict(self.alerts), "findings": dict(self.findings),
            "seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
            "events_per_second": round(total / self.seconds) if self.seconds else None,
            "quality": self.quality, "jobs": self.jobs,
        }


class Replayer:
    """Runs the pipeline over lines; keeps the last version of every alert."""

    def __init__(self, settings: Settings, defer_volume: bool = False) -> None:
        self.settings = settings
        #: With ``defer_volume``, what the volume detector would have seen, as ``(index, stream, event)``:
        #: a parallel replay feeds it all shards' lines afterwards, in line order (:meth:`observe_volume`).
        self.deferred: list[tuple[int, str, dict]] | None = [] if defer_volume else None
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

    def process_line(self, payload: bytes, where: str, index: int = 0) -> tuple[list[dict], dict | None]:
        """Alerts published for one line, and its dead letter (or None).

        ``index`` is the line's place in the whole input; only deferred volume observations keep it.
        """
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
        if self.deferred is not None:
            self.deferred.append((index, stream, {k: event[k] for k in _VOLUME_FIELDS if k in event}))
        return self._publish(self.pipeline.process_local(stream, event, volume=self.deferred is None)), None

    def observe_volume(self, observations: Iterable[tuple[int, str, dict]]) -> Iterator[tuple[int, dict]]:
        """Feed deferred volume observations (every shard's, sorted by index); the alerts, by index."""
        for index, stream, event in observations:
            self._now = datetime.fromisoformat(event.get("occurred_at") or event["submitted_at"])
            for alert in self._publish(self.pipeline.volume_observe(stream, event)):
                yield index, alert

    def _publish(self, findings: list, count: bool = True) -> list[dict]:
        alerts = []
        for finding in findings:
            if count:
                self.summary.findings[finding.detector] += 1
            alert = self.alerter.publish(finding)
            if alert is not None:
                alerts.append(alert)
                self.latest[alert["alert_id"]] = alert
                self.summary.alerts[f"{alert['detector']}/{alert['status']}"] += 1
        return alerts

    def finish(self) -> list[dict]:
        """Close what is still open at the end of the input (volume buckets)."""
        if self._now is None:
            return []
        return self._publish(self.pipeline.volume_advance(self._now), count=False)


#: The fields of an event the volume detector reads (and the event id, for its error log).
_VOLUME_FIELDS = ("event_id", "occurred_at", "submitted_at", "region", "source")


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
    jobs: int = 1,
    tune_gc: bool = False,
) -> ReplaySummary:
    """Replay ``files`` in order, writing alerts (JSON Lines) to ``out``.

    With ``jobs`` above 1, result lines are judged in that many processes,
    sharded by regency (the worker's stage-2 key), and the output is the
    same, line for line, as with one (see :func:`_run_sharded`). ``tune_gc``:
    :func:`app.gc_tuning.tune` once the detectors are built (``pantau replay``;
    not in a process that goes on to other work, such as a test session).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, not {jobs}")
    settings = settings or Settings()
    replayer = Replayer(settings, defer_volume=jobs > 1)  # imports every detector: not timed
    if tune_gc:
        gc_tuning.tune()  # before the shards fork: they share the frozen objects' pages too
    started, cpu_started = time.perf_counter(), time.process_time()
    # Forked before the progress bar starts its thread, and after the imports, which they share.
    shards = _Shards(settings, jobs) if jobs > 1 else None
    total = sum(p.stat().st_size for p in files)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                      disable=not progress or total < 5_000_000, transient=True) as bar:
            task = bar.add_task("replaying", total=total)

            def lines() -> Iterator[tuple[bytes, str]]:
                done = 0
                for path in files:
                    position = 0
                    for number, line, position in _lines(path):
                        yield line, f"{path.name}:{number}"
                        if number % 2000 == 0:
                            bar.update(task, completed=done + position)
                    done += position

            if shards is None:
                for line, where in lines():
                    alerts, dead = replayer.process_line(line, where)
                    for alert in alerts:
                        out.write(orjson.dumps(alert) + b"\n")
                    if dead is not None and dead_letters is not None:
                        dead_letters.write(orjson.dumps(dead) + b"\n")
                for alert in replayer.finish():
                    out.write(orjson.dumps(alert) + b"\n")
                latest = replayer.latest
            else:
                latest = _run_sharded(replayer, shards, lines(), out, dead_letters, keep_latest=bool(labels))
    finally:
        if shards is not None:
            shards.close()
    summary = replayer.summary
    summary.cpu_seconds += time.process_time() - cpu_started
    summary.seconds = time.perf_counter() - started
    summary.jobs = jobs
    if labels:
        label_rows = [orjson.loads(line) for p in labels for line in p.read_bytes().splitlines() if line.strip()]
        summary.quality = score(list(latest.values()), label_rows)
    return summary


# -- several processes ------------------------------------------------------------
#
# Registrations and feedback stay in this process: a duplicate may be
# registered in any regency. Result lines go to ``jobs`` shard processes by
# regency, the key of every piece of result state (TPS, village, district and
# regency state all live in its regency's stage-2 partition in the worker).
# The volume detector counts every stream in line order, so every process
# hands back what it would have counted, and this process feeds it all, in
# line order, at the end. Alerts are written in line order: a line's own
# alerts, then the volume alerts its event caused, as one process does.
# What each process hands back goes through files in a temporary directory
# ($TMPDIR; about the size of the alerts written, plus ~200 bytes an event),
# each in line order, merged as they are read: memory stays bounded for a
# national count (820,161 tallies, 287 k alert versions). A result whose
# region codes name another regency than its TPS code is judged by that
# regency's shard, as the worker's stage 2 judges it; the worker's stage 1
# keys per-TPS state by the TPS code, so a TPS reported under two regency
# codes (a data error) is judged apart here and together there. Each process's
# alerter remembers the last 100,000 alert versions it published (to stay quiet
# on a reprocessed event); one process remembers them over the whole input, so
# past that many versions a re-sent event may be re-published in one mode and
# not in the other. The national count (287 k versions, no re-sent events)
# came out the same.

#: Result lines sent to a shard at once (pickling per line would cost more than judging it).
_BATCH = 256


class _Spill:
    """One process's alerts, dead letters and volume observations, as ``[index, ...]`` JSON lines."""

    KINDS = ("alerts", "dead", "volume")

    def __init__(self, directory: str, name: str) -> None:
        self.paths = {kind: os.path.join(directory, f"{kind}-{name}.jsonl") for kind in self.KINDS}
        self.files = {kind: open(path, "wb") for kind, path in self.paths.items()}  # noqa: SIM115

    def line(self, replayer: Replayer, index: int, published: list[dict], letter: dict | None) -> None:
        alerts = self.files["alerts"]
        for alert in published:
            alerts.write(orjson.dumps([index, alert]) + b"\n")
        if letter is not None:
            self.files["dead"].write(orjson.dumps([index, letter]) + b"\n")
        if replayer.deferred:
            volume = self.files["volume"]
            for observation in replayer.deferred:
                volume.write(orjson.dumps(observation) + b"\n")
            replayer.deferred.clear()

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _read_spill(path: str) -> Iterator[list]:
    with open(path, "rb") as fh:
        for line in fh:
            yield orjson.loads(line)


@dataclass
class _ShardResult:
    spill: dict[str, str]
    summary: ReplaySummary
    cpu_seconds: float


def _after(call: Callable[[], list[dict]]) -> Iterator[dict]:
    """``call()``'s items, called only once the items before it have been taken."""
    yield from call()


def _shard_of(payload: bytes, shards: int) -> int:
    """A result line's shard: from its regency, the same in every process and run."""
    try:
        event = orjson.loads(payload)
        regency = (event.get("region") or {}).get("regency") or event["tps"][:4]
        return zlib.crc32(str(regency).encode()) % shards
    except Exception:  # noqa: BLE001 - not a result the pipeline can read: its shard dead-letters it
        return 0


def _replay_shard(settings: Settings, inbox: Any, outbox: Any, shard: int, directory: str) -> None:
    """A shard process: judge result lines until ``None``, then hand back the summary (the rest is in files)."""
    try:
        cpu = time.process_time()
        replayer = Replayer(settings, defer_volume=True)
        spill = _Spill(directory, str(shard))
        while (batch := inbox.get()) is not None:
            for index, payload, where in batch:
                published, letter = replayer.process_line(payload, where, index)
                spill.line(replayer, index, published, letter)
        spill.close()
        outbox.put((shard, _ShardResult(spill.paths, replayer.summary, time.process_time() - cpu)))
    except BaseException:  # noqa: BLE001 - the parent reports it; a shard must not hang the replay
        outbox.put((shard, traceback.format_exc()))


class _Shards:
    """``jobs`` shard processes, fed in batches through bounded queues (a slow shard holds the reader back)."""

    def __init__(self, settings: Settings, jobs: int) -> None:
        import multiprocessing

        # fork: the children start with this process's imports (seconds each with spawn: River, SciPy).
        ctx = multiprocessing.get_context("fork")
        self.jobs = jobs
        self.directory = tempfile.mkdtemp(prefix="pantau-replay-")
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue(maxsize=16) for _ in range(jobs)]
        self.procs = [ctx.Process(target=_replay_shard, args=(settings, self.inboxes[i], self.outbox, i,
                                                              self.directory),
                                  daemon=True, name=f"pantau-replay-{i}") for i in range(jobs)]
        for proc in self.procs:
            proc.start()
        self.batches: list[list] = [[] for _ in range(jobs)]

    def send(self, index: int, payload: bytes, where: str) -> None:
        shard = _shard_of(payload, self.jobs)
        batch = self.batches[shard]
        batch.append((index, payload, where))
        if len(batch) >= _BATCH:
            self._put(shard, batch)
            self.batches[shard] = []

    def _put(self, shard: int, item: Any) -> None:
        while True:
            try:
                self.inboxes[shard].put(item, timeout=1.0)
                return
            except queue.Full:
                self._check(shard)

    def _check(self, shard: int) -> None:
        if not self.procs[shard].is_alive():
            raise RuntimeError(f"replay shard {shard} stopped (exit code {self.procs[shard].exitcode})")

    def results(self) -> list[_ShardResult]:
        """Everything the shards found, once every line has been sent."""
        for shard in range(self.jobs):
            if self.batches[shard]:
                self._put(shard, self.batches[shard])
            self._put(shard, None)
        results: dict[int, _ShardResult] = {}
        while len(results) < self.jobs:
            try:
                shard, result = self.outbox.get(timeout=1.0)
            except queue.Empty:
                for shard in range(self.jobs):
                    if shard not in results:
                        self._check(shard)
                continue
            if isinstance(result, str):
                raise RuntimeError(f"replay shard {shard} failed:\n{result}")
            results[shard] = result
        return [results[i] for i in range(self.jobs)]

    def close(self) -> None:
        for inbox in self.inboxes:
            # Batches still queued for a shard that stopped have no reader: do not wait to flush them.
            inbox.cancel_join_thread()
            inbox.close()
        for proc in self.procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)
        shutil.rmtree(self.directory, ignore_errors=True)


def _run_sharded(replayer: Replayer, shards: _Shards, lines: Iterator[tuple[bytes, str]], out: IO[bytes],
                 dead_letters: IO[bytes] | None, keep_latest: bool) -> dict[str, dict]:
    """Registrations and feedback here, results in the shards; then everything merged in line order."""
    spill = _Spill(shards.directory, "main")
    for index, (line, where) in enumerate(lines):
        payload = line.rstrip(b"\r\n")
        if guess_stream(payload) == "results":
            shards.send(index, payload, where)
            continue
        published, letter = replayer.process_line(payload, where, index)
        spill.line(replayer, index, published, letter)
    spill.close()
    spills = [spill.paths]
    summary = replayer.summary
    for result in shards.results():
        spills.append(result.spill)
        for name in ("events", "dead_letters", "alerts", "findings"):
            getattr(summary, name).update(getattr(result.summary, name))
        summary.cpu_seconds += result.cpu_seconds

    def merged(kind: str) -> Iterator[list]:
        return heapq.merge(*(_read_spill(paths[kind]) for paths in spills), key=lambda row: row[0])

    # A line's alerts (phase 0, from one process) come before the volume alerts its event caused (phase 1).
    volume = ((index, 1, alert) for index, alert in replayer.observe_volume(merged("volume")))
    alerts = heapq.merge(((index, 0, alert) for index, alert in merged("alerts")), volume,
                         key=lambda row: (row[0], row[1]))
    latest: dict[str, dict] = {}
    for alert in itertools.chain((alert for _, _, alert in alerts), _after(replayer.finish)):
        out.write(orjson.dumps(alert) + b"\n")
        if keep_latest:
            latest[alert["alert_id"]] = alert
    if dead_letters is not None:
        for _, letter in merged("dead"):
            dead_letters.write(orjson.dumps(letter) + b"\n")
    return latest
