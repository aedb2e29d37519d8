"""The Faust worker: topics, tables, agents, timers and the web server.

Thin wiring around :class:`app.pipeline.Pipeline`. Every input message is
decoded and validated; bad input goes to the dead-letter topic with the
original key and bytes and the reason in headers (the Kafka Connect DLQ
convention), and the agent moves on. Detectors run; findings become alerts
(:mod:`app.alerter`), published keyed by alert id. Routed events go to
internal topics, re-keyed for second-stage detectors.

Settings from ``docs/broker.md`` make Faust practical on the embedded Tansu
broker (short session timeouts, no recovery consistency check); they are
harmless on a real Kafka.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import defaultdict
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from datetime import datetime, timezone
from typing import Any

import faust
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from app import gc_tuning, rocksdb_store
from app.alerter import Alerter
from app.changelog_batch import ChangelogBatchWriter
from app.detectors import make_volume_monitor
from app.kafka_io import faust_fetch_max_wait, key_partition, key_partitions, linger_per_broker
from app.metrics import Metrics, province_label, source_label
from app.pipeline import DETECTOR_ERRORS, ROUTE_KINDS, Pipeline, Route
from app.settings import Settings
from app.validation import InvalidEvent, Validator
from app.write_behind import WriteBehind
from models.base import Finding

log = logging.getLogger("pantau.worker")

STREAMS = ("registrations", "results", "feedback")
#: A stream whose newest event is older than this is a backfill: the wall clock does not close its buckets.
LIVE_WITHIN = 86400.0
#: Volume counts are sent to the volume agent after this many input events (or a second).
VOLUME_FLUSH_EVENTS = 200
#: Key of the wall-clock tick sent to volume partitions (never a stream|province key).
TICK = "__tick__"
#: Routed events wait in memory, packed per (route kind, partition), until this many
#: seconds have passed or this many input events were handled, and always until the
#: consumer is about to commit offsets (see ``Worker._flush_before_commit``).
ROUTE_FLUSH_SECONDS = 0.05
ROUTE_FLUSH_EVENTS = 200
#: Own name counts go to the name-count topic once a second, in messages of at most this many names.
NAME_COUNTS_PER_MESSAGE = 4096
#: A partition whose commits have been stuck this long behind offsets never processed is fetched
#: again from there, every time this long (see ``Worker._refetch_holes``).
HOLE_SECONDS = 10.0
#: Most records taken from a shared topic's consumer at once.
FOLLOW_RECORDS = 2000
#: Longest read of a partition looking for offsets its log does not hold (``Worker._scan_log``).
SCAN_SECONDS = 5.0
#: Longest wait, before a commit, for the messages of the offsets being committed to be delivered.
COMMIT_FLUSH_SECONDS = 60.0
#: How long the producer waits to fill a request (Faust's ``producer_linger``; it adds at
#: most this much to each hop of an event's path to its alert).
PRODUCER_LINGER_SECONDS = 0.02


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for SASL and/or TLS, from settings (None for PLAINTEXT)."""
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


async def acked_after_body(events: faust.StreamT, hold: Any = None) -> AsyncIterator[faust.EventT]:
    """The stream's events, each acked only when the loop body that took it has finished.

    Faust acks an event in a ``finally`` around its ``yield``, so an agent
    cancelled in the middle of an event (a worker stopping or leaving the
    group) marks that event done and the next commit skips it (the likely
    cause of the join/leave fault test's rare misses, 6 of 900 tallies).
    With manual acks a half-processed event stays uncommitted and its
    partition's next owner processes it again (at-least-once; alert ids are
    deterministic). ``hold(event)`` may keep an event unacked for later
    (``WriteBehind.hold``: it acks the event once its table values are written).
    """
    async for event in events.noack().events():
        yield event
        if hold is None or not hold(event):
            event.ack()


def faust_app(settings: Settings) -> faust.App:
    """The Faust app for ``settings``: shared by the worker and the no-op benchmark baseline."""
    s = settings
    s.data_dir.mkdir(parents=True, exist_ok=True)
    linger_per_broker()
    faust_fetch_max_wait(s.fetch_max_wait_ms)
    store = s.store
    if store == "rocksdb://":  # the same RocksDB, under one memory budget for all tables (app/rocksdb_store.py)
        rocksdb_store.configure(s.rocksdb_memtable_mb << 20, s.rocksdb_block_cache_mb << 20)
        store = f"{rocksdb_store.SCHEME}://"
    return faust.App(
        s.app_id,
        broker=s.broker_url if s.broker_url.startswith("kafka://") else f"kafka://{s.broker_url}",
        broker_credentials=broker_credentials(s),
        store=store,
        datadir=str(s.data_dir),
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        broker_session_timeout=s.broker_session_timeout,
        broker_heartbeat_interval=s.broker_heartbeat_interval,
        broker_rebalance_timeout=s.broker_rebalance_timeout,
        consumer_auto_offset_reset="earliest",
        # Tansu reports a wrong end offset after multi-record batches;
        # the check would refuse to recover (docs/broker.md).
        recovery_consistency_check=False,
        web_enabled=False,  # our own server: Faust's /table views would expose table contents
        producer_max_request_size=4 * s.max_event_bytes + 65536,
        # Batch for up to 20 ms, per broker (linger_per_broker): each input
        # event writes to several changelog and route partitions, and produce
        # requests, not messages, were the largest cost (docs/performance.md).
        producer_linger=PRODUCER_LINGER_SECONDS,
        autodiscover=False,
    )


def internal_topic_name(settings: Settings, kind: str) -> str:
    return f"{settings.app_id}-route-{kind.replace('_', '-')}"


#: Topics that every worker reads whole, from its own consumer (no group): what
#: one worker learns, all of them know, also after a restart (docs/duplicates.md,
#: "Shared by all workers"). Their state is the sum of all their messages, so none
#: may expire (a broker's default is a week); verdicts are learned in one order
#: everywhere, so they have one partition.
SHARED_KINDS = ("name_counts", "verdicts")
TOPIC_CONFIGS: dict[str, dict[str, str]] = dict.fromkeys(SHARED_KINDS, {"retention.ms": "-1", "retention.bytes": "-1"})
TOPIC_PARTITIONS: dict[str, int] = {"verdicts": 1}


def missing_runs(start: int, present: list[int]) -> dict[int, int]:
    """The runs of offsets from ``start`` up to the last of ``present`` (ascending offsets read
    from a partition) that are not in it, as {first missing: first present after it}.

    >>> missing_runs(10, [11, 12, 13, 15, 16, 19])
    {10: 11, 14: 15, 17: 19}
    >>> missing_runs(10, [10, 11])
    {}
    """
    runs, expected = {}, start
    for offset in present:
        if offset > expected:
            runs[expected] = offset
        expected = max(expected, offset + 1)
    return runs


def shared_topic_name(settings: Settings, kind: str) -> str:
    return f"{settings.app_id}-{kind.replace('_', '-')}"


class Worker:
    """Builds the Faust app for ``settings`` and holds what its agents share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.detector_errors = Counter(
            "pantau_detector_errors", "Detector failures on single events (the event is still processed).",
            ["detector"], registry=self.metrics.registry,
        )
        self.validator = Validator(settings.max_event_bytes, settings.max_future_seconds)
        self.app = self._make_app()
        self._declare_topics()
        # Tables that every event of an agent changes under a few keys: written once per
        # commit (app/write_behind.py). One per agent that writes them, which holds its acks.
        self.write_behind = {agent: WriteBehind() for agent in set(self.WRITE_BEHIND.values())}
        self._declare_tables()
        self.pipeline = Pipeline(settings, self._store)
        self.alerter = Alerter(self.tables["alerts"], coalesce_seconds=settings.alert_coalesce_seconds)
        # Name counts are shared through a topic: this process's messages carry this id.
        self._instance = uuid.uuid4().hex.encode()
        # Set once a shared topic has been read to its end (see _follow).
        self._shared_ready = {kind: asyncio.Event() for kind in SHARED_KINDS}
        self._shared_positions: dict[str, dict[int, int]] = {kind: {} for kind in SHARED_KINDS}
        self._name_counts_unsent: list[bytes] = []
        # Partitions whose commits are stuck behind offsets never processed:
        # partition -> (next offset to process, since when, or since the last refetch).
        self._holes: dict[Any, tuple[int, float]] = {}
        # partition -> (offset it was sought to, consumer generation), until that offset is handed over
        self._seeking: dict[Any, tuple[int, int]] = {}
        # partition -> {first offset of a run the log does not hold: first offset after it}
        self._log_gaps: dict[Any, dict[int, int]] = {}
        self._verdicts_seen: set[str] = set()  # feedback messages learned from, by topic:partition:offset
        if self.pipeline.person_block is not None:
            self.pipeline.person_block.share_name_counts()
        self._declare_agents()
        for kind in ("registrations", "results", "feedback", *ROUTE_KINDS):
            # At 0 from the start, so that a dashboard shows "none" rather than "no data".
            self.metrics.refetches.labels(kind)
            self.metrics.log_gap_offsets.labels(kind)
        self._broker_was_up = False
        self._volume_partials: dict[tuple, tuple[int, float]] = {}
        # Newest event time per (stream, input partition): the partition's watermark.
        self._volume_progress: dict[tuple[str, int], float] = {}
        # What this process did once per input offset (see _first_time): what -> partition -> offsets
        # since the partition's committed one.
        self._done_once: dict[str, dict[Any, set[int]]] = {}
        self._volume_pending = 0
        self._volume_flushed_at = time.monotonic()
        self._volume_monitors: dict[int, Any] = {}
        self._volume_snapshot_at: dict[int, float] = {}
        self._web_runner: web.AppRunner | None = None
        # Routed events buffered, as (kind, key, JSON item), until a flush gives them partitions;
        # then, until sent: (kind, partition) -> chunks of [first key, JSON items, bytes].
        self._unpacked: list[tuple[str, str, bytes]] = []
        self._routes: dict[tuple[str, int], list[list[Any]]] = {}
        self._routes_events = 0
        self._routes_flushed_at = time.monotonic()
        self._routes_lock = asyncio.Lock()
        # A message must stay well under the producer's request size (faust_app).
        self._route_message_bytes = 2 * self.settings.max_event_bytes
        self._flush_before_commit()
        self._keep_rebalances_lossless()
        self._write_behind_before_commit()

    # -- construction ---------------------------------------------------
    def _make_app(self) -> faust.App:
        return faust_app(self.settings)

    def _topic(self, name: str, config: dict[str, str] | None = None, partitions: int | None = None) -> faust.TopicT:
        return self.app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=partitions or self.settings.partitions, replicas=self.settings.replication_factor,
            internal=True, config=config,
        )

    def _declare_topics(self) -> None:
        s = self.settings
        self.topics = {
            "registrations": self._topic(s.topic_registrations),
            "results": self._topic(s.topic_results),
            "feedback": self._topic(s.topic_feedback),
            "alerts": self._topic(s.topic_alerts),
            "dead_letters": self._topic(s.topic_dead_letters),
        }
        for kind in ROUTE_KINDS:
            self.topics[kind] = self._topic(internal_topic_name(s, kind))
        for kind in SHARED_KINDS:
            self.topics[kind] = self._topic(shared_topic_name(s, kind), TOPIC_CONFIGS[kind], TOPIC_PARTITIONS.get(kind))

    #: Tables written outside the partition of the event being processed (from
    #: timers, or with keys unrelated to the input key): their changelog
    #: partition comes from the key instead (Faust's use_partitioner).
    KEY_PARTITIONED = frozenset({"alerts"})

    def _declare_tables(self) -> None:
        self.tables: dict[str, MutableMapping[str, Any]] = {}
        self._write_behind_tables: dict[str, MutableMapping[str, Any]] = {}
        self._store("alerts")
        self._store("volume")

    #: Tables kept in memory between commits (app/write_behind.py), with the one agent
    #: that writes each (it holds its acks): the national and regency counters every
    #: registration changes, and the village, district and regency state every tally of a
    #: regency rewrites (a digit window of up to 1,000 TPS, ~26 kB, at every tally). The
    #: duplicate indexes (a NIK, a person's keys, eight blocks and a household per
    #: registration) and a TPS's tally state and last revision change under keys that
    #: rarely repeat within a commit, but written at the commit in batches
    #: (app/changelog_batch.py) a write costs a fraction of Faust's own.
    WRITE_BEHIND = {"eligibility_regions": "registrations", "heaping_regions": "registrations",
                    "nik_index": "registrations", "person_keys": "registrations",
                    "tally_state": "results", "revisions": "results",
                    "person_blocks": "person_block", "households": "household",
                    "peers": "regency_tally", "forensics": "regency_tally"}

    def _store(self, name: str) -> MutableMapping[str, Any]:
        if name not in self.tables:
            self.tables[name] = self.app.Table(
                name, default=None, partitions=self.settings.partitions,
                use_partitioner=name in self.KEY_PARTITIONED,
            )
            agent = self.WRITE_BEHIND.get(name)
            if agent is not None:
                self._write_behind_tables[name] = self.write_behind[agent].wrap(self.tables[name])
        wrapped = self._write_behind_tables.get(name)  # (an empty mapping is falsy: no `or` here)
        return self.tables[name] if wrapped is None else wrapped

    def _declare_agents(self) -> None:
        app, topics = self.app, self.topics

        for stream in ("registrations", "results"):
            app.agent(topics[stream], name=f"pantau.{stream}")(self._make_input_agent(stream))
        app.agent(topics["feedback"], name="pantau.feedback")(self._feedback_agent)
        for kind in ROUTE_KINDS:
            app.agent(topics[kind], name=f"pantau.route.{kind}")(self._make_route_agent(kind))
        app.timer(interval=5.0)(self._housekeeping)
        app.timer(interval=ROUTE_FLUSH_SECONDS)(self._route_timer)
        app.timer(interval=1.0)(self._probe_broker)
        app.task(self._start_web)
        app.task(self._share_name_counts)
        app.task(self._learn_verdicts)

    # -- agents -----------------------------------------------------------
    def _make_input_agent(self, stream: str):
        async def agent(events: faust.StreamT) -> None:
            # One event at a time: Faust's own iterator sets the current event
            # (a table write's changelog partition); acked only after the body
            # (acked_after_body). Batching with take_events lost events across a
            # rebalance in the join/leave test, so it is not used (docs/performance.md).
            async for event in acked_after_body(events, self._hold_for(stream)):
                routes: list[Route] = []
                await self._handle_input(stream, event.message, routes)
                self._buffer_routes(routes)
                await self._maybe_flush_routes()
                await self._maybe_flush_volume()
        agent.__name__ = f"{stream}_agent"
        return agent

    async def _maybe_flush_volume(self, force: bool = False) -> None:
        """Send the summed volume counts every ``VOLUME_FLUSH_EVENTS`` events or second.

        Counts are statistics: a crash loses at most the counts since the last
        flush, never an event or a finding.
        """
        self._volume_pending += 1
        now = time.monotonic()
        if force or self._volume_pending >= VOLUME_FLUSH_EVENTS or now - self._volume_flushed_at >= 1.0:
            self._volume_pending, self._volume_flushed_at = 0, now
            await self._send_routes(self._volume_routes())

    async def _handle_input(self, stream: str, message: Any, routes: list[Route]) -> None:
        try:
            event = self.validator.decode(stream, message.value)
        except InvalidEvent as exc:
            await self._dead_letter(stream, message, exc)
            return
        except Exception:  # noqa: BLE001 - a validator bug: park the event, never crash the agent
            log.exception("validation failed unexpectedly on %s[%s]@%s", message.topic, message.partition,
                          message.offset)
            await self._dead_letter(stream, message, InvalidEvent(
                "processing_error", "the worker could not validate this payload; see the worker log by offset"))
            return
        try:
            await self._process(stream, message, event, routes)
        except Exception:  # noqa: BLE001 - a bug must not stall the partition: the event is parked, not lost
            log.exception("processing failed for %s event %s", stream, event.get("event_id"))
            await self._dead_letter(stream, message, InvalidEvent(
                "processing_error", "the worker failed on this event; see the worker log by event id"))

    async def _process(self, stream: str, message: Any, event: dict[str, Any], routes: list[Route]) -> None:
        started = time.perf_counter()
        if stream == "registrations" and not self._keyed_by_nik(message.key, event):
            # Producers must key by NIK so one NIK always meets its index
            # partition; a mis-keyed event is re-sent with the right key.
            if self._first_time("rekey", message):
                await self.topics["registrations"].send(key=event["voter"]["nik"].encode(), value=message.value)
                self.metrics.events.labels(stream, "rekeyed").inc()
            return
        if stream == "registrations":
            findings, new_routes = self.pipeline.on_registration(event)
        else:
            findings, new_routes = self.pipeline.on_result(event)
        routes += new_routes
        m = self.metrics
        # Counts of what the events say (volume series, participation and
        # registration metrics) take each event once; pantau_events_total
        # counts the work done, events processed again included.
        if self._first_time("count", message):
            self._count_for_volume(stream, event, message.partition)
            if stream == "registrations":
                m.observe_registration(event, self.settings.polling_day)
            else:
                m.observe_result(event)
            m.events_by_region.labels(stream, province_label(event.get("region")),
                                      source_label(event.get("source"))).inc()
        await self._publish(findings)
        m.events.labels(stream, "processed").inc()
        m.last_event.labels(stream).set(time.time())
        m.processing.labels(stream).observe(time.perf_counter() - started)

    def _first_time(self, what: str, message: Any) -> bool:
        """Whether this process has not done ``what`` for ``message``'s offset before (and notes it).

        A refetch (``_refetch_holes``) or a rebalance's seek processes events
        again. Alerts are republished with the same ids, but counts would
        count them twice (``count``: the volume series and the participation
        and registration metrics of input events, and the partial counts on
        the volume route topic), and a bad event would be dead-lettered
        (``dead_letter``) or a mis-keyed one re-sent (``rekey``) twice.
        Offsets are kept from the partition's committed one on
        (``_forget_committed``), which is where any seek goes back to.
        """
        seen = self._done_once.setdefault(what, {}).setdefault(message.tp, set())
        if message.offset in seen:
            return False
        seen.add(message.offset)
        return True

    def _forget_committed(self) -> None:
        consumer = self.app.consumer
        assigned = consumer.assignment()
        for done in self._done_once.values():
            for tp in list(done):
                committed = consumer._committed_offset.get(tp)  # noqa: SLF001 - Faust keeps no public view
                if tp not in assigned:
                    del done[tp]
                elif committed:
                    done[tp] = {o for o in done[tp] if o >= committed}
        for tp, gaps in list(self._log_gaps.items()):
            committed = consumer._committed_offset.get(tp)  # noqa: SLF001
            if committed:
                self._log_gaps[tp] = {a: b for a, b in gaps.items() if b > committed}

    def _count_for_volume(self, stream: str, event: dict[str, Any], partition: int) -> None:
        stamp = event.get("occurred_at") or event.get("submitted_at")
        when = datetime.fromisoformat(stamp).timestamp()
        region = event.get("region") or {}
        key = (stream, region.get("province") or "", region.get("regency") or "", event.get("source") or "",
               int(when // self.settings.volume_bucket_seconds), partition)
        count, latest = self._volume_partials.get(key, (0, when))
        self._volume_partials[key] = (count + 1, max(latest, when))
        if when > self._volume_progress.get((stream, partition), when - 1.0):
            self._volume_progress[(stream, partition)] = when

    def _volume_routes(self) -> list[Route]:
        """The batch's counts per series and bucket, as routes to the volume agent."""
        routes = []
        for (stream, province, regency, source, _, part), (count, latest) in self._volume_partials.items():
            # The input partition and its watermark: the volume monitor closes a
            # bucket only when every input partition has passed it (docs/volume.md).
            payload = {"stream": stream, "region": {"province": province, "regency": regency or None},
                       "source": source or None, "at": latest, "count": count,
                       "partition": part, "wm": self._volume_progress.get((stream, part), latest)}
            routes.append(Route("volume", f"{stream}|{province}", payload))
        self._volume_partials.clear()
        return routes

    @staticmethod
    def _keyed_by_nik(key: bytes | None, event: dict[str, Any]) -> bool:
        return key is not None and key.decode("utf-8", "replace") == event["voter"]["nik"]

    def _partition_of(self, key: str) -> int:
        # The Java client's (and aiokafka's) default partitioner, so a packed
        # batch lands where each of its keys would have landed on its own.
        return key_partition(key, self.settings.partitions)

    async def _send_routes(self, routes: list[Route]) -> None:
        """Routed events packed per (kind, partition): one message each instead of one per event."""
        packed: dict[tuple[str, int], list[list[Any]]] = defaultdict(list)
        for route in routes:
            packed[(route.kind, self._partition_of(route.key))].append([route.key, route.event])
        for (kind, partition), items in packed.items():
            await self.topics[kind].send(key=items[0][0].encode(), value=orjson.dumps(items), partition=partition)

    # -- routed events: packed across input events ---------------------------
    def _buffer_routes(self, routes: list[Route]) -> None:
        """Keep ``routes`` for the next flush, in the order routed."""
        self._routes_events += 1
        # A registration goes to its eight blocks and its household: the event is encoded
        # once, each item is ["key",<event>] as orjson.dumps([key, event]) would write it.
        encoded: dict[int, bytes] = {}  # by id(): every event here is alive in ``routes``
        for route in routes:
            event = encoded.get(id(route.event))
            if event is None:
                event = encoded[id(route.event)] = orjson.dumps(route.event)
            self._unpacked.append((route.kind, route.key, b"[" + orjson.dumps(route.key) + b"," + event + b"]"))

    def _pack_routes(self) -> None:
        """Pack the buffered routes per (kind, partition), after any still unsent, in the same
        wire format as :meth:`_send_routes` (a JSON list of ``[key, event]``). The partitions
        of a whole flush are computed at once (:func:`key_partitions`)."""
        items, self._unpacked = self._unpacked, []
        limit = self._route_message_bytes
        partitions = key_partitions([key for _, key, _ in items], self.settings.partitions)
        for (kind, key, item), partition in zip(items, partitions):
            chunks = self._routes.setdefault((kind, partition), [])
            if not chunks or chunks[-1][2] + len(item) > limit:
                chunks.append([key, [item], len(item)])
            else:
                chunk = chunks[-1]
                chunk[1].append(item)
                chunk[2] += len(item) + 1

    def _routes_waiting(self) -> bool:
        return bool(self._unpacked or self._routes)

    async def _maybe_flush_routes(self) -> None:
        if self._routes_waiting() and (self._routes_events >= ROUTE_FLUSH_EVENTS
                                       or time.monotonic() - self._routes_flushed_at >= ROUTE_FLUSH_SECONDS):
            await self._flush_routes()

    async def _flush_routes(self) -> None:
        """Send every buffered routed event, in the order buffered.

        One flush at a time: the commit hook and the agents both flush, and a
        route sent by one must not overtake an earlier one still being sent by
        the other (an update's removal and its new copy go to the same block).
        """
        async with self._routes_lock:
            self._pack_routes()
            pending, self._routes = self._routes, {}
            self._routes_events, self._routes_flushed_at = 0, time.monotonic()
            queue = [(dest, chunk) for dest, chunks in pending.items() for chunk in chunks]
            for i, ((kind, partition), (key, items, _size)) in enumerate(queue):
                try:
                    await self.topics[kind].send(key=key.encode(), value=b"[" + b",".join(items) + b"]",
                                                 partition=partition)
                except BaseException:
                    # Not sent: kept for the next flush, which packs what was buffered
                    # since behind them (only a flush packs, under this lock).
                    unsent: dict[tuple[str, int], list[list[Any]]] = {}
                    for dest, chunk in queue[i:]:
                        unsent.setdefault(dest, []).append(chunk)
                    self._routes = unsent
                    raise

    def _flush_before_commit(self) -> None:
        """Send buffered routed events before the consumer commits any offset.

        Faust flushes its producer right before it commits input offsets
        (``Consumer._commit_offsets``, on its commit timer, every
        ``broker_commit_every`` events and on a rebalance). The routes of every
        event acked by then are in the buffer, so sending them first keeps
        at-least-once: an input offset is committed only after its routed
        events were delivered. A crash before the commit replays the events,
        which routes them again.
        """
        producer = self.app.producer

        async def flush() -> None:
            await self._flush_routes()
            # Faust's own flush returns once no message went out for 0.1 s, with
            # messages still waiting (seen under load: alerts of committed events
            # lost when a worker stopped), and waiting for an empty buffer took
            # 13 s under load, the agents filling it as fast as it drained. What
            # the offsets being committed produced is out of the agents already
            # (acked after the body): table changelogs in Faust's buffer, sends
            # (alerts, routes, dead letters) in the client's batches. Wait for the
            # last message in the buffer (a FIFO) to be delivered, then for every
            # batch handed to the client by then. A producer that cannot send
            # raises here, and nothing is committed.
            waiting = producer.buffer.pending._queue  # noqa: SLF001 - the asyncio.Queue's deque
            if waiting:
                await asyncio.wait_for(asyncio.shield(waiting[-1]), timeout=COMMIT_FLUSH_SECONDS)
            client = getattr(producer, "_producer", None)
            if client is not None:
                await asyncio.wait_for(client.flush(), timeout=COMMIT_FLUSH_SECONDS)

        producer.flush = flush  # type: ignore[method-assign]

    def _hold_for(self, agent: str) -> Any:
        """What ``acked_after_body`` asks before acking an event of ``agent``: None if it writes no write-behind table."""
        behind = self.write_behind.get(agent)
        return None if behind is None else behind.hold

    def _write_behind_before_commit(self) -> None:
        """Write the table values held in memory, and ack their events, at the start of every commit.

        ``Consumer.commit`` is wrapped, not the producer flush the routes use:
        Faust flushes its producer only when some offset is committable, and a
        partition whose events are all held has none. Here the acks count in
        this very commit (Faust picks the committable offsets afterwards), and
        the producer flush inside it delivers the changelog messages written
        first. Where an ack would only release its message (a rebalance, see
        ``_keep_rebalances_lossless``), the values are dropped
        (app/write_behind.py). A stop writes them before Faust begins stopping.
        """
        app = self.app
        consumer = app.consumer
        commit = consumer.commit

        def committable(event: Any) -> bool:
            return event.message.generation_id == app.consumer_generation_id and app.flow_control.is_active()

        writer = ChangelogBatchWriter(app, max_batch_bytes=self._route_message_bytes)
        # One flush at a time: a flush acks its events once the changelog batches it
        # wrote are acknowledged, and the writer's pending batches are per flush.
        flushing = asyncio.Lock()

        async def write_held() -> None:
            async with flushing:
                for behind in self.write_behind.values():
                    if behind.held:
                        try:
                            await behind.flush(committable, writer, COMMIT_FLUSH_SECONDS)
                        except Exception:  # noqa: BLE001 - never acked, the events are processed again
                            log.exception("writing the table values held in memory failed")

        async def commit_after_writing(*args: Any, **kwargs: Any) -> bool:
            await write_held()
            return await commit(*args, **kwargs)

        consumer.commit = commit_after_writing  # type: ignore[method-assign]

        # A stop revokes the tables and suspends the flow before its last commit, so by
        # then the values could only be dropped (and their events processed again at the
        # next start): write them first, while the events can still be committed.
        stop_consumer = app._stop_consumer  # noqa: SLF001 - Faust's stop has no earlier hook

        async def write_then_stop() -> None:
            await write_held()
            await stop_consumer()

        app._stop_consumer = write_then_stop  # type: ignore[method-assign]  # noqa: SLF001

    def _keep_rebalances_lossless(self) -> None:
        """Guards around Faust's consumer, so that a rebalance loses no event.

        The join/leave fault test lost 1-15 events of one partition in most
        runs (docs/reliability.md, "Rebalances"). What Faust does, and what is
        guarded here:

        * Its fetch loop hands a message to the streams and then records the
          offset as read. A message fetched before a rebalance (or before a
          refetch's seek) can be handed over after the seek, and its offset
          then overwrites the seek's, so the offsets fetched again are dropped
          as already read. Such an offset is not recorded (older consumer
          generation), nor is any offset other than the seek's own until the
          message at the seek's offset has been handed over.
        * Its streams skip such messages (older generation, or flow control
          suspended) and ack them, which makes their offsets committable
          although nothing processed them. Such an ack only releases the
          message.
        * Its commit offset counts offsets its fetch loop jumped over as a gap
          (compacted away, or a transaction marker), and lets a commit pass
          one unprocessed offset right after the committed one. The offset
          committed here is the end of the run of processed offsets that
          starts at the committed one; it passes only offsets checked to be
          missing from the log (``_scan_log``).

        At-least-once: an event finished just as a rebalance began may be
        processed twice; alert ids are deterministic.
        """
        app = self.app
        consumer = app.consumer
        deliver = consumer.callback
        fetched_in: dict[Any, int | None] = {}  # generation of the last message handed over, per partition
        seeking = self._seeking

        async def callback(message: Any) -> Any:
            fetched_in[message.tp] = message.generation_id
            return await deliver(message)

        class ReadOffsets(defaultdict):
            def __setitem__(self, tp: Any, offset: Any) -> None:
                if fetched_in.get(tp, app.consumer_generation_id) != app.consumer_generation_id:
                    return  # fetched before the rebalance: the seek's offset stands
                target = seeking.get(tp)
                if target is not None:
                    if target[1] != app.consumer_generation_id:
                        del seeking[tp]  # a rebalance sought it since
                    elif offset != target[0]:
                        return  # fetched before the seek: the seek's offset stands
                    else:
                        del seeking[tp]
                super().__setitem__(tp, offset)

        offsets = ReadOffsets(lambda: None)
        offsets.update(consumer._read_offset)  # noqa: SLF001 - Faust keeps it private
        consumer._read_offset = offsets  # noqa: SLF001 - read by the fetch loop, which binds it at start
        consumer.callback = callback
        ack = consumer.ack

        def ack_if_current(message: Any) -> bool:
            if message.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
                message.acked = True
                consumer._unacked_messages.discard(message)  # noqa: SLF001 - what Faust's ack would discard
                return False
            return ack(message)

        consumer.ack = ack_if_current  # type: ignore[method-assign]
        consumer._new_offset = self._offset_to_commit  # noqa: SLF001

    def _past_gaps(self, tp: Any, offset: int) -> int:
        """``offset``, or the first offset after the log gap starting there (``_scan_log``)."""
        gaps = self._log_gaps.get(tp)
        while gaps and offset in gaps:
            offset = gaps[offset]
        return offset

    def _next_to_process(self, tp: Any) -> int:
        """The partition's committed offset, moved past a gap checked to be missing from the log."""
        return self._past_gaps(tp, self.app.consumer._committed_offset[tp] or 0)  # noqa: SLF001 - None for 0

    def _offset_to_commit(self, tp: Any) -> int | None:
        """The offset to commit for ``tp``: one past the run of processed offsets (and log gaps)
        from the next to process.

        Replaces Faust's ``Consumer._new_offset`` (see ``_keep_rebalances_lossless``).
        """
        consumer = self.app.consumer
        consumer._gap.pop(tp, None)  # noqa: SLF001 - Faust's guesses at gaps are not used
        acked = consumer._acked[tp]  # noqa: SLF001
        if not acked:
            return None
        acked.sort()
        start = self._next_to_process(tp)
        # Offsets below the committed one are done with. The run being committed
        # stays until its commit is through: the commit waits for the producer to
        # drain (seconds under load), and meanwhile the run must not look like a
        # hole (_refetch_holes); a failed commit is simply made again.
        stale = bisect.bisect_left(acked, start)
        if stale:
            consumer._acked_index[tp].difference_update(acked[:stale])  # noqa: SLF001
            del acked[:stale]
        following = start
        for offset in acked:
            if offset != following:
                break
            following = self._past_gaps(tp, following + 1)
        committed = consumer._committed_offset[tp] or 0  # noqa: SLF001
        return following if following > committed else None

    async def _refetch_holes(self) -> None:
        """Fetch a partition again from its next offset to process when later offsets
        were processed but that one never was, for ``HOLE_SECONDS``.

        Seen after rebalances (docs/reliability.md): a few offsets of a
        partition are never handed to the streams, so nothing acks them and
        the partition's commits stop there, while later offsets are processed.
        Commits never pass such a hole, so nothing is lost, but the events
        would wait for the next restart. The log is read first
        (``_scan_log``): offsets it does not hold (deleted, compacted,
        transaction markers) are gaps that commits pass. Otherwise the
        partition is fetched again from the hole, every ``HOLE_SECONDS`` for
        as long as it stays; the later events are processed a second time
        (at-least-once; alert ids are deterministic).
        """
        app, consumer = self.app, self.app.consumer
        if app.rebalancing or not app.flow_control.is_active():
            self._holes.clear()
            self._seeking.clear()
            return
        now = time.monotonic()
        for tp in list(consumer.assignment()):
            acked = consumer._acked.get(tp)  # noqa: SLF001 - Faust keeps no public view of acked offsets
            start = self._next_to_process(tp)
            if not acked or start in consumer._acked_index[tp] or max(acked) < start:  # noqa: SLF001
                self._holes.pop(tp, None)
                continue
            since = self._holes.get(tp)
            if since is None or since[0] != start:
                self._holes[tp] = (start, now)
                continue
            if now - since[1] < HOLE_SECONDS:
                continue
            self._holes[tp] = (start, now)
            if await self._scan_log(tp, start, max(acked)):
                continue
            log.warning("%s[%s]: offsets from %s were never processed; fetching them again", tp.topic,
                        tp.partition, start)
            self.metrics.refetches.labels(self._stream_of(tp.topic)).inc()
            self._seeking.pop(tp, None)
            await consumer.seek(tp, start)
            self._seeking[tp] = (start, app.consumer_generation_id)

    def _stream_of(self, topic: str) -> str:
        """The kind of a consumed topic (``results``, ``person_block``, ...): a fixed set, for labels."""
        return next((kind for kind, t in self.topics.items() if t.get_topic_name() == topic), "other")

    async def _scan_log(self, tp: Any, start: int, upto: int) -> bool:
        """Read ``tp`` from ``start`` towards ``upto`` and note the offsets the log does not hold
        (so that commits pass them); whether ``start`` is one of them. Stops at once when the log
        holds ``start``."""
        from aiokafka import TopicPartition

        from app.kafka_io import partition_reader

        present: list[int] = []
        reader = partition_reader(self.settings)
        try:
            await reader.start()
            partition = TopicPartition(tp.topic, tp.partition)
            reader.assign([partition])
            reader.seek(partition, start)
            deadline = time.monotonic() + SCAN_SECONDS
            while (not present or present[-1] < upto) and time.monotonic() < deadline:
                batch = await reader.getmany(partition, timeout_ms=1000, max_records=10_000)
                present += [r.offset for r in batch.get(partition, ())]
                if present and present[0] == start:
                    break  # the hole's message is there: it is fetched again, no need to read on
        except Exception:  # noqa: BLE001 - not checked this time; the hole is fetched again
            log.exception("could not read %s[%s] from %s", tp.topic, tp.partition, start)
            return False
        finally:
            await reader.stop()
        gaps = missing_runs(start, present)
        if gaps:
            missing = sum(b - a for a, b in gaps.items())
            log.warning("%s[%s]: %s offsets from %s to %s are not in the log (deleted, compacted or "
                        "transaction markers); commits pass them", tp.topic, tp.partition, missing, start,
                        present[-1])
            self._log_gaps.setdefault(tp, {}).update(gaps)
            self.metrics.log_gap_offsets.labels(self._stream_of(tp.topic)).inc(missing)
        return start in gaps

    def _make_route_agent(self, kind: str):
        async def agent(events: faust.StreamT) -> None:
            if kind == "person_block":
                await self._await_shared()
            async for event in acked_after_body(events, self._hold_for(kind)):
                message = event.message
                try:
                    items = orjson.loads(message.value)
                except orjson.JSONDecodeError:  # only Pantau writes here; log and move on
                    log.error("unreadable routed batch on %s offset %s", message.topic, message.offset)
                    continue
                if kind == "volume":
                    if self._first_time("count", message):  # partial counts: twice, they would add up twice
                        await self._observe_volume(message.partition, items)
                    continue
                for key, payload in items:
                    await self._publish(self.pipeline.on_route(kind, key, payload))
        agent.__name__ = f"route_{kind}_agent"
        return agent

    def _volume_monitor(self, partition: int) -> Any:
        """The monitor of one volume partition, resumed from its last snapshot."""
        monitor = self._volume_monitors.get(partition)
        if monitor is None:
            monitor = make_volume_monitor(self.settings)
            state = self.tables["volume"].get(f"p{partition}")
            if state is not None:
                try:
                    monitor.load_state_dict(state)
                    log.info("volume partition %s resumed from its snapshot", partition)
                except ValueError as exc:  # a snapshot of another version or bucket width
                    log.warning("volume partition %s starts afresh: %s", partition, exc)
            self._volume_monitors[partition] = monitor
            self._volume_snapshot_at[partition] = time.monotonic()
        return monitor

    async def _observe_volume(self, partition: int, items: list[list[Any]]) -> None:
        monitor = self._volume_monitor(partition)
        counted = False
        for key, p in items:
            try:
                if key == TICK:
                    findings = monitor.advance(datetime.fromtimestamp(p["now"], timezone.utc), live_within=LIVE_WITHIN)
                else:
                    # A batch's counts are all counted before any bucket closes.
                    when = datetime.fromtimestamp(p["at"], timezone.utc)
                    wm = p.get("wm")
                    monitor.observe(p["stream"], when, p["region"], p["source"], count=p["count"],
                                    partition=p.get("partition"), close=False,
                                    watermark=None if wm is None else datetime.fromtimestamp(wm, timezone.utc))
                    counted = True
                    continue
            except Exception:  # noqa: BLE001 - a detector bug must not stop the stream
                log.exception("volume monitor failed on a partial count")
                continue
            await self._publish(findings)
        if counted:
            try:
                findings = monitor.close()
            except Exception:  # noqa: BLE001
                log.exception("volume monitor failed closing buckets")
                findings = []
            await self._publish(findings)
        for (stream, province), last in monitor.latest().items():
            self.metrics.volume_score.labels(stream, province).set(last["score"])
            self.metrics.volume_expected.labels(stream, province).set(last["expected"])
            self.metrics.volume_observed.labels(stream, province).set(last["seen"])
        # Snapshot from inside the agent, so the write lands in this partition's changelog.
        if time.monotonic() - self._volume_snapshot_at[partition] >= self.settings.snapshot_seconds:
            self.tables["volume"][f"p{partition}"] = monitor.state_dict()
            self._volume_snapshot_at[partition] = time.monotonic()

    async def _feedback_agent(self, events: faust.StreamT) -> None:
        # Feedback is keyed by alert id, like the alerts table, so the alert is
        # held here. The verdict is learned by every worker from the verdict
        # topic (this one too), so all score with the same coefficients.
        async for event in acked_after_body(events):
            message = event.message
            try:
                feedback = self.validator.decode("feedback", message.value)
            except InvalidEvent as exc:
                await self._dead_letter("feedback", message, exc)
                continue
            alert = self.tables["alerts"].get(feedback["alert_id"])
            if alert is None:
                log.warning("feedback for an alert this worker does not hold: %s", feedback["alert_id"])
            else:
                verdict = {
                    # One feedback message is learned once, however often it is processed.
                    "source": f"{message.topic}:{message.partition}:{message.offset}",
                    "alert": {"alert_id": alert.get("alert_id"), "detector": alert.get("detector"),
                              "evidence": {"features": (alert.get("evidence") or {}).get("features")}},
                    "is_true": feedback["verdict"] == "true_positive",
                }
                await self.topics["verdicts"].send(key=feedback["alert_id"].encode(), value=orjson.dumps(verdict),
                                                   partition=0)
            self.metrics.events.labels("feedback", "processed").inc()

    # -- topics every worker reads whole -----------------------------------------
    async def _await_shared(self) -> None:
        """Before comparing records: every worker's name counts and verdicts, read back."""
        # A broker that cannot serve them must not stop duplicate detection for good.
        wait = self.settings.shared_wait_seconds
        for kind, ready in self._shared_ready.items():
            started = time.monotonic()
            try:
                await asyncio.wait_for(ready.wait(), wait)
            except asyncio.TimeoutError:
                log.warning("%s not read from %s within %.0f s (PANTAU_SHARED_WAIT_SECONDS): comparing "
                            "records with what was read so far", kind, shared_topic_name(self.settings, kind), wait)
                ready.set()
            wait = max(0.0, wait - (time.monotonic() - started))

    async def _follow(self, kind: str, on_records: Any, every_second: Any = None) -> None:
        """Read the shared topic ``kind`` whole, for as long as the worker runs.

        Its own consumer, no group: every worker reads every message, from the
        topic's start (so a restarted worker has its earlier lives' messages
        too). ``on_records`` gets each fetch's records; ``_shared_ready[kind]``
        is set once the topic was read to its end; ``every_second`` runs once
        a second from then on. After an error it resumes where it was.
        """
        from aiokafka import TopicPartition

        from app.kafka_io import partition_reader

        ready, positions = self._shared_ready[kind], self._shared_positions[kind]
        name = shared_topic_name(self.settings, kind)
        while True:
            consumer = None
            try:
                await self.topics[kind].maybe_declare()
                consumer = partition_reader(self.settings)
                await consumer.start()
                await consumer.topics()  # metadata, so that the partitions are known
                parts = consumer.partitions_for_topic(name) or range(self.topics[kind].partitions)  # as declared
                tps = [TopicPartition(name, p) for p in sorted(parts)]
                consumer.assign(tps)
                for tp in tps:
                    if tp.partition in positions:
                        consumer.seek(tp, positions[tp.partition])
                    else:
                        await consumer.seek_to_beginning(tp)
                # Caught up: at or past the end offsets read at start, with nothing
                # fetched left over. Tansu's can be short by a batch (docs/broker.md),
                # but the broker returns whole batches, so the fetch that reaches such
                # an end offset holds the rest of that batch too.
                end = await consumer.end_offsets(tps)
                ticked = time.monotonic()
                while True:
                    batch = await consumer.getmany(timeout_ms=200, max_records=FOLLOW_RECORDS)
                    records = [r for rs in batch.values() for r in rs]
                    if records:
                        on_records(records)
                        for r in records:
                            positions[r.partition] = r.offset + 1
                    if not ready.is_set() and len(records) < FOLLOW_RECORDS and await self._read_to(consumer, end):
                        log.info("%s read from %s", kind.replace("_", " "), name)
                        ready.set()
                    if every_second is not None and ready.is_set() and time.monotonic() - ticked >= 1.0:
                        await every_second()
                        ticked = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - log, retry, never stop the worker
                log.exception("reading %s failed; retrying in 5 s", name)
                await asyncio.sleep(5.0)
            finally:
                if consumer is not None:
                    await consumer.stop()

    @staticmethod
    async def _read_to(consumer: Any, end: dict) -> bool:
        for tp, offset in end.items():
            if await consumer.position(tp) < offset:
                return False
        return True

    async def _share_name_counts(self) -> None:
        """Keep this worker's name sketch counting every worker's records, across restarts.

        Each worker counts names only for the blocks of its own partitions, in
        memory: it sends its new counts every second and adds the others'.
        """
        person = self.pipeline.person_block
        if person is None:
            self._shared_ready["name_counts"].set()
            return

        def merge(records: list) -> None:
            records = [r for r in records if r.key != self._instance]  # own ones: counted here already
            try:
                person.merge_name_counts(*(r.value or b"" for r in records))  # at once: far cheaper on a read-back
                return
            except ValueError:
                pass
            for record in records:  # one is not a delta of this sketch: add the others, name the culprit
                try:
                    person.merge_name_counts(record.value or b"")
                except ValueError as exc:
                    log.error("name-count message at %s[%s]@%s skipped: %s", record.topic, record.partition,
                              record.offset, exc)

        async def send() -> None:
            unsent = self._name_counts_unsent
            while delta := person.name_count_delta(NAME_COUNTS_PER_MESSAGE):
                unsent.append(delta)
            while unsent:  # what failed to go stays first in line
                await self.topics["name_counts"].send(key=self._instance, value=unsent[0])
                unsent.pop(0)

        await self._follow("name_counts", merge, send)

    async def _learn_verdicts(self) -> None:
        """Learn every staff verdict, whichever worker took it, in the topic's one order."""
        def learn(records: list) -> None:
            for record in records:
                try:
                    verdict = orjson.loads(record.value)
                    source, alert, is_true = verdict["source"], verdict["alert"], bool(verdict["is_true"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.error("verdict message at %s[%s]@%s skipped: not a verdict", record.topic, record.partition,
                              record.offset)
                    continue
                if source in self._verdicts_seen:
                    continue  # the feedback message was processed twice (at-least-once)
                self._verdicts_seen.add(source)
                if self.pipeline.on_feedback(alert, is_true):
                    self.metrics.verdicts_learned.inc()

        await self._follow("verdicts", learn)

    # -- output -----------------------------------------------------------
    async def _publish(self, findings: list[Finding]) -> None:
        now = time.time()
        for finding in findings:
            self.metrics.findings.labels(finding.detector, finding.severity).inc()
            alert = self.alerter.publish(finding)
            if alert is None:
                continue
            await self.topics["alerts"].send(key=alert["alert_id"].encode(), value=orjson.dumps(alert))
            self.metrics.alerts.labels(
                alert["detector"], alert["severity"], province_label(alert.get("region")), alert["status"]
            ).inc()
            if finding.occurred_at is not None and alert["status"] != "resolved":
                self.metrics.event_to_alert.labels(finding.detector).observe(
                    max(0.0, now - finding.occurred_at.timestamp())
                )

    async def _dead_letter(self, stream: str, message: Any, exc: InvalidEvent) -> None:
        if not self._first_time("dead_letter", message):
            return  # processed again after a refetch: already on the dead-letter topic
        value = message.value or b""
        truncated = len(value) > self.settings.max_event_bytes
        headers = [
            ("pantau.reason", exc.reason.encode()),
            ("pantau.detail", exc.detail.encode()),
            ("pantau.stream", stream.encode()),
            ("pantau.source.topic", message.topic.encode()),
            ("pantau.source.partition", str(message.partition).encode()),
            ("pantau.source.offset", str(message.offset).encode()),
            ("pantau.truncated", b"true" if truncated else b"false"),
        ]
        await self.topics["dead_letters"].send(
            key=message.key, value=value[: self.settings.max_event_bytes], headers=headers
        )
        self.metrics.dead_letters.labels(stream, exc.reason).inc()
        self.metrics.events.labels(stream, "dead_letter").inc()
        log.info("dead letter from %s[%s]@%s: %s", message.topic, message.partition, message.offset, exc.reason)

    # -- timers -------------------------------------------------------------
    async def _housekeeping(self) -> None:
        try:
            await self._send_routes(self._volume_routes())
            await self._tick_volume()
            self._update_lag()
            await self._refetch_holes()
            self._forget_committed()
            self._update_index_sizes()
            self._export_detector_errors()
            if self.pipeline.person_block is not None:
                self.metrics.name_counts.set(self.pipeline.person_block.name_count_items)
            self._export_write_behind()
            memtable, block_cache = rocksdb_store.budget_usage()
            self.metrics.rocksdb_memory.labels("memtable").set(memtable)
            self.metrics.rocksdb_memory.labels("block_cache").set(block_cache)
        except Exception:  # noqa: BLE001 - a timer that raises would stop the whole app
            log.exception("housekeeping failed")

    def _export_write_behind(self) -> None:
        # Held events are released at every commit (Faust's ~2.8 s): a count that stays
        # up means commits are not happening, and a restart would process them again.
        for agent, write_behind in self.write_behind.items():
            self.metrics.write_behind_held.labels(agent).set(write_behind.held_events)

    async def _route_timer(self) -> None:
        """Routed events still waiting after a pause in the input go out on this timer."""
        try:
            if self._routes_waiting() and time.monotonic() - self._routes_flushed_at >= ROUTE_FLUSH_SECONDS:
                await self._flush_routes()
        except Exception:  # noqa: BLE001 - see _housekeeping; the commit hook retries the flush
            log.exception("sending routed events failed")

    async def _tick_volume(self) -> None:
        """Ask each volume partition held here to close buckets the wall clock has passed.

        Table writes need an event's partition, which a timer does not have, so
        the work happens in the volume agent when the tick arrives.
        """
        payload = orjson.dumps([[TICK, {"now": time.time()}]])
        for partition in list(self._volume_monitors):
            await self.topics["volume"].send(key=TICK.encode(), value=payload, partition=partition)

    def _export_detector_errors(self) -> None:
        for name, count in list(DETECTOR_ERRORS.items()):
            current = self.detector_errors.labels(name)._value.get()
            if count > current:
                self.detector_errors.labels(name).inc(count - current)

    def _update_index_sizes(self) -> None:
        for index in ("nik_index", "person_blocks", "households"):
            table = self.tables.get(index)
            if table is None:
                continue
            store = table.data
            dbs = getattr(store, "_dbs", None)
            try:
                if dbs is not None:  # RocksDB: the engine's estimate; counting keys would scan the disk
                    size = sum(int(db.property_int_value("rocksdb.estimate-num-keys") or 0) for db in dbs.values())
                else:
                    size = len(store)
            except Exception:  # noqa: BLE001 - a gauge is best effort
                continue
            self.metrics.index_entries.labels(index).set(size)

    def _update_lag(self) -> None:
        consumer = self.app.consumer
        names = {self.topics[s].get_topic_name(): s for s in ("registrations", "results", "feedback")}
        lag = dict.fromkeys(names.values(), 0)
        try:
            for tp in consumer.assignment():
                stream = names.get(tp.topic)
                if stream is None:
                    continue
                high = consumer.highwater(tp)
                read = consumer._read_offset.get(tp)  # noqa: SLF001 - Faust keeps no public read offset
                if high is None:
                    continue
                # Tansu's end offsets can be off by up to a batch: never report negative lag.
                lag[stream] += max(0, high - (read + 1 if read is not None else 0))
        except Exception:  # noqa: BLE001 - lag is best effort; no consumer yet during start
            return
        for stream, value in lag.items():
            self.metrics.consumer_lag.labels(stream).set(value)

    async def _probe_broker(self) -> None:
        try:
            await self._probe_broker_once()
        except Exception:  # noqa: BLE001 - see _housekeeping
            log.exception("broker probe failed")

    async def _probe_broker_once(self) -> None:
        up = await asyncio.get_running_loop().run_in_executor(None, self._broker_reachable)
        self.metrics.broker_up.set(1 if up else 0)
        if self._broker_was_up and not up:
            self.metrics.broker_disconnects.inc()
            log.warning("broker unreachable")
        elif up and not self._broker_was_up:
            log.info("broker reachable")
        self._broker_was_up = up
        self.metrics.ready.set(1 if self.is_ready() else 0)

    def _broker_reachable(self) -> bool:
        url = self.settings.broker_url.removeprefix("kafka://")
        for server in url.split(";"):
            host, _, port = server.partition(":")
            try:
                with socket.create_connection((host, int(port or 9092)), timeout=1.0):
                    return True
            except OSError:
                continue
        return False

    def is_ready(self) -> bool:
        app = self.app
        try:
            recovered = app.tables.recovery.completed.is_set()
            assigned = bool(app.consumer.assignment())
        except Exception:  # noqa: BLE001 - consumer not started yet
            return False
        return (bool(self.metrics.broker_up._value.get()) and recovered and assigned and not app.rebalancing
                and all(ready.is_set() for ready in self._shared_ready.values()))

    # -- web ------------------------------------------------------------------
    async def _start_web(self) -> None:
        server = web.Application()
        server.router.add_get("/metrics", self._metrics_view)
        server.router.add_get("/health", self._health_view)
        server.router.add_get("/ready", self._ready_view)
        self._web_runner = web.AppRunner(server, access_log=None)
        await self._web_runner.setup()
        site = web.TCPSite(self._web_runner, self.settings.web_host, self.settings.web_port)
        await site.start()
        log.info("serving /metrics, /health and /ready on http://%s:%s", self.settings.web_host, self.settings.web_port)

    async def _metrics_view(self, request: web.Request) -> web.Response:
        self.metrics.ready.set(1 if self.is_ready() else 0)
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health_view(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _ready_view(self, request: web.Request) -> web.Response:
        ready = self.is_ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)


def run_worker(settings: Settings) -> None:
    """Run the worker until SIGINT/SIGTERM (blocks)."""
    from faust.worker import Worker as FaustWorker

    worker = Worker(settings)
    frozen = gc_tuning.tune()  # after every import and the detectors' tables: see app/gc_tuning.py
    log.info("garbage collector: %d start-up objects frozen", frozen)
    FaustWorker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
