"""What Faust skips during a rebalance must not become committable (nothing lost)."""

from __future__ import annotations

import asyncio

import pytest
from faust.types.tuples import ConsumerMessage

from app.settings import Settings
from app.worker import Worker


@pytest.fixture()
def worker(tmp_path):
    settings = Settings().replace(broker_url="kafka://127.0.0.1:1", data_dir=tmp_path / "data", store="memory://",
                                  app_id="t-acks", partitions=2)
    w = Worker(settings)
    w.app.topics._acking_topics.add(settings.topic_results)  # as when the agents subscribe
    w.app.consumer_generation_id = 7
    w.app.flow_control.resume()
    return w


def message(topic: str, offset: int, generation: int) -> ConsumerMessage:
    m = ConsumerMessage(topic, 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation)
    m.refcount = 1
    return m


def committable(worker) -> list[int]:
    return sorted(worker.app.consumer._acked[next(iter(worker.app.consumer._acked))]) \
        if worker.app.consumer._acked else []


def test_a_processed_message_becomes_committable(worker):
    topic = worker.settings.topic_results
    for offset in (0, 1):
        assert message(topic, offset, 7).ack(worker.app.consumer)
    assert committable(worker) == [0, 1]


def test_a_message_of_an_older_generation_only_is_released(worker):
    topic = worker.settings.topic_results
    old = message(topic, 0, 6)  # fetched before the rebalance
    assert not old.ack(worker.app.consumer)
    assert old.acked and committable(worker) == []
    assert message(topic, 0, 7).ack(worker.app.consumer)  # fetched again after it, and processed
    assert committable(worker) == [0]


def test_a_message_acked_while_flow_is_suspended_only_is_released(worker):
    topic = worker.settings.topic_results
    worker.app.flow_control.suspend()  # partitions being revoked
    m = message(topic, 3, 7)
    m.ack(worker.app.consumer)
    assert m.acked and committable(worker) == []
    assert m not in worker.app.consumer._unacked_messages  # nothing waits for it: a rebalance is not held up


def hand_over(consumer, m: ConsumerMessage) -> None:
    """The fetch loop's hand-over to the streams (none subscribes here, so Faust's part fails after ours)."""
    with pytest.raises(KeyError):
        asyncio.run(consumer.callback(m))


def test_a_read_offset_from_before_a_rebalance_does_not_overwrite_the_seek(worker):
    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    consumer._read_offset.update({tp: 650})  # the rebalance's seek (Faust's perform_seek)
    hand_over(consumer, message(worker.settings.topic_results, 700, 6))  # fetched before it
    consumer._read_offset[tp] = 700  # what the fetch loop does next
    assert consumer._read_offset[tp] == 650, "offsets 650-699 would be dropped when fetched again"
    hand_over(consumer, message(worker.settings.topic_results, 650, 7))
    consumer._read_offset[tp] = 650
    consumer._read_offset[tp] = 651
    assert consumer._read_offset[tp] == 651


def test_the_seek_of_a_refetch_stands_until_its_message_is_handed_over(worker):
    consumer = worker.app.consumer
    topic = worker.settings.topic_results
    tp = message(topic, 0, 7).tp
    consumer._read_offset[tp] = 300  # the fetch loop was at 300 ...
    worker._seeking[tp] = (39, 7)  # ... when the partition was sought back to 39
    consumer._read_offset[tp] = 301  # a message fetched before the seek, handed over after it
    assert consumer._read_offset[tp] == 300, "39-300 would be dropped as already read when fetched again"
    consumer._read_offset[tp] = 39
    assert tp not in worker._seeking
    consumer._read_offset[tp] = 40
    assert consumer._read_offset[tp] == 40


def test_a_seek_from_before_a_rebalance_is_forgotten(worker):
    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    worker._seeking[tp] = (39, 6)  # sought in the previous generation; the rebalance sought it again since
    consumer._read_offset[tp] = 120
    assert consumer._read_offset[tp] == 120 and tp not in worker._seeking


@pytest.fixture()
def stuck(worker, monkeypatch):
    """A partition of ``worker`` whose commits stop at 155 while 162-163 were processed; returns
    (partition, seeks made, log checks made, clock)."""
    import app.worker as worker_module

    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    seeks, checks = [], []

    async def seek(partition, offset):
        seeks.append((partition, offset))

    async def scan_log(partition, offset, upto):
        checks.append((partition, offset, upto))
        return False  # the log holds the message: not a gap

    monkeypatch.setattr(consumer, "seek", seek)
    monkeypatch.setattr(worker, "_scan_log", scan_log)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    consumer._committed_offset[tp] = 155
    consumer._acked[tp] = [162, 163]  # 155-161 never handed over, so never acked
    consumer._acked_index[tp] = {162, 163}
    clock = [1000.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    return tp, seeks, checks, clock


def test_a_partition_stuck_behind_unprocessed_offsets_is_fetched_again(worker, stuck):
    import app.worker as worker_module

    tp, seeks, checks, clock = stuck
    asyncio.run(worker._refetch_holes())
    clock[0] += worker_module.HOLE_SECONDS - 1
    asyncio.run(worker._refetch_holes())
    assert seeks == []  # a moment's hole is normal: commits come every few seconds
    clock[0] += 2
    asyncio.run(worker._refetch_holes())
    assert checks == [(tp, 155, 163)], "the log is read before the partition is fetched again"
    assert seeks == [(tp, 155)]
    assert worker._seeking[tp] == (155, 7)
    assert worker.metrics.registry.get_sample_value("pantau_partition_refetches_total", {"stream": "results"}) == 1


def test_a_partition_still_stuck_is_fetched_again(worker, stuck):
    import app.worker as worker_module

    tp, seeks, checks, clock = stuck
    asyncio.run(worker._refetch_holes())
    for _ in range(3):
        clock[0] += worker_module.HOLE_SECONDS + 1
        asyncio.run(worker._refetch_holes())
    assert seeks == [(tp, 155)] * 3  # the refetch itself can be lost to a rebalance: never given up
    assert worker.app.consumer._new_offset(tp) is None, "the log holds 155: no commit may pass it"


def test_a_partition_committing_as_it_goes_is_left_alone(worker, monkeypatch):
    import app.worker as worker_module

    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    seeks = []

    async def seek(partition, offset):
        seeks.append((partition, offset))

    monkeypatch.setattr(consumer, "seek", seek)
    clock = [1000.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    for committed in range(100, 160, 5):
        consumer._committed_offset[tp] = committed
        consumer._acked[tp] = [committed, committed + 1, committed + 2]
        asyncio.run(worker._refetch_holes())
        clock[0] += 30
    assert seeks == []


def test_a_commit_never_passes_an_unprocessed_offset(worker):
    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    consumer._committed_offset[tp] = 155  # the next offset to process
    consumer._acked[tp] = [156, 157]  # 155 was never processed
    consumer._acked_index[tp] = {156, 157}
    assert consumer._new_offset(tp) is None
    consumer._acked[tp] = [155, 156, 157]
    consumer._acked_index[tp] = {155, 156, 157}
    assert consumer._new_offset(tp) == 158


def test_offsets_taken_for_a_gap_are_fetched_again_before_a_commit_passes_them(worker):
    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    consumer._committed_offset[tp] = 143
    consumer._acked[tp] = [148, 149]  # the fetch loop jumped from 142 to 148 ...
    consumer._acked_index[tp] = {148, 149}
    consumer._gap[tp].addi(143, 148)  # ... and took 143-147 for a gap
    assert consumer._new_offset(tp) is None
    worker._log_gaps[tp] = {143: 148}  # read: the log holds no message there
    assert consumer._new_offset(tp) == 150


def test_commits_pass_every_gap_the_log_was_read_to_have(worker):
    # Transaction markers leave a gap after every transaction of an upstream producer.
    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    consumer._committed_offset[tp] = 10
    worker._log_gaps[tp] = {10: 11, 14: 15, 18: 19}
    consumer._acked[tp] = [11, 12, 13, 15, 16, 17, 19, 21]
    consumer._acked_index[tp] = set(consumer._acked[tp])
    assert consumer._new_offset(tp) == 20  # 20 was never processed


def test_offsets_processed_again_below_the_committed_one_do_not_hold_commits(worker):
    consumer = worker.app.consumer
    tp = message(worker.settings.topic_results, 0, 7).tp
    consumer._committed_offset[tp] = 200
    consumer._acked[tp] = [150, 151, 200, 201]  # 150-151 processed again after a refetch
    consumer._acked_index[tp] = {150, 151, 200, 201}
    assert consumer._new_offset(tp) == 202
    assert consumer._acked[tp] == [200, 201]  # kept until the commit is through
    consumer._committed_offset[tp] = 202
    assert consumer._new_offset(tp) is None
    assert consumer._acked[tp] == [] and consumer._acked_index[tp] == set()


def test_a_run_whose_commit_is_slow_is_not_a_hole(worker, stuck):
    # The commit waits for the producer to drain, which took 13 s under load in
    # one run; the offsets it commits must not look unprocessed meanwhile.
    import app.worker as worker_module

    tp, seeks, checks, clock = stuck
    consumer = worker.app.consumer
    consumer._committed_offset[tp] = None  # a new group: nothing committed yet
    consumer._acked[tp] = [0, 1, 2, 3]
    consumer._acked_index[tp] = {0, 1, 2, 3}
    assert consumer._new_offset(tp) == 4  # the commit starts ...
    for offset in (4, 5):  # ... events go on being processed ...
        assert message(worker.settings.topic_results, offset, 7).ack(consumer)
    for _ in range(3):  # ... and the commit takes long
        asyncio.run(worker._refetch_holes())
        clock[0] += worker_module.HOLE_SECONDS + 1
    assert seeks == [] and checks == []
    consumer._committed_offset[tp] = 4  # through
    assert consumer._new_offset(tp) == 6 and consumer._acked[tp] == [4, 5]


def test_an_event_processed_again_is_counted_and_dead_lettered_once(worker, monkeypatch):
    # A refetch processes the events after a hole again: their alerts are
    # republished with the same ids, but the volume series must not count them twice.
    consumer = worker.app.consumer
    topic = worker.settings.topic_results
    tp = message(topic, 0, 7).tp
    assert [worker._first_time("count", message(topic, o, 7)) for o in (155, 156, 157)] == [True] * 3
    assert [worker._first_time("count", message(topic, o, 7)) for o in (155, 156, 157, 158)] == [False] * 3 + [True]
    assert worker._first_time("dead_letter", message(topic, 155, 7))  # each purpose on its own
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    consumer._committed_offset[tp] = 157
    worker._forget_committed()
    assert worker._done_once["count"][tp] == {157, 158}  # a seek never goes below the committed offset
    monkeypatch.setattr(consumer, "assignment", lambda: set())
    worker._forget_committed()
    assert tp not in worker._done_once["count"]  # revoked: its next owner counts from the committed offset
