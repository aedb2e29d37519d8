"""Event counts per time bucket, region and source, scored by one VolumeModel per series."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from models.base import Finding
from models.volume import VolumeModel

__all__ = ["VolumeMonitor"]

KNOWN_SOURCES = ("coklit", "online", "dukcapil", "manual", "sirekap")
_CODE = {"province": re.compile(r"[0-9]{2}"), "regency": re.compile(r"[0-9]{4}")}
_WEEK = 7 * 86400


def _ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class VolumeMonitor:
    """Spikes and silences in event counts, per stream, region and source.

    Every event is counted into tumbling event-time buckets of ``bucket_seconds``
    for each of its series: ``(stream, level, region code, source)`` for ``level``
    in ``levels`` and for both its own source and ``"all"`` sources. Series are
    keyed by region codes and sources only: never TPS codes or anything personal.
    Sources outside ``sources`` are folded into ``"other"`` so the number of series
    stays bounded (streams x levels x regions x (len(sources) + 2)), and at most
    ``max_series`` series are kept (events of further series are counted in
    ``stats["series_overflow"]``).

    Buckets close on an event-time watermark: the latest event time seen minus
    ``allowed_lateness`` seconds (or ``now - allowed_lateness`` given to
    :meth:`advance`, whichever is later). A bucket is closed once the watermark
    reaches its end. An event that arrives late but whose bucket is still open is
    counted normally; an event whose bucket is already closed is **not** counted in
    any bucket, only in ``stats["late_events"]``.

    Counts may come from several input partitions (``partition`` of
    :meth:`observe`) that progress at their own pace, as in a backfill read
    through several Kafka partitions. Each partition then has its own
    watermark (its newest event time) and a stream's event-time watermark is
    the **minimum** over its partitions, so a partition that runs hours ahead
    does not close the buckets a lagging one still has counts for. A partition
    that sent nothing for ``idle_seconds`` of the clock given to :meth:`advance`
    is idle and no longer holds the others back (Flink's source idleness).
    With ``partitions`` given, partitions ``0 .. partitions - 1`` are expected
    from a stream's first partitioned count on: one not heard from yet holds
    the watermark back too, until it reports or turns idle. Without
    ``partition`` every count is from one source, and the watermark is the
    newest event time.

    Every closed bucket of every known series is scored by that series' own
    :class:`~models.volume.VolumeModel`, including buckets without any event, so a
    series that went silent yields zero-valued buckets up to the watermark. At most
    ``max_fill_buckets`` empty buckets are filled per gap (default: one week); the
    buckets skipped beyond that are counted in ``stats["skipped_buckets"]``.

    A bucket whose score reaches ``threshold`` (``critical_threshold`` for
    ``critical``) opens an anomaly. While the anomaly lasts, each anomalous bucket
    returns a ``status="open"`` finding with the same key (series id and the
    anomaly's start), and the first normal bucket returns one ``status="resolved"``
    finding with that key.

    Parameters
    ----------
    bucket_seconds
        Width of the tumbling buckets.
    allowed_lateness
        How far behind the latest event time an event may be and still be counted.
    threshold
        Score at or above which a bucket is anomalous (severity ``warning``).
    critical_threshold
        Score at or above which the finding is ``critical``.
    levels
        Region levels with a series each.
    sources
        Sources with their own series; others are folded into ``"other"``.
    source_levels
        Levels that get a series per source as well as the all-sources one;
        finer levels get only the all-sources series. Per-source series of
        every regency would multiply the series (and the per-bucket cost) by
        the number of sources, and be too sparse to learn a rhythm from.
    max_fill_buckets
        Most empty buckets filled in one gap; None means one week of buckets.
    max_series
        Most series kept.
    idle_seconds
        A partition that sent no count for this long (by the ``now`` of
        :meth:`advance`) is left out of the minimum watermark.
    partitions
        Number of input partitions to expect per stream (None: only those
        that have sent a count).
    model_params
        Keyword arguments of every series' :class:`~models.volume.VolumeModel`.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> mon = VolumeMonitor(bucket_seconds=300, allowed_lateness=0)
    >>> t0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
    >>> region = {"province": "32", "regency": "3273"}
    >>> findings = []
    >>> for minute in range(0, 3 * 24 * 60):  # three days, 10 events a minute
    ...     for k in range(10):
    ...         t = t0 + timedelta(minutes=minute, seconds=6 * k)
    ...         findings += mon.observe("registrations", t, region, "online")
    >>> findings
    []
    >>> # The upload app goes silent for half an hour; the clock moves on.
    >>> silence = mon.advance(t0 + timedelta(days=3, minutes=30))
    >>> f = [f for f in silence if f.subject_id == "registrations/province=32/source=online"][0]
    >>> f.status, f.kind, f.evidence["seen"], round(f.evidence["expected"])
    ('open', 'drop', 0, 50)
    >>> ("registrations", "32") in mon.latest_scores()
    True
    """

    VERSION = "2"

    def __init__(
        self,
        bucket_seconds: int = 300,
        allowed_lateness: int = 120,
        threshold: float = 0.6,
        critical_threshold: float = 0.75,
        levels: tuple[str, ...] = ("province", "regency"),
        sources: tuple[str, ...] = KNOWN_SOURCES,
        source_levels: tuple[str, ...] = ("province",),
        max_fill_buckets: int | None = None,
        max_series: int = 50_000,
        model_params: dict[str, Any] | None = None,
        idle_seconds: float = 300.0,
        partitions: int | None = None,
    ):
        if bucket_seconds <= 0 or allowed_lateness < 0:
            raise ValueError("bucket_seconds must be > 0 and allowed_lateness >= 0")
        if not 0.0 < threshold <= critical_threshold <= 1.0:
            raise ValueError("need 0 < threshold <= critical_threshold <= 1")
        unknown = set(levels) - set(_CODE)
        if unknown:
            raise ValueError(f"unknown region levels {sorted(unknown)}; known: {sorted(_CODE)}")
        self.bucket_seconds = int(bucket_seconds)
        self.allowed_lateness = allowed_lateness
        self.threshold = threshold
        self.critical_threshold = critical_threshold
        self.levels = tuple(levels)
        self.sources = tuple(sources)
        self.source_levels = tuple(source_levels)
        self.max_fill_buckets = max_fill_buckets if max_fill_buckets is not None else max(1, _WEEK // self.bucket_seconds)
        self.max_series = max_series
        self.model_params = dict(model_params or {})
        self.idle_seconds = float(idle_seconds)
        self.partitions = partitions
        self._series: dict[str, dict[str, Any]] = {}
        self._models: dict[str, VolumeModel] = {}
        # Per stream: the two streams live on different calendars (registration
        # weeks vs polling day), and one must not close the other's buckets.
        self._closed_upto: dict[str, int] = {}  # buckets with a smaller index are closed
        self._max_event_ts: dict[str, float] = {}
        # Per stream and input partition ("" when counts carry no partition):
        # [newest event time (None before its first count), clock when last
        # heard from or expected since (None before any clock)].
        self._partitions: dict[str, dict[str, list]] = {}
        self._clock: float | None = None  # the latest ``now`` given to advance()
        self.stats = {"late_events": 0, "skipped_buckets": 0, "skipped_events": 0,
                      "series_overflow": 0, "bad_region": 0, "buckets_scored": 0}

    # -- keys ------------------------------------------------------------------

    def _source(self, source: str | None) -> str:
        if not source:
            return "other"
        s = str(source).strip().lower()
        return s if s in self.sources else "other"

    @staticmethod
    def series_id(stream: str, level: str, code: str, source: str) -> str:
        """``registrations/province=32/source=online``-style id (no personal data)."""
        return f"{stream}/{level}={code}/source={source}"

    def _series_for(self, stream: str, region: dict, source: str | None) -> list[str]:
        out = []
        src = self._source(source)
        for level in self.levels:
            code = region.get(level)
            if code is None:
                continue  # a coarser region is fine: that level just has no series
            code = str(code)
            if not _CODE[level].fullmatch(code):
                self.stats["bad_region"] += 1
                continue
            for s in ((src, "all") if level in self.source_levels else ("all",)):
                out.append(self._ensure(stream, level, code, s))
        return [sid for sid in out if sid]

    def _ensure(self, stream: str, level: str, code: str, source: str) -> str:
        sid = self.series_id(stream, level, code, source)
        if sid in self._series:
            return sid
        if len(self._series) >= self.max_series:
            self.stats["series_overflow"] += 1
            return ""
        region = {"province": code[:2]}
        if level == "regency":
            region["regency"] = code
        self._series[sid] = {
            "stream": stream, "level": level, "code": code, "source": source, "region": region,
            "counts": {}, "next": None, "open": None, "last": None,
        }
        self._models[sid] = VolumeModel(**self.model_params)
        return sid

    # -- public API --------------------------------------------------------------

    def observe(
        self, stream: str, occurred_at: datetime, region: dict, source: str | None, count: int = 1,
        *, partition: int | str | None = None, watermark: datetime | None = None, close: bool = True,
    ) -> list[Finding]:
        """Count ``count`` events at ``occurred_at``; return the findings of every bucket this closes.

        ``count`` lets a caller that pre-aggregates (the worker sums counts per
        bucket across input partitions) report many events at once.
        ``partition`` names the input partition the count comes from, and
        ``watermark`` that partition's progress (its newest event time, if
        later than ``occurred_at``). With ``close=False`` nothing is closed:
        a caller with a batch of counts counts them all, then calls
        :meth:`close` once, so that a batch's newer counts cannot close the
        buckets of its older ones.
        """
        ts = _ts(occurred_at)
        if not math.isfinite(ts):
            raise ValueError("occurred_at is not a finite time")
        bucket = math.floor(ts / self.bucket_seconds)
        closed = self._closed_upto.get(stream)
        if closed is not None and bucket < closed:
            self.stats["late_events"] += count
        else:
            for sid in self._series_for(stream, region or {}, source):
                s = self._series[sid]
                counts = s["counts"]
                counts[bucket] = counts.get(bucket, 0) + count
                nxt = s["next"]
                if nxt is None or bucket < nxt:  # (bucket >= closed here: it is open)
                    s["next"] = bucket
        if ts > self._max_event_ts.get(stream, -math.inf):
            self._max_event_ts[stream] = ts
        progress = ts
        if watermark is not None:
            wm = _ts(watermark)
            if math.isfinite(wm) and wm > progress:
                progress = wm
        parts = self._partitions.get(stream)
        if parts is None:
            parts = self._partitions[stream] = {}
            if partition is not None and self.partitions:
                for p in range(self.partitions):  # expected from now on, heard from or not
                    parts[str(p)] = [None, self._clock]
        key = "" if partition is None else str(partition)
        entry = parts.get(key)
        if entry is None:
            parts[key] = [progress, self._clock]
        else:
            if entry[0] is None or progress > entry[0]:
                entry[0] = progress
            entry[1] = self._clock
        if not close:
            return []
        wm = self._event_watermark(stream)
        return [] if wm is None else self._close(wm - self.allowed_lateness, stream)

    def close(self) -> list[Finding]:
        """Close, in every stream, the buckets its event-time watermark has passed."""
        findings: list[Finding] = []
        for stream in list(self._partitions):
            wm = self._event_watermark(stream)
            if wm is not None:
                findings += self._close(wm - self.allowed_lateness, stream)
        return findings

    def _event_watermark(self, stream: str) -> float | None:
        """Newest event time every live input partition of ``stream`` has reached."""
        parts = self._partitions.get(stream)
        if not parts:
            return None
        if len(parts) == 1:
            return next(iter(parts.values()))[0]
        clock, idle = self._clock, self.idle_seconds
        low = newest = None
        waiting = False
        for wm, heard in parts.values():
            if wm is not None and (newest is None or wm > newest):
                newest = wm
            if clock is not None and heard is not None and clock - heard > idle:
                continue  # idle: it holds nothing back
            if wm is None:
                waiting = True  # expected, not heard from yet
            elif low is None or wm < low:
                low = wm
        if waiting:
            return None
        # Every partition idle: nothing is pending anywhere, the newest time stands.
        return low if low is not None else newest

    def advance(self, now: datetime, live_within: float | None = None) -> list[Finding]:
        """Close the buckets that ``now`` (wall clock) has passed, even without events.

        With ``live_within`` (seconds), a stream whose newest event is older
        than that before ``now`` is a backfill of history, not a live stream:
        the wall clock says nothing about it, and it is left to its own events
        (whose watermark may still move on here, when a partition turned idle).
        """
        findings: list[Finding] = []
        t = _ts(now)
        if self._clock is None or t > self._clock:
            self._clock = t
        for parts in self._partitions.values():
            for entry in parts.values():
                if entry[1] is None:  # heard from before there was a clock: from now on
                    entry[1] = self._clock
        for stream in list(dict.fromkeys([*self._closed_upto, *self._partitions])):
            wm = self._event_watermark(stream)
            if not (live_within is not None and t - self._max_event_ts.get(stream, t) > live_within):
                wm = t if wm is None or t > wm else wm
            if wm is not None:
                findings += self._close(wm - self.allowed_lateness, stream)
        return findings

    def latest_scores(self) -> dict[tuple[str, str], float]:
        """Latest score of each province's all-sources series: {(stream, province): score}."""
        return {k: v["score"] for k, v in self.latest().items()}

    def latest(self) -> dict[tuple[str, str], dict[str, float]]:
        """Latest score, expected and seen count of each province's all-sources series."""
        out = {}
        for s in self._series.values():
            if s["level"] == "province" and s["source"] == "all" and s["last"] is not None:
                out[(s["stream"], s["code"])] = dict(s["last"])
        return out

    @property
    def n_series(self) -> int:
        return len(self._series)

    # -- closing -----------------------------------------------------------------

    def _close(self, watermark: float, stream: str) -> list[Finding]:
        end = math.floor(watermark / self.bucket_seconds)  # buckets < end are closable
        closed = self._closed_upto.get(stream)
        if closed is not None and end <= closed:
            return []
        self._closed_upto[stream] = end
        findings: list[Finding] = []
        for sid, s in self._series.items():
            if s["stream"] != stream:
                continue
            nxt = s["next"]
            if nxt is None or nxt >= end:
                continue
            if end - nxt > self.max_fill_buckets:
                skip_to = end - self.max_fill_buckets
                self.stats["skipped_buckets"] += skip_to - nxt
                for b in [b for b in s["counts"] if b < skip_to]:
                    self.stats["skipped_events"] += s["counts"].pop(b)
                nxt = skip_to
            model = self._models[sid]
            for b in range(nxt, end):
                f = self._score_bucket(sid, s, model, b, s["counts"].pop(b, 0))
                if f is not None:
                    findings.append(f)
            s["next"] = end
        return findings

    def _score_bucket(self, sid: str, s: dict, model: VolumeModel, b: int, seen: int) -> Finding | None:
        start = b * self.bucket_seconds
        # One call for score_one, expected, direction and learn_one of
        # {"timestamp": _dt(start), "value": float(seen)}: same results, the
        # forecast computed once (the epoch seconds of _dt(start) are start).
        score, expected, direction = model.score_learn_one(float(start), float(seen))
        self.stats["buckets_scored"] += 1
        s["last"] = {"score": score, "expected": expected, "seen": float(seen), "bucket_start": start}
        anomalous = model.warm and score >= self.threshold
        episode = s["open"]
        if anomalous:
            severity = "critical" if score >= self.critical_threshold else "warning"
            if episode is None:
                episode = s["open"] = {"since": start, "severity": severity, "peak": score}
            elif score > episode["peak"]:
                episode["peak"] = score
                if severity == "critical":
                    episode["severity"] = "critical"
            return self._finding(sid, s, model, episode, "open", severity, score, expected, seen,
                                 direction, start + self.bucket_seconds)
        if episode is not None:
            s["open"] = None
            # The anomaly ended with the previous bucket.
            return self._finding(sid, s, model, episode, "resolved", episode["severity"], score, expected,
                                 seen, direction, start)
        return None

    def _finding(self, sid: str, s: dict, model: VolumeModel, episode: dict, status: str, severity: str,
                 score: float, expected: float, seen: int, direction: str, end: float) -> Finding:
        since = _dt(episode["since"])
        end_dt = _dt(end)
        minutes = self.bucket_seconds // 60
        where = f"{s['level']} {s['code']}" + ("" if s["source"] == "all" else f", source {s['source']}")
        if status == "open":
            summary = (f"{s['stream'].capitalize()} in {where}: {seen} events in the {minutes}-minute bucket "
                       f"from {_dt(end - self.bucket_seconds):%Y-%m-%d %H:%M} UTC, about {expected:.0f} expected "
                       f"({direction}; anomalous since {since:%Y-%m-%d %H:%M} UTC).")
        else:
            summary = (f"{s['stream'].capitalize()} in {where} back to normal: {seen} events, "
                       f"about {expected:.0f} expected; the anomaly lasted from {since:%Y-%m-%d %H:%M} "
                       f"to {end_dt:%Y-%m-%d %H:%M} UTC.")
        return Finding(
            detector="volume",
            key=f"{sid}@{since.isoformat()}",
            severity=severity,  # type: ignore[arg-type]
            score=float(score),
            subject_kind="series",
            subject_id=sid,
            summary=summary,
            evidence={
                "expected": round(float(expected), 3),
                "seen": int(seen),
                "direction": direction,
                "since": since.isoformat(),
                "bucket_seconds": self.bucket_seconds,
                "model": "VolumeModel",
                "model_version": VolumeModel.VERSION,
                # The weekly rhythm is learned only after a week of data.
                "warming_up": model.span_seconds < _WEEK,
                "stream": s["stream"],
                "level": s["level"],
                "source": s["source"],
            },
            event_ids=[],
            region=dict(s["region"]),
            occurred_at=end_dt,
            window=(since, end_dt),
            status=status,  # type: ignore[arg-type]
            kind=direction,
        )

    # -- state -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """All state as plain, JSON-serialisable data (models included)."""
        series = {}
        for sid, s in self._series.items():
            d = dict(s)
            d["counts"] = {str(b): n for b, n in s["counts"].items()}
            d["region"] = dict(s["region"])
            d["open"] = dict(s["open"]) if s["open"] else None
            d["last"] = dict(s["last"]) if s["last"] else None
            d["model"] = self._models[sid].state_dict()
            series[sid] = d
        return {
            "version": self.VERSION,
            "bucket_seconds": self.bucket_seconds,
            "closed_upto": dict(self._closed_upto),
            "max_event_ts": dict(self._max_event_ts),
            "partitions": {stream: {k: list(v) for k, v in parts.items()}
                           for stream, parts in self._partitions.items()},
            "clock": self._clock,
            "stats": dict(self.stats),
            "series": series,
        }

    def load_state_dict(self, d: dict[str, Any]) -> VolumeMonitor:
        """Resume from :meth:`state_dict` (the bucket width must match)."""
        if d.get("version") != self.VERSION:
            raise ValueError(f"VolumeMonitor state version {d.get('version')!r}, expected {self.VERSION!r}")
        if d["bucket_seconds"] != self.bucket_seconds:
            raise ValueError(f"state has {d['bucket_seconds']} s buckets, this monitor {self.bucket_seconds} s")
        self._closed_upto = dict(d["closed_upto"])
        self._max_event_ts = dict(d["max_event_ts"])
        # Snapshots from before per-partition watermarks have none: the
        # partitions are learned again from the next counts.
        self._partitions = {stream: {k: list(v) for k, v in parts.items()}
                            for stream, parts in d.get("partitions", {}).items()}
        self._clock = d.get("clock")
        self.stats = {**self.stats, **d["stats"]}
        self._series, self._models = {}, {}
        for sid, s in d["series"].items():
            s = dict(s)
            model_state = s.pop("model")
            s["counts"] = {int(b): n for b, n in s["counts"].items()}
            s["region"] = dict(s["region"])
            s["open"] = dict(s["open"]) if s["open"] else None
            s["last"] = dict(s["last"]) if s["last"] else None
            self._series[sid] = s
            self._models[sid] = VolumeModel(**self.model_params).load_state_dict(model_state)
        return self
