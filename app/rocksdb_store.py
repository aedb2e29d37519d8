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
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

SCHEME = "pantau-rocksdb"
#: largest single memtable; the shared budget decides when they are flushed
WRITE_BUFFER_BYTES = 8 << 20


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
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(_Budget.block_cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class BoundedRocksDBStore(faust_rocksdb.Store):
    """:class:`faust.stores.rocksdb.Store` whose databases share one memory budget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the bounded store needs rocksdict (python-rocksdb has no write buffer manager)")
        self.rocksdb_options = BoundedRocksDBOptions(**self.options, use_rocksdict=True)


STORES.aliases.setdefault(SCHEME, f"{__name__}:BoundedRocksDBStore")
