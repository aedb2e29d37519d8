"""Faust's RocksDB table store under one memory budget for the whole worker.

Faust opens one RocksDB database per table and partition (13 tables x 4
partitions = 52 here) and gives each its own 3 x 64 MB of memtables and a 2 GB
block cache. Memtables fill with every write and are only flushed when full,
so a worker's RSS climbs with what it has written (the soak showed ~26 MB a
minute at 75 events/s) towards gigabytes. RocksDB's answer for many databases
in one process is a shared ``WriteBufferManager`` (flushes the largest
memtable once the total passes the limit) and a shared block cache; this
store gives every database the same two objects.

The store is registered as ``pantau-rocksdb://``; :func:`configure` sets the
budget before the app opens its first table (``app.worker.faust_app`` does).

Databases are opened with :func:`open_rdict`, never with a bare ``Rdict(path,
options)``: rocksdict (0.3.29), reopening an existing database without
``column_families``, takes the column family's options from the database's
OPTIONS file, where pointer options cannot be written. A worker restarted on
its state then ran with an 8 MB block cache per database (52 of them, outside
the budget) and no bloom filter, so a read looked into every level-0 file
(docs/reliability.md, "After a restart, too").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

SCHEME = "pantau-rocksdb"
#: largest single memtable; the shared budget decides when they are flushed
WRITE_BUFFER_BYTES = 8 << 20
#: bloom filter bits per key (a full filter): RocksDB's usual 10, about 1 % false positives.
#: Faust's 3 let about a fifth of the reads of absent keys (new blocks, new NIKs) through to the files.
BLOOM_BITS_PER_KEY = 10


class _Budget:
    write_buffers: rocksdict.WriteBufferManager | None = None
    block_cache: rocksdict.Cache | None = None


def configure(memtable_bytes: int, block_cache_bytes: int) -> None:
    """Set the worker-wide memory for memtables and for the block cache (once per process)."""
    _Budget.write_buffers = rocksdict.WriteBufferManager(memtable_bytes, False)
    _Budget.block_cache = rocksdict.Cache(block_cache_bytes)


def budget_usage() -> tuple[int, int]:
    """Bytes in use now: (memtables, block cache)."""
    if _Budget.write_buffers is None or _Budget.block_cache is None:
        return 0, 0
    return _Budget.write_buffers.get_usage(), _Budget.block_cache.get_usage()


class BoundedRocksDBOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options, with the process-wide write buffer manager and block cache."""

    def as_options(self) -> rocksdict.Options:
        if _Budget.write_buffers is None or _Budget.block_cache is None:
            raise RuntimeError("app.rocksdb_store.configure() must run before a table is opened")
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(min(self.write_buffer_size, WRITE_BUFFER_BYTES))
        options.set_max_write_buffer_number(2)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(_Budget.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        table.set_block_cache(_Budget.block_cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        """Faust's ``open`` (rocksdict branch), through :func:`open_rdict`."""
        access = rocksdict.AccessType.read_write() if self.ttl is None else rocksdict.AccessType.with_ttl(self.ttl)
        db = open_rdict(str(path), self.as_options(), access)
        db.set_read_options(rocksdict.ReadOptions())
        return db


def open_rdict(path: str, options: rocksdict.Options,
               access_type: rocksdict.AccessType | None = None) -> rocksdict.Rdict:
    """Open or reopen the database at ``path`` with exactly ``options``, writing without a WAL.

    The options are given for the default column family too: without that,
    rocksdict reopens an existing database with the column family options read
    back from its OPTIONS file, which has no block cache or filter policy to give.

    Writes skip RocksDB's write-ahead log (:func:`write_options`).
    """
    db = rocksdict.Rdict(path, options=options, column_families={"default": options},
                         access_type=access_type or rocksdict.AccessType.read_write())
    db.set_write_options(write_options())
    return db


def write_options() -> rocksdict.WriteOptions:
    """Writes without RocksDB's write-ahead log, as Kafka Streams' state stores do.

    A table's changelog topic is its log. Faust stores the changelog offset a
    database holds (``set_persisted_offset``) in that database, after the
    values written before it; without a WAL a crash loses the writes since
    the last memtable flush, offsets and values alike, in order, and the
    worker reads the changelog again from the offset that survived. The WAL
    cost a ``write()`` per put and about half the CPU of a 7 kB block's
    (docs/performance.md, "Session 12").
    """
    options = rocksdict.WriteOptions()
    options.disable_wal = True
    return options


class BoundedRocksDBStore(faust_rocksdb.Store):
    """:class:`faust.stores.rocksdb.Store` whose databases share one memory budget,
    and which writes a partition's changelog offset at most once per :attr:`offset_write_seconds`.

    Faust calls :meth:`set_persisted_offset` for every changelog message the
    broker acknowledges, a RocksDB put each: ~11 a registration, about a tenth
    of the worker's input rate (docs/performance.md, "Session 13"). The offset
    only says from where a restarted worker reads the changelog again, so an
    older one on disk costs a longer read, never a value: the offsets in
    between are kept in memory, and written when the interval has passed, when
    a partition is revoked and when the store stops.
    """

    #: the longest a partition's acknowledged changelog offset waits in memory before it is
    #: written (while writes continue); a crash makes a restart read that much more changelog
    offset_write_seconds = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the bounded store needs rocksdict (python-rocksdb has no write buffer manager)")
        self.rocksdb_options = BoundedRocksDBOptions(**self.options, use_rocksdict=True)
        self._unwritten_offsets: dict[Any, int] = {}  # changelog partition -> newest acknowledged offset not written
        self._offset_written_at: dict[Any, float] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        now = time.monotonic()
        if now - self._offset_written_at.get(tp, -self.offset_write_seconds) < self.offset_write_seconds:
            self._unwritten_offsets[tp] = offset
            return
        self._unwritten_offsets.pop(tp, None)
        self._offset_written_at[tp] = now
        super().set_persisted_offset(tp, offset)

    def persisted_offset(self, tp: Any) -> int | None:
        unwritten = self._unwritten_offsets.get(tp)
        return unwritten if unwritten is not None else super().persisted_offset(tp)

    def write_offsets(self, tps: Any = None) -> int:
        """Write the offsets kept in memory (of the changelog partitions ``tps``, or all); how many."""
        waiting = [tp for tp in self._unwritten_offsets if tps is None or tp in tps]
        for tp in waiting:
            self._offset_written_at[tp] = time.monotonic()
            super().set_persisted_offset(tp, self._unwritten_offsets.pop(tp))
        return len(waiting)

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        self.write_offsets(tps)
        super().revoke_partitions(table, tps)

    async def stop(self) -> None:
        self.write_offsets()
        await super().stop()


STORES.aliases.setdefault(SCHEME, f"{__name__}:BoundedRocksDBStore")
