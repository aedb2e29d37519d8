"""Tables written once per offset commit instead of once per event.

The eligibility and birth-date heaping detectors keep national and regency
counters that every registration changes: four Faust table writes an event,
each a changelog message with its own future and a RocksDB write. Keeping
those values in memory and writing each changed key once per commit made the
worker ~1.6 times faster on the bench's mixed stream (docs/performance.md,
session 11). The regency detectors' state (village and district peers, the
regency's digit window of up to 1,000 TPS) is rewritten by every tally of a
regency in the same way, and is kept the same way.

At-least-once is kept by holding acks, not by trusting memory: an event
whose counters are only in memory is not acked, so its offset cannot be
committed. Just before Faust commits (``Consumer.commit``, wrapped by the
worker: its commit timer, ``broker_commit_every`` and the wait for streams to
finish at a rebalance or a stop), :meth:`WriteBehind.flush` writes the
changed values to the tables, in the context of a held event of their
partition so that they land in that partition's store and changelog, and
then acks the held events; the producer flush before the commit delivers the
changelog messages first. A crash loses the values in memory together with
the acks: the events are processed again from the committed offset.

During a rebalance (Faust's flow control suspended) the partitions may be
about to move, and an ack then only releases a message without making its
offset committable (``Worker._keep_rebalances_lossless``). Writing the
values would have them counted again by whoever processes those events
next, so they are dropped and the held events released instead: the table
holds exactly the events of the committed offsets.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from faust import current_event
from faust.streams import _current_event  # private: the partition a table write goes to comes from it

__all__ = ["DELETED", "WriteBehind", "WriteBehindTable"]


DELETED = object()  #: what a held value is when its key was deleted


def _partition() -> int | None:
    event = current_event()
    return None if event is None else event.message.partition


class WriteBehindTable(MutableMapping):
    """A Faust table whose writes inside an event wait in memory, per partition, for :meth:`WriteBehind.flush`.

    Reads see those values first. Outside an event (no partition to keep them
    under) reads and writes go straight to the table.
    """

    def __init__(self, table: MutableMapping[str, Any], partition: Callable[[], int | None] = _partition) -> None:
        self.table = table
        self._partition = partition
        self.dirty: dict[int, dict[str, Any]] = {}

    def _held(self) -> dict[str, Any] | None:
        """The values waiting for the current event's partition (None outside an event)."""
        p = self._partition()
        return None if p is None else self.dirty.get(p)

    def __getitem__(self, key: str) -> Any:
        values = self._held()
        if values is not None and key in values:
            value = values[key]
            if value is DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        values = self._held()
        if values is not None and key in values:
            value = values[key]
            return default if value is DELETED else value
        return self.table.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        p = self._partition()
        if p is None:
            self.table[key] = value
        else:
            self.dirty.setdefault(p, {})[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        p = self._partition()
        if p is None:
            del self.table[key]
        else:
            self.dirty.setdefault(p, {})[key] = DELETED

    def __contains__(self, key: object) -> bool:
        values = self._held()
        if values is not None and key in values:
            return values[key] is not DELETED
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        values = self._held() or {}
        for key in self.table:
            if values.get(key, None) is not DELETED:
                yield key
        for key, value in values.items():
            if value is not DELETED and key not in self.table:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


class WriteBehind:
    """The write-behind tables of one worker, and the events held until their values are written."""

    def __init__(self) -> None:
        self.tables: list[WriteBehindTable] = []
        self.held: dict[Any, list[Any]] = {}  # topic partition -> events processed, not acked
        self.written = 0  # values written to the tables
        self.dropped = 0  # values dropped at a rebalance (their events are processed again)

    def wrap(self, table: MutableMapping[str, Any], **kw: Any) -> WriteBehindTable:
        wrapped = WriteBehindTable(table, **kw)
        self.tables.append(wrapped)
        return wrapped

    def hold(self, event: Any) -> bool:
        """Keep ``event`` unacked if values of its partition wait in memory (or earlier events of its
        topic partition are held: acks stay in offset order). True if held."""
        tp = event.message.tp
        held = self.held.get(tp)
        if held is None:
            p = event.message.partition
            if not any(p in t.dirty for t in self.tables):
                return False
            held = self.held[tp] = []
        held.append(event)
        return True

    @property
    def held_events(self) -> int:
        return sum(len(events) for events in self.held.values())

    async def flush(self, committable: Callable[[Any], bool] = lambda event: True,
                    writer: Any = None, timeout: float = 60.0) -> int:
        """Write the held values and ack the held events; how many events were acked.

        ``committable(event)`` says whether acking the partition's newest held
        event would make its offset committable; where it would not (a
        rebalance), the partition's values are dropped instead of written.

        The tables ``writer`` handles (app/changelog_batch.py) are written
        through it, the others through the table, inside a held event of the
        partition. Every store is written before the first await, so that the
        agents, running on meanwhile, read the values from the stores; the
        events are acked once the broker has acknowledged every changelog
        record the writer sent (within ``timeout`` seconds, or this raises).
        """
        held, writes = self._take(committable)
        for table, event, values in writes:
            if writer is not None and writer.handles(table.table):
                self.written += writer.write(table.table, event.message.partition, values)
            else:
                self.written += _write_in_context(table.table, event, values)
        if writer is not None:
            await writer.delivered(timeout)
        return self._ack(held)

    def _take(self, committable: Callable[[Any], bool]) -> tuple[dict[Any, list[Any]], list[tuple[Any, Any, dict]]]:
        """The held events, and the values to write: (table, newest held event of the partition, values)."""
        held, self.held = self.held, {}
        by_partition: dict[int, Any] = {}
        for events in held.values():
            by_partition[events[-1].message.partition] = events[-1]
        writes = []
        for table in self.tables:
            for p in list(table.dirty):
                event = by_partition.get(p)
                values = table.dirty.pop(p)
                if event is None or not committable(event):
                    # No held event cannot happen (hold() follows every event that writes);
                    # without one there is no partition to write to, nor an offset it covers.
                    self.dropped += len(values)
                    continue
                writes.append((table, event, values))
        return held, writes

    @staticmethod
    def _ack(held: dict[Any, list[Any]]) -> int:
        acked = 0
        for events in held.values():
            for event in events:
                event.ack()
            acked += len(events)
        return acked


def _write_in_context(table: MutableMapping[str, Any], event: Any, values: dict[str, Any]) -> int:
    """Write ``values`` to the table as if inside ``event`` (a Faust table write takes its store and changelog partition from it)."""
    token = _current_event.set(weakref.ref(event))
    try:
        for key, value in values.items():
            if value is DELETED:
                table.pop(key, None)
            else:
                table[key] = value
    finally:
        _current_event.reset(token)
    return len(values)
