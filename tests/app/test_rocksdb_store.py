"""The worker's RocksDB store: every table database shares one memory budget (real RocksDB, no mocks)."""

from __future__ import annotations

import os

from faust import stores

from app import rocksdb_store


def test_scheme_resolves_to_the_bounded_store():
    assert stores.by_url(f"{rocksdb_store.SCHEME}://") is rocksdb_store.BoundedRocksDBStore


def test_memtables_of_many_databases_stay_within_the_shared_budget(tmp_path):
    budget = 8 << 20
    rocksdb_store.configure(memtable_bytes=budget, block_cache_bytes=4 << 20)
    options = rocksdb_store.BoundedRocksDBOptions()
    dbs = [options.open(tmp_path / f"table-{i}.db") for i in range(6)]
    value = os.urandom(200)
    written, peak = 0, 0
    for k in range(300_000):  # ~60 MB: six unshared databases would hold 6 x 8 MB of memtables
        dbs[k % 6][k.to_bytes(8, "big")] = value
        written += 208
        if k % 5_000 == 0:
            peak = max(peak, rocksdb_store.budget_usage()[0])
    assert written > 7 * budget
    # The budget is a soft limit: a memtable is flushed in the background once the total
    # is over it. Here the peak is ~15 MB on an idle machine and reached 16.02 MB on a
    # loaded one (a fresh-clone run, session 9); without a shared budget it is ~54 MB.
    assert peak <= 3 * budget, f"memtables reached {peak / 2**20:.1f} MB with a budget of 8 MB"
    assert all(dbs[k % 6][k.to_bytes(8, "big")] == value for k in range(0, 300_000, 997)), "nothing lost by flushing"
    for db in dbs:
        db.close()


def _table_properties(db) -> dict[str, str]:
    text = db.property_value("rocksdb.aggregated-table-properties")
    return dict(part.strip().split("=", 1) for part in text.split(";") if "=" in part)


def test_a_reopened_database_keeps_the_shared_cache_and_the_bloom_filter(tmp_path):
    # A worker restarted on its state reopens every table database. rocksdict
    # would reopen them with the options of their OPTIONS file: a cache of
    # their own outside the budget, and no bloom filter in the files they write.
    rocksdb_store.configure(memtable_bytes=8 << 20, block_cache_bytes=4 << 20)
    options = rocksdb_store.BoundedRocksDBOptions()
    path = tmp_path / "table.db"
    options.open(path).close()  # created, nothing written
    db = options.open(path)
    for k in range(2000):
        db[k.to_bytes(8, "big")] = b"v"
    db.flush()  # one table file, written under the reopened options
    props = _table_properties(db)
    assert db.property_int_value("rocksdb.block-cache-capacity") == 4 << 20
    assert int(props["# entries for filter"]) == 2000
    assert int(props["filter block size"]) > 2000 * rocksdb_store.BLOOM_BITS_PER_KEY // 8 * 0.9
    assert db[(7).to_bytes(8, "big")] == b"v"
    db.close()


def _wal_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix == ".log")


def test_writes_skip_the_wal_and_a_stopped_store_keeps_them(tmp_path):
    # The changelog is the table's log: RocksDB's own WAL is off. Faust's stop
    # drops its databases without closing them (Store.stop: _dbs.clear() and
    # gc.collect()), and RocksDB then flushes what no log holds.
    import gc

    rocksdb_store.configure(memtable_bytes=8 << 20, block_cache_bytes=4 << 20)
    options = rocksdb_store.BoundedRocksDBOptions()
    path = tmp_path / "table.db"
    db = options.open(path)
    value = os.urandom(500)
    for k in range(1000):
        db[k.to_bytes(8, "big")] = value
    assert _wal_bytes(path) == 0, "writes went to the write-ahead log"
    del db
    gc.collect()
    db = options.open(path)
    assert all(db[k.to_bytes(8, "big")] == value for k in range(1000))
    db.close()


def _store(tmp_path):
    import faust

    rocksdb_store.configure(memtable_bytes=8 << 20, block_cache_bytes=4 << 20)
    app = faust.App("offsets-test", store=f"{rocksdb_store.SCHEME}://", datadir=str(tmp_path))
    table = app.Table("blocks", partitions=2)
    return table.data, table.changelog_topic.get_topic_name()


def test_the_changelog_offset_is_written_once_an_interval_and_on_revoke_and_stop(tmp_path):
    # Faust sets the offset on every changelog acknowledgement. An offset on
    # disk older than the newest only makes a restart read more changelog;
    # one that is newer than what the database holds would lose values.
    import asyncio

    from faust.types import TP

    store, topic = _store(tmp_path)
    assert isinstance(store, rocksdb_store.BoundedRocksDBStore)
    tp0, tp1 = TP(topic, 0), TP(topic, 1)

    def on_disk(partition):
        raw = store._db_for_partition(partition).get(store.offset_key)  # noqa: SLF001
        return None if raw is None else int(raw)

    store.set_persisted_offset(tp0, 5)
    assert on_disk(0) == 5, "the first offset is written at once"
    for offset in range(6, 40):
        store.set_persisted_offset(tp0, offset)
    assert store.persisted_offset(tp0) == 39, "the store answers with the newest offset"
    assert on_disk(0) == 5, "offsets within the interval wait in memory"

    store.offset_write_seconds = 0.0
    store.set_persisted_offset(tp0, 40)
    assert on_disk(0) == 40, "once the interval has passed the next offset is written"
    store.offset_write_seconds = 60.0

    store.set_persisted_offset(tp0, 41)
    store.set_persisted_offset(tp1, 7)
    store.set_persisted_offset(tp1, 8)
    db1 = store._db_for_partition(1)  # noqa: SLF001 - revoking drops it from the store
    assert on_disk(0) == 40 and int(db1.get(store.offset_key)) == 7
    store.revoke_partitions(store.table, {tp1})
    assert int(db1.get(store.offset_key)) == 8, "a revoked partition's offset is written before it goes"
    assert on_disk(0) == 40, "only the revoked partition's"

    db0 = store._db_for_partition(0)  # noqa: SLF001 - stopping drops it from the store
    asyncio.run(store.stop())
    assert int(db0.get(store.offset_key)) == 41, "a stop writes every offset kept in memory"
