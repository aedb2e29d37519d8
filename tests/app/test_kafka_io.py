"""Partitioning and producer batching helpers of app.kafka_io."""

from __future__ import annotations

import asyncio
import random

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.structs import TopicPartition

from app.kafka_io import key_partition, key_partitions, linger_per_broker, murmur2


def test_murmur2_matches_aiokafka():
    rnd = random.Random(7)
    for length in range(0, 90):
        for _ in range(15):
            data = bytes(rnd.randrange(256) for _ in range(length))
            assert murmur2(data) == aiokafka_murmur2(data)
    # Routed keys are text; the partition must be the one Kafka's default partitioner picks.
    for key in ("3273|siti|1990-01-05|P", "household|ab12", "3201", "ñame|ü"):
        assert key_partition(key, 4) == (aiokafka_murmur2(key.encode()) & 0x7FFFFFFF) % 4


def test_key_partitions_is_key_partition_for_every_key():
    # Keys of one length are hashed together (numpy), a few of a length one by one: both
    # must give the partition Kafka's default partitioner gives each key on its own.
    rnd = random.Random(11)
    keys = ["".join(rnd.choice("abcdef0123456789|:-ñ") for _ in range(length))
            for length in range(0, 72) for _ in range(rnd.choice([1, 5, 40]))]
    rnd.shuffle(keys)
    for partitions in (1, 4, 7, 96):
        assert key_partitions(keys, partitions) == [
            (aiokafka_murmur2(k.encode()) & 0x7FFFFFFF) % partitions for k in keys]
    assert key_partitions([], 4) == []


class _OneBroker:
    def leader_for_partition(self, tp):
        return 0


def test_linger_per_broker_sends_every_waiting_partition_once_one_is_due():
    from aiokafka.producer.message_accumulator import MessageAccumulator

    assert linger_per_broker()

    async def scenario():
        acc = MessageAccumulator(_OneBroker(), 16384, 0, 30, linger_ms=50)
        first, second = TopicPartition("a", 0), TopicPartition("b", 3)
        await acc.add_message(first, b"k", b"v", timeout=1)
        await asyncio.sleep(0.06)  # the first batch is due
        await acc.add_message(second, b"k", b"v", timeout=1)  # this one has just started lingering
        nodes, _ = acc.drain_by_nodes(ignore_nodes=set())
        return set(nodes.get(0, {}))

    assert asyncio.run(scenario()) == {TopicPartition("a", 0), TopicPartition("b", 3)}


def test_linger_still_waits_when_nothing_is_due():
    from aiokafka.producer.message_accumulator import MessageAccumulator

    linger_per_broker()

    async def scenario():
        acc = MessageAccumulator(_OneBroker(), 16384, 0, 30, linger_ms=200)
        await acc.add_message(TopicPartition("a", 0), b"k", b"v", timeout=1)
        return acc.drain_by_nodes(ignore_nodes=set())[0]

    assert not asyncio.run(scenario())


def test_the_worker_consumer_fetch_wait_is_the_setting(tmp_path):
    """Faust builds its consumer with fetch_max_wait_ms=1500; the worker's is the setting's."""
    from app.settings import Settings
    from app.worker import faust_app

    settings = Settings().replace(broker_url="kafka://127.0.0.1:9", data_dir=tmp_path, store="memory://",
                                  fetch_max_wait_ms=120)

    async def fetch_wait():
        app = faust_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(fetch_wait()) == 120


def test_pacer_holds_senders_to_the_rate():
    from app.kafka_io import Pacer

    async def twenty_sends() -> float:
        loop = asyncio.get_running_loop()
        pacer = Pacer(100, every=5)
        start = loop.time()
        for n in range(1, 21):
            await pacer.sent(n)
        return loop.time() - start

    # 20 sends at 100/s take at least 0.2 s (a lower bound: a busy machine only adds)
    assert asyncio.run(twenty_sends()) >= 0.2 - 1e-3


def test_pacer_without_a_rate_never_sleeps(monkeypatch):
    from app.kafka_io import Pacer

    async def no_sleep(_seconds):
        raise AssertionError("slept")

    async def sends() -> None:
        pacer = Pacer(0)
        monkeypatch.setattr(asyncio, "sleep", no_sleep)
        for n in range(1, 100):
            await pacer.sent(n)

    asyncio.run(sends())
