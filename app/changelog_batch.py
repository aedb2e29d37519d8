"""A partition's held table values written as one RocksDB write batch and a few changelog record batches.

A Faust table write is a store put plus a changelog message of its own: a
``FutureMessage`` in Faust's buffer, the value encoded again when it is
published, a future per record in aiokafka and, on the broker's
acknowledgement, a callback that stores the changelog offset. That is ~65 µs a
write, ~11 writes a registration (docs/performance.md, "Session 12"). The
write-behind tables (app/write_behind.py) write a partition's values once per
commit, all at once, so they can be written as Faust would, at a fraction of
the cost:

* each key and value is encoded once, with the table's own serializers, and
  the same bytes go to the store and to the changelog (Faust's recovery puts a
  changelog record's bytes into the store as they are);
* the store gets one ``WriteBatch`` per partition;
* the changelog gets aiokafka record batches of up to ``max_batch_bytes``,
  one future each, whose acknowledgement sets the store's changelog offset to
  the batch's last record.

:meth:`ChangelogBatchWriter.write` writes the store synchronously, so that a
read after it sees the values even while their changelog records are still
on their way; the caller awaits :meth:`ChangelogBatchWriter.delivered` before
it acks the events the values came from, so an input offset is committed only
after its values are in the changelog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import rocksdict
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.types import TP

from app.rocksdb_store import BoundedRocksDBStore
from app.write_behind import DELETED

__all__ = ["ChangelogBatchWriter"]


class ChangelogBatchWriter:
    """Writes held values of Faust tables on the bounded RocksDB store, batched, through the app's aiokafka producer.

    A held value :data:`app.write_behind.DELETED` is a changelog tombstone and a store delete.
    """

    def __init__(self, app: Any, max_batch_bytes: int) -> None:
        self.app = app
        self.max_batch_bytes = max_batch_bytes
        self._pending: list[tuple[BoundedRocksDBStore, str, int, BatchBuilder, int]] = []

    @staticmethod
    def handles(table: Any) -> bool:
        """Whether ``table`` is a Faust table on the bounded RocksDB store (else Faust's own path writes it)."""
        return isinstance(getattr(table, "data", None), BoundedRocksDBStore)

    def write(self, table: Any, partition: int, values: Mapping[Any, Any]) -> int:
        """Put ``values`` into ``table``'s store for ``partition`` now, and batch their changelog records."""
        store: BoundedRocksDBStore = table.data
        topic = table.changelog_topic.get_topic_name()
        batch = rocksdict.WriteBatch(raw_mode=True)
        builder, records = self._builder(), 0
        key_index = store._key_index  # noqa: SLF001 - Faust's key -> partition cache, as its own _set keeps it
        last = len(values) - 1
        for i, (key, value) in enumerate(values.items()):
            key_bytes = store._encode_key(key)  # noqa: SLF001
            if value is DELETED:
                value_bytes = None
                batch.delete(key_bytes)
                key_index.pop(key_bytes, None)
            else:
                value_bytes = store._encode_value(value)  # noqa: SLF001
                batch.put(key_bytes, value_bytes)
                key_index[key_bytes] = partition
            if i == last and records:
                # The last record in a batch of its own: Tansu reports a partition's end
                # offset as the first offset of its last batch + 1 (docs/broker.md, bug 1),
                # and a recovering worker reads the changelog only up to there.
                self._pending.append((store, topic, partition, builder, records))
                builder, records = self._builder(), 0
            if builder.append(timestamp=None, key=key_bytes, value=value_bytes) is None:
                self._pending.append((store, topic, partition, builder, records))
                builder, records = self._builder(), 0
                builder.append(timestamp=None, key=key_bytes, value=value_bytes)  # a first record always fits
            records += 1
        if records:
            self._pending.append((store, topic, partition, builder, records))
        store._db_for_partition(partition).write(batch)  # noqa: SLF001
        return len(values)

    async def delivered(self, timeout: float) -> None:
        """Send the batched changelog records and wait for the broker to acknowledge them all (raises if it did not)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        client = self.app.producer._producer  # noqa: SLF001 - Faust's aiokafka producer
        futures = []
        for store, topic, partition, builder, records in pending:
            builder.close()  # nothing else may be appended once it is queued
            future = await client.send_batch(builder, topic, partition=partition)
            future.add_done_callback(_persist_offset(store, TP(topic, partition), records))
            futures.append(future)
        await asyncio.wait_for(asyncio.gather(*futures), timeout=timeout)

    def _builder(self) -> BatchBuilder:
        client = self.app.producer._producer  # noqa: SLF001
        return BatchBuilder(self.max_batch_bytes, client._message_accumulator._compression_type)  # noqa: SLF001


def _persist_offset(store: BoundedRocksDBStore, tp: TP, records: int) -> Any:
    """On the batch's acknowledgement, the changelog offset of its last record, as Faust's own callback stores it."""

    def done(future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is None:
            store.set_persisted_offset(tp, future.result().offset + records - 1)

    return done
