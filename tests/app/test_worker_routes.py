"""Routed events are packed across input events and always sent before offsets are committed."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from app.pipeline import Route
from app.settings import Settings
from app.worker import Worker


@pytest.fixture()
def worker(tmp_path):
    settings = Settings().replace(broker_url="kafka://127.0.0.1:1", data_dir=tmp_path / "data", store="memory://",
                                  app_id="t-routes", partitions=4, max_event_bytes=2048)
    w = Worker(settings)
    sent: list[tuple[str, int, list]] = []
    for kind in ("person_block", "household"):
        async def send(*, key, value, partition, kind=kind):
            sent.append((kind, partition, orjson.loads(value)))
        w.topics[kind].send = send  # type: ignore[method-assign]
    w.sent = sent  # type: ignore[attr-defined]
    return w


def _event(i: int, size: int = 10) -> dict:
    return {"event_id": f"e{i}", "pad": "x" * size}


def test_routes_of_many_events_go_out_packed_in_order(worker):
    keys = [f"block-{i % 7}" for i in range(40)]
    for i, key in enumerate(keys):
        worker._buffer_routes([Route("person_block", key, _event(i)), Route("household", f"h{i % 3}", _event(i))])
    assert worker.sent == []  # nothing sent before a flush
    asyncio.run(worker._flush_routes())
    got = [(kind, key, item["event_id"]) for kind, _p, items in worker.sent for key, item in items]
    assert sorted(got) == sorted([("person_block", k, f"e{i}") for i, k in enumerate(keys)]
                                 + [("household", f"h{i % 3}", f"e{i}") for i in range(40)])
    for kind, partition, items in worker.sent:
        assert all(worker._partition_of(key) == partition for key, _ in items)
        ids = [int(item["event_id"][1:]) for _, item in items]
        assert ids == sorted(ids)  # one destination's events in the order they were routed
    assert len(worker.sent) <= 8  # at most one message per (kind, partition)
    assert worker._routes == {}


def test_a_routed_item_is_written_as_the_json_of_key_and_event(worker):
    # One registration's routes share its event, encoded once; the bytes must be what
    # orjson.dumps([key, event]) gives, removals (another dict) included.
    event = {"event_id": "e1", "voter": {"name": "Siti \"Ani\" Aminah", "nik": "3273014501900001"}, "n": 1.5}
    removal = {**event, "action": "remove"}
    routes = [Route("person_block", f"dp:{i}", event) for i in range(3)] + [
        Route("person_block", "dp:old", removal), Route("household", 'h"1', event)]
    worker._buffer_routes(routes)
    assert [item for _, _, item in worker._unpacked] == [orjson.dumps([r.key, r.event]) for r in routes]


def test_a_message_stays_under_the_size_limit(worker):
    for i in range(30):
        worker._buffer_routes([Route("household", "same-household", _event(i, size=300))])
    asyncio.run(worker._flush_routes())
    assert len(worker.sent) > 1
    assert all(len(orjson.dumps(items)) <= 2 * 2048 for _, _, items in worker.sent)
    assert [item["event_id"] for _, _, items in worker.sent for _, item in items] == [f"e{i}" for i in range(30)]


def test_a_failed_send_keeps_the_unsent_routes_for_the_next_flush(worker):
    for i in range(6):
        worker._buffer_routes([Route("person_block", f"k{i}", _event(i))])
    calls = {"n": 0}
    real = worker.topics["person_block"].send

    async def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("broker gone")
        await real(**kwargs)

    worker.topics["person_block"].send = flaky
    with pytest.raises(RuntimeError):
        asyncio.run(worker._flush_routes())
    worker.topics["person_block"].send = real
    for i in range(6, 12):  # routed after the failure: they go out behind the unsent ones
        worker._buffer_routes([Route("person_block", f"k{i - 6}", _event(i))])
    asyncio.run(worker._flush_routes())
    ids = sorted(int(item["event_id"][1:]) for _, _, items in worker.sent for _, item in items)
    assert ids == list(range(12))
    by_partition: dict[int, list[int]] = {}
    for _, partition, items in worker.sent:
        by_partition.setdefault(partition, []).extend(int(item["event_id"][1:]) for _, item in items)
    assert all(got == sorted(got) for got in by_partition.values())


def test_the_producer_flush_before_a_commit_sends_buffered_routes_first(worker):
    order: list[str] = []
    worker._buffer_routes([Route("household", "h", _event(1))])

    async def flush_routes():
        order.append("routes")
        worker._routes.clear()

    worker._flush_routes = flush_routes  # type: ignore[method-assign]
    producer = worker.app.producer

    async def run():
        # The hook wraps the producer's own flush, which Faust awaits before every offset commit.
        try:
            await producer.flush()
        except Exception:  # noqa: BLE001 - the producer is not started here; only the order matters
            order.append("producer")

    asyncio.run(run())
    assert order[0] == "routes"


def test_the_flush_before_a_commit_waits_for_what_was_buffered_not_for_an_empty_buffer(worker):
    # Under load the agents refill Faust's producer buffer as fast as it drains:
    # waiting for it to be empty held one commit for 13 s.
    worker._flush_routes = lambda: asyncio.sleep(0)  # type: ignore[method-assign]
    producer = worker.app.producer

    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        before = [loop.create_future() for _ in range(2)]  # messages of the offsets being committed
        for fut in before:
            producer.buffer.pending.put_nowait(fut)
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0.05)
        after = loop.create_future()
        producer.buffer.pending.put_nowait(after)  # produced by events processed since
        states = [f"waiting: {flush.done()}"]
        for fut in before:
            fut.set_result(None)  # delivered
        await asyncio.wait_for(flush, timeout=5)
        states.append(f"after delivery: {flush.done()}, later message pending: {not after.done()}")
        return states

    assert asyncio.run(run()) == ["waiting: False", "after delivery: True, later message pending: True"]
