"""app.write_behind: counters kept in memory between commits, events held until they are written."""

from __future__ import annotations

import asyncio
from itertools import count
from types import SimpleNamespace

import faust
import pytest

from app.write_behind import WriteBehind, WriteBehindTable

_offsets = count()


class Event:
    """What WriteBehind reads of a Faust event: its message's partition and topic partition, and ack()."""

    def __init__(self, partition: int, topic: str = "registrations", generation: int = 1) -> None:
        self.message = SimpleNamespace(partition=partition, tp=(topic, partition), offset=next(_offsets),
                                       generation_id=generation)
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class RecordingTable(dict):
    """A plain mapping that notes the Faust event current at each write (a table takes its partition from it)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, object, object]] = []

    def __setitem__(self, key, value) -> None:
        self.writes.append((key, value, faust.current_event()))
        super().__setitem__(key, value)


def test_writes_wait_in_memory_per_partition_and_reads_see_them():
    table, now = RecordingTable(), {"p": 0}
    wb = WriteBehindTable(table, partition=lambda: now["p"])
    table["national"] = {"n": 5}  # already in the table (its partition's view)
    wb["national"] = {"n": 6}
    assert wb["national"] == {"n": 6} and wb.get("national") == {"n": 6}
    assert table["national"] == {"n": 5}, "nothing written before the flush"
    now["p"] = 1  # another partition sees the table, not partition 0's values
    assert wb.get("national") == {"n": 5}
    assert wb.get("missing", "default") == "default"
    now["p"] = 0
    del wb["national"]
    assert "national" not in wb and wb.get("national") is None
    with pytest.raises(KeyError):
        wb["national"]
    assert "national" in table


def test_outside_an_event_reads_and_writes_go_to_the_table():
    table = RecordingTable()
    wb = WriteBehindTable(table, partition=lambda: None)
    wb["k"] = 1
    assert table == {"k": 1} and wb["k"] == 1 and list(wb) == ["k"] and len(wb) == 1


def test_flush_writes_each_key_once_as_of_a_held_event_of_its_partition_then_acks():
    table, now = RecordingTable(), {"p": 0}
    behind = WriteBehind()
    wb = behind.wrap(table, partition=lambda: now["p"])
    events = []
    for i, p in enumerate([0, 1, 0, 0, 1]):
        now["p"] = p
        wb["national"] = {"n": i}  # the counter every event changes
        wb[f"r:{p}"] = {"n": i}
        e = Event(p)
        assert behind.hold(e)
        events.append(e)
    assert not table.writes and behind.held_events == 5 and not any(e.acked for e in events)

    assert asyncio.run(behind.flush()) == 5
    assert all(e.acked for e in events) and behind.held_events == 0
    # Two keys per partition, each written once, with its last value, as of that partition's newest event.
    assert sorted((k, v["n"], w.message.partition) for k, v, w in table.writes) == [
        ("national", 3, 0), ("national", 4, 1), ("r:0", 3, 0), ("r:1", 4, 1)]
    assert {w for _, _, w in table.writes} == {events[3], events[4]}
    assert faust.current_event() is None, "the event context is reset after the writes"
    assert behind.written == 4 and not any(t.dirty for t in behind.tables)


class BatchWriter:
    """The part of app.changelog_batch.ChangelogBatchWriter that WriteBehind.flush uses, recording what it is given."""

    def __init__(self, handled) -> None:
        self.handled, self.writes, self.delivered_with = handled, [], None

    def handles(self, table) -> bool:
        return table is self.handled

    def write(self, table, partition, values) -> int:
        self.writes.append((partition, dict(values)))
        table.update(values)  # the store is written before anything is awaited
        return len(values)

    async def delivered(self, timeout: float) -> None:
        self.delivered_with = [e.acked for e in self.events]


def test_a_batched_flush_acks_only_after_the_changelog_is_delivered():
    batched, other, now = {}, RecordingTable(), {"p": 0}
    behind = WriteBehind()
    blocks, counters = behind.wrap(batched, partition=lambda: now["p"]), behind.wrap(other, partition=lambda: now["p"])
    writer = BatchWriter(batched)
    writer.events = []
    for i, p in enumerate([0, 1, 1]):
        now["p"] = p
        blocks[f"b:{i}"] = [i]
        counters["national"] = {"n": i}
        e = Event(p)
        assert behind.hold(e)
        writer.events.append(e)
    assert asyncio.run(behind.flush(writer=writer, timeout=1.0)) == 3
    assert writer.delivered_with == [False, False, False], "no event acked before its values were delivered"
    assert all(e.acked for e in writer.events)
    assert sorted(writer.writes) == [(0, {"b:0": [0]}), (1, {"b:1": [1], "b:2": [2]})]
    assert batched == {"b:0": [0], "b:1": [1], "b:2": [2]}
    # A table the writer does not handle goes through the table itself, inside a held event.
    assert sorted((k, v["n"], w.message.partition) for k, v, w in other.writes) == [("national", 0, 0), ("national", 2, 1)]
    assert behind.written == 5


def test_an_event_that_changed_nothing_is_acked_at_once_unless_earlier_ones_wait():
    behind = WriteBehind()
    wb = behind.wrap({}, partition=lambda: 0)
    quiet = Event(0)
    assert not behind.hold(quiet), "nothing waits: ack now"
    wb["national"] = 1
    first = Event(0)
    assert behind.hold(first)
    # A later event of the same topic partition waits too: acks stay in offset order.
    assert behind.hold(Event(0))
    assert not behind.hold(Event(1)), "another partition has nothing waiting"


def test_at_a_rebalance_values_are_dropped_and_events_released():
    table = RecordingTable()
    behind = WriteBehind()
    wb = behind.wrap(table, partition=lambda: 2)
    wb["national"] = {"n": 7}
    event = Event(2, generation=1)
    behind.hold(event)
    # Acking would not make the offset committable: whoever processes the event next counts it.
    assert asyncio.run(behind.flush(committable=lambda e: e.message.generation_id == 2)) == 1
    assert event.acked and not table.writes and behind.dropped == 1 and not wb.dirty


def test_the_worker_exports_how_many_events_wait_for_the_commit(tmp_path):
    from app.settings import Settings
    from app.worker import Worker

    settings = Settings().replace(broker_url="kafka://127.0.0.1:1", data_dir=tmp_path / "data", store="memory://",
                                  app_id="t-held", partitions=2)
    worker = Worker(settings)
    held = worker.write_behind["registrations"].held
    held["tp0"], held["tp1"] = [Event(0), Event(0)], [Event(1)]
    worker._export_write_behind()
    sample = worker.metrics.registry.get_sample_value
    assert sample("pantau_write_behind_held_events", {"agent": "registrations"}) == 3
    assert sample("pantau_write_behind_held_events", {"agent": "regency_tally"}) == 0
    held.clear()
    worker._export_write_behind()
    assert sample("pantau_write_behind_held_events", {"agent": "registrations"}) == 0
