"""Small aiokafka helpers for the tools around the worker: topics, produce, consume.

The worker itself goes through Faust; these serve ``pantau demo``, ``tail``,
``produce``, the tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from collections.abc import AsyncIterator, Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.settings import Settings

log = logging.getLogger(__name__)


def bootstrap(settings: Settings) -> str:
    return settings.broker_url.removeprefix("kafka://").replace(";", ",")


def client_options(settings: Settings) -> dict[str, Any]:
    """Security options for aiokafka clients, from the same settings the worker uses."""
    opts: dict[str, Any] = {"bootstrap_servers": bootstrap(settings), "security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
        opts["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        opts.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return opts


def broker_error(settings: Settings, exc: BaseException) -> str:
    """One line for a person: the tools could not use the broker, and which settings to check.

    aiokafka reports a refused SASL login or a TLS/plaintext mismatch only as
    "Unable to bootstrap", so the protocol in use decides the hint.
    """
    protocol = settings.security_protocol
    if protocol.startswith("SASL"):
        hint = (f"SASL authentication failed or was refused (mechanism {settings.sasl_mechanism}, user "
                f"{settings.sasl_username!r}), or the broker is unreachable: check PANTAU_SASL_MECHANISM, "
                "PANTAU_SASL_USERNAME, PANTAU_SASL_PASSWORD and PANTAU_BROKER_URL")
    elif protocol == "SSL":
        hint = "TLS connection failed or the broker is unreachable: check PANTAU_SSL_CAFILE and PANTAU_BROKER_URL"
    else:
        hint = ("the broker is unreachable, or it expects TLS or SASL: check PANTAU_BROKER_URL and "
                "PANTAU_SECURITY_PROTOCOL")
    return f"pantau: cannot use the broker at {bootstrap(settings)} ({protocol}): {hint} ({type(exc).__name__}: {exc})"


def all_topics(settings: Settings) -> list[str]:
    from app.pipeline import ROUTE_KINDS
    from app.worker import SHARED_KINDS, internal_topic_name, shared_topic_name

    return [
        settings.topic_registrations, settings.topic_results, settings.topic_feedback,
        settings.topic_alerts, settings.topic_dead_letters,
    ] + [internal_topic_name(settings, k) for k in ROUTE_KINDS] + [shared_topic_name(settings, k) for k in SHARED_KINDS]


def topic_layout(settings: Settings) -> dict[str, tuple[int, dict[str, str] | None]]:
    """Partitions and settings, by topic name, of the topics that differ from the rest."""
    from app.worker import SHARED_KINDS, TOPIC_CONFIGS, TOPIC_PARTITIONS, shared_topic_name

    return {shared_topic_name(settings, k): (TOPIC_PARTITIONS.get(k, settings.partitions), TOPIC_CONFIGS[k])
            for k in SHARED_KINDS}


async def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> None:
    """Create Pantau's topics with the configured partitions, if missing.

    Topics auto-created by a broker get its default partition count, and a
    table whose changelog disagrees with its source topic cannot start.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or all_topics(settings)) if t not in existing]
        if wanted:
            try:
                layout = topic_layout(settings)
                await admin.create_topics(
                    [NewTopic(t, layout.get(t, (settings.partitions, None))[0], settings.replication_factor,
                              topic_configs=layout.get(t, (0, None))[1]) for t in wanted]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def start_producer(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5, **extra)
    await producer.start()
    return producer


class Pacer:
    """Holds a sender to ``rate`` messages a second on average, from the moment it is made.

    ``await pacer.sent(n)`` after the n-th send sleeps until ``n / rate``
    seconds have passed; only every ``every``-th send is checked, so a fast
    loop is not put to sleep per message. A ``rate`` of 0 or None never waits.
    """

    def __init__(self, rate: float | None, every: int = 1) -> None:
        self.rate = rate
        self.every = every
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()

    async def sent(self, n: int) -> None:
        if self.rate and n % self.every == 0:
            ahead = n / self.rate - (self._loop.time() - self._started)
            if ahead > 0:
                await asyncio.sleep(ahead)


def partition_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer outside any group, not started, for reading assigned partitions from any offset
    (earliest when the offset is gone)."""
    return AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest")


async def consume(
    settings: Settings, topic: str, *, from_beginning: bool = True, group_id: str | None = None
) -> AsyncIterator[Any]:
    """Yield records of ``topic`` forever (the caller breaks out)."""
    consumer = AIOKafkaConsumer(
        topic, **client_options(settings), group_id=group_id, fetch_max_wait_ms=settings.fetch_max_wait_ms,
        auto_offset_reset="earliest" if from_beginning else "latest", enable_auto_commit=group_id is not None,
    )
    await consumer.start()
    try:
        async for record in consumer:
            yield record
    finally:
        await consumer.stop()


# -- partitioning -----------------------------------------------------------------
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's and aiokafka's default partitioner hash).

    The same values as ``aiokafka.partitioner.murmur2`` (a test compares them),
    about twice as fast: the 4-byte words are unpacked in one call.

    >>> murmur2(b"21"), murmur2(b"foobar")
    (3321034988, 3504634814)
    """
    length = len(data)
    h = 0x9747B28C ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & ~3
    extra = length & 3
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@lru_cache(maxsize=1 << 16)
def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (UTF-8) among ``partitions``.

    Cached: routed keys (blocking keys, households, regencies) repeat.
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


#: Fewer keys of one length than this go through :func:`key_partition` one by one: numpy's
#: cost per call is a few microseconds, a Python murmur2 of a 35-byte key about as much.
_VECTOR_MIN_KEYS = 16


def key_partitions(keys: Sequence[str], partitions: int) -> list[int]:
    """:func:`key_partition` of every key, murmur2 computed for all keys of one length at once.

    The worker routes about nine keys per registration, nearly all of them
    distinct keyed hashes, so the cache of :func:`key_partition` rarely helps
    and murmur2 in Python was about a twentieth of the worker's CPU. numpy's
    uint32 arithmetic wraps modulo 2**32 as the Java client's int does.

    >>> keys = ["dp:" + "ab" * 16, "3273", "dp:" + "cd" * 16] + [f"h{i:03d}" for i in range(20)]
    >>> key_partitions(keys, 4) == [key_partition(k, 4) for k in keys]
    True
    """
    encoded = [k.encode() for k in keys]
    out = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for i, data in enumerate(encoded):
        by_length.setdefault(len(data), []).append(i)
    m = np.uint32(_M)
    for length, where in by_length.items():
        if len(where) < _VECTOR_MIN_KEYS:
            for i in where:
                out[i] = key_partition(keys[i], partitions)
            continue
        data = np.frombuffer(b"".join(encoded[i] for i in where), dtype=np.uint8).reshape(len(where), length)
        h = np.full(len(where), (0x9747B28C ^ length) & _MASK, dtype=np.uint32)
        words = length // 4
        if words:
            blocks = np.ascontiguousarray(data[:, : 4 * words]).view("<u4")
            for j in range(words):
                k = blocks[:, j] * m
                k ^= k >> np.uint32(24)
                k *= m
                h = (h * m) ^ k
        tail, extra = 4 * words, length & 3
        if extra >= 3:
            h ^= data[:, tail + 2].astype(np.uint32) << np.uint32(16)
        if extra >= 2:
            h ^= data[:, tail + 1].astype(np.uint32) << np.uint32(8)
        if extra >= 1:
            h = (h ^ data[:, tail].astype(np.uint32)) * m
        h ^= h >> np.uint32(13)
        h *= m
        h ^= h >> np.uint32(15)
        for i, partition in zip(where, ((h & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).tolist()):
            out[i] = partition
    return out


# -- producer batching ---------------------------------------------------------------
def linger_per_broker() -> bool:
    """Make aiokafka's ``linger_ms`` wait per broker, as the Java client does, not per partition.

    aiokafka 0.14 lingers each partition's batch on its own clock and sends
    only the batches whose linger has run out, so a worker writing to a few
    dozen partitions (changelogs, routed events) still sent about two produce
    requests per input event. Here, once any batch is due, every partition's
    waiting batch goes in the same request; nothing is sent later than
    before, so delivery and ordering are unchanged. Installed once per
    process; returns False (and changes nothing) if aiokafka's internals are
    not the expected ones.
    """
    from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch

    drain = MessageAccumulator.drain_by_nodes
    if getattr(drain, "_pantau_per_broker", False):
        return True
    if not (hasattr(MessageBatch, "remaining_linger") and "_linger_time" in MessageBatch.__init__.__code__.co_names
            and "_batches" in MessageAccumulator.__init__.__code__.co_names):
        log.warning("aiokafka internals changed: producer linger stays per partition")
        return False

    def drain_by_nodes(self: Any, ignore_nodes: Any, muted_partitions: Any = frozenset()) -> Any:
        heads = [batches[0] for tp, batches in self._batches.items() if batches and tp not in muted_partitions]
        if any(batch.remaining_linger() is None for batch in heads):
            for batch in heads:
                batch._linger_time = 0.0
        return drain(self, ignore_nodes, muted_partitions)

    drain_by_nodes._pantau_per_broker = True  # type: ignore[attr-defined]
    MessageAccumulator.drain_by_nodes = drain_by_nodes
    return True


# -- consumer fetch wait ---------------------------------------------------------------
def faust_fetch_max_wait(ms: int) -> bool:
    """Make Faust's worker consumer wait at most ``ms`` for a fetch (Faust 0.15 fixes 1,500 ms).

    The embedded broker answers a fetch only after up to about half of its
    ``fetch_max_wait_ms``, data or not (measured: 1,500 ms gave a plain
    consumer p50/max 390/770 ms behind the producer, 100 ms gave 34/69 ms),
    so at Faust's value every hop of an event (input, routed topic) waited
    ~0.4 s and the worker received its input in bursts of a few seconds'
    worth. On Kafka a fetch returns as soon as there is data, and this only
    sets how often an idle consumer polls. Installed once per process (the
    newest ``ms`` wins); returns False (and changes nothing) if Faust's
    driver is not the expected one.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = getattr(driver, "AIOKafkaConsumerThread", None)
    create = getattr(thread, "_create_worker_consumer", None)
    if create is None:
        log.warning("Faust's aiokafka driver changed: its consumer keeps its own fetch wait")
        return False
    original = getattr(create, "_pantau_original", create)

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        if hasattr(consumer, "_fetch_max_wait_ms"):  # read by aiokafka when start() builds its fetcher
            consumer._fetch_max_wait_ms = ms
        return consumer

    _create_worker_consumer._pantau_original = original  # type: ignore[attr-defined]
    thread._create_worker_consumer = _create_worker_consumer
    return True
