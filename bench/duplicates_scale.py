"""How the duplicate detectors scale: N voters indexed in RocksDB (rocksdict, as the worker uses).

Run::

    .venv/bin/python -m bench.duplicates_scale --voters 1000000 --bulk [--probes 20000] [--path /tmp/pantau-scale]
    .venv/bin/python -m bench.duplicates_scale --voters 300000            # record by record, as before

Synthetic voters (name pools from Faker ``id_ID``, Zipf-like name popularity,
birth dates over 1950-2007 with default-date heaping, 514 regencies; 1 % are
re-registrations under another NIK) fill the three stores the two duplicate
detectors use in the worker: ``nik_index`` (:class:`NikDuplicateDetector`),
``person_keys`` (the pipeline's blocking keys per NIK) and ``person_blocks``
(:class:`PersonDuplicateDetector`), each its own RocksDB opened with the
worker's options (``app.rocksdb_store``: bloom filters, one 64 MB block cache
and one 64 MB memtable budget), values written as orjson (the bytes a
JSON-serialised Faust table stores).

Two ways to fill them:

* record by record (default): every background voter goes through the
  worker's call path (below) and its latency is recorded; ~1 h per million
  voters on this machine, because every record is also scored;
* ``--bulk``: the same state written directly. Pass 1 runs each voter
  through the detectors' own ``compact`` / ``blocking_keys`` / fingerprint
  code and the name sketch, and appends one line per store entry to bucket
  files (256 per store, by the first two hex digits of the key's hash, in
  arrival order); pass 2 replays each bucket's operations in order (append,
  keep the newest ``max_candidates`` / ``max_registrations``; a same-NIK
  registration whose blocking keys changed takes the earlier record out of
  the blocks it left, as the pipeline routes it) and writes the final values
  in sorted key order, WAL off, auto-compaction off, then compacts.
  ``tests/bench/test_duplicates_scale.py`` checks that both give the same
  bytes in all three stores and the same sketch.

Then the next ``--probes`` records of the same stream (with another 1 % of
same-NIK re-registrations) are scored in a fresh process through exactly the
worker's call path: ``NikDuplicateDetector.process_one``, the pipeline's
``_person_routes`` (reads and writes ``person_keys``) and
``PersonDuplicateDetector.match_in_block`` for each route (in the worker those
are messages on the repartition topic, possibly on another worker; here they
run back to back, so the time is the CPU a record costs, Kafka not counted).
Prints load time, p50/p99/max per probe, resident memory of the probing
process, and disk per voter after compaction. The whole state is read once
before the probes (``--no-warm``: not), so that they find it in the page
cache as a worker that has run a while does, not in whatever part of it the
load happened to leave there.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from operator import itemgetter
from types import SimpleNamespace

import numpy as np
import orjson
from faker import Faker
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

import models.duplicate_nik
import models.duplicate_person
from models.duplicate_nik import NikDuplicateDetector
from models.duplicate_nik import _fingerprint as nik_fingerprint
from models.duplicate_person import PersonDuplicateDetector
from models.privacy import keyed_hash

SECRET = b"scale-secret"
STORES = ("nik_index", "person_keys", "person_blocks")
MEMTABLE_MB = 64     # app.settings: rocksdb_memtable_mb
BLOCK_CACHE_MB = 64  # app.settings: rocksdb_block_cache_mb


class RocksMap(MutableMapping):
    """str -> JSON value over a raw-mode Rdict (what a Faust RocksDB table stores)."""

    def __init__(self, db: Rdict):
        self.db = db

    def __getitem__(self, key):
        raw = self.db.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def get(self, key, default=None):
        raw = self.db.get(key.encode())
        return default if raw is None else orjson.loads(raw)

    def __setitem__(self, key, value):
        self.db[key.encode()] = orjson.dumps(value)

    def __delitem__(self, key):
        del self.db[key.encode()]

    def pop(self, key, *default):
        raw = self.db.get(key.encode())
        if raw is None:
            if default:
                return default[0]
            raise KeyError(key)
        del self.db[key.encode()]
        return orjson.loads(raw)

    def __contains__(self, key):
        return self.db.get(key.encode()) is not None

    def __iter__(self):
        for k in self.db.keys():
            yield k.decode()

    def __len__(self):  # a full scan; only for small runs
        return sum(1 for _ in self.db.keys())


# -- the population ----------------------------------------------------------


def voters(n: int, seed: int, same_nik_from: int | None = None) -> Iterator[dict]:
    """``n`` registration events. From record ``same_nik_from`` on, 1 % more are a
    recent voter registered again under the same NIK (another TPS, half of them
    in another regency). Records before it are the same whatever ``same_nik_from``."""
    rng = random.Random(seed)
    fake = Faker("id_ID")
    fake.seed_instance(seed)
    male = sorted({fake.first_name_male() for _ in range(3000)})
    female = sorted({fake.first_name_female() for _ in range(3000)})
    last = sorted({fake.last_name() for _ in range(3000)})
    streets = [fake.street_name() for _ in range(2000)]
    regencies = [f"{p:02d}{r:02d}" for p in range(11, 95) for r in range(1, 8)][:514]
    serial: dict[str, int] = {}
    recent: list[dict] = []

    cum = {}
    for pool in (male, female, last):  # Zipf popularity (weight 1/rank): the top name ~12 %
        acc, c = 0.0, []
        for r in range(len(pool)):
            acc += 1.0 / (r + 1)
            c.append(acc)
        cum[id(pool)] = c

    def pick(pool):
        return rng.choices(pool, cum_weights=cum[id(pool)])[0]

    for i in range(n):
        if same_nik_from is not None and i >= same_nik_from and recent and rng.random() < 0.01:
            ev = orjson.loads(orjson.dumps(rng.choice(recent)))  # same NIK, same person, another TPS
            if rng.random() < 0.5:
                reg = rng.choice(regencies)
                district = f"{reg}{rng.randint(1, 20):02d}"
                ev["region"] = {"province": reg[:2], "regency": reg, "district": district,
                                "village": f"{district}{rng.randint(2001, 2020)}"}
            district = ev["region"]["district"]
            ev["tps"] = f"{district}{rng.randint(2001, 2020)}{rng.randint(1, 30):03d}"
            ev["event_id"] = f"S{i:09d}"
            yield ev
            continue
        if recent and rng.random() < 0.01:  # re-registration under another NIK
            ev = orjson.loads(orjson.dumps(rng.choice(recent)))
            v = ev["voter"]
            stem = v["nik"][:12]
            serial[stem] = serial.get(stem, 0) + 1
            v["nik"] = f"{stem}{serial[stem]:04d}"
            v["name"] = "H. " + v["name"] if rng.random() < 0.5 else v["name"].upper()
            ev["event_id"] = f"S{i:09d}"
            yield ev
            continue
        sex = rng.choice("LP")
        if sex == "L":
            name = ("Muhammad " if rng.random() < 0.2 else "") + pick(male)
        else:
            name = ("Siti " if rng.random() < 0.12 else "") + pick(female)
        if rng.random() < 0.6:
            name += " " + pick(last)
        y = rng.randint(1950, 2007)
        md = rng.choice(["01-01", "07-01", "12-31"]) if rng.random() < 0.08 else \
            f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        dob = f"{y}-{md}"
        reg = rng.choice(regencies)
        district = f"{reg}{rng.randint(1, 20):02d}"
        dd = int(dob[8:10]) + (40 if sex == "P" else 0)
        stem = f"{district}{dd:02d}{dob[5:7]}{dob[2:4]}"
        serial[stem] = serial.get(stem, 0) + 1
        ev = {"event_id": f"S{i:09d}", "occurred_at": "2026-01-05T10:00:00+07:00", "action": "add",
              "voter": {"nik": f"{stem}{serial[stem]:04d}", "nkk": f"{district}{rng.randint(0, 10**10 - 1):010d}",
                        "name": name, "birth_place": "Kota " + reg, "birth_date": dob, "sex": sex,
                        "marital_status": "S", "address": f"Jl. {rng.choice(streets)} No. {rng.randint(1, 200)}",
                        "rt": f"{rng.randint(1, 15):03d}", "rw": f"{rng.randint(1, 9):03d}", "disability": "0"},
              "region": {"province": reg[:2], "regency": reg, "district": district,
                         "village": f"{district}{rng.randint(2001, 2020)}"},
              "tps": f"{district}{rng.randint(2001, 2020)}{rng.randint(1, 30):03d}"}
        if len(recent) < 5000:
            recent.append(ev)
        else:
            recent[rng.randrange(5000)] = ev
        yield ev


# -- stores and the worker's call path ------------------------------------------


def worker_options() -> Options:
    """The worker's RocksDB options (``app.rocksdb_store``), under the default budget."""
    from app import rocksdb_store  # imports Faust; only the bench needs it

    if rocksdb_store._Budget.write_buffers is None:
        rocksdb_store.configure(MEMTABLE_MB << 20, BLOCK_CACHE_MB << 20)
    return rocksdb_store.BoundedRocksDBOptions(use_rocksdict=True).as_options()


def load_options() -> Options:
    """The worker's table format (its bloom filter; Faust's file size) for
    the bulk load, with a large memtable and no compaction until the end."""
    from faust.stores.rocksdb import RocksDBOptions
    from rocksdict import BlockBasedIndexType, BlockBasedOptions

    from app import rocksdb_store

    o = Options(raw_mode=True)
    o.create_if_missing(True)
    o.set_max_open_files(RocksDBOptions.max_open_files)
    o.set_target_file_size_base(RocksDBOptions.target_file_size_base)
    o.set_write_buffer_size(256 << 20)
    o.set_max_write_buffer_number(3)
    o.set_disable_auto_compactions(True)
    o.set_level_zero_slowdown_writes_trigger(1 << 30)
    o.set_level_zero_stop_writes_trigger(1 << 30)
    table = BlockBasedOptions()
    table.set_bloom_filter(rocksdb_store.BLOOM_BITS_PER_KEY, False)
    table.set_index_type(BlockBasedIndexType.binary_search())
    o.set_block_based_table_factory(table)
    return o


def open_stores(path: str, options: Options | None = None) -> dict[str, Rdict]:
    from app.rocksdb_store import open_rdict  # imports Faust; only the bench needs it

    os.makedirs(path, exist_ok=True)
    opts = options or worker_options()
    # open_rdict: a reopened store keeps these options (cache, bloom filter), as in the worker.
    return {name: open_rdict(os.path.join(path, name), opts) for name in STORES}


def close_stores(dbs: dict[str, Rdict], compact: bool = True) -> None:
    for db in dbs.values():
        db.flush()
        if compact:
            db.compact_range(None, None)
        db.close()


class WorkerPath:
    """The two duplicate detectors as the worker runs them on one registration
    (``app.pipeline.Pipeline``: stage 1 ``on_registration``, stage 2 ``on_route``)."""

    def __init__(self, dbs: dict[str, Rdict], secret: bytes = SECRET, **person_kw):
        from app.pipeline import Pipeline  # Faust-free

        self.nik_index = RocksMap(dbs["nik_index"])
        self.person_keys = RocksMap(dbs["person_keys"])
        self.person_blocks = RocksMap(dbs["person_blocks"])
        nik_kw = {k[4:]: person_kw.pop(k) for k in list(person_kw) if k.startswith("nik_")}
        self.nik = NikDuplicateDetector(self.nik_index, secret, **nik_kw)
        self.person = PersonDuplicateDetector(self.person_blocks, secret, **person_kw)
        stores = {"person_keys": self.person_keys}
        self._shim = SimpleNamespace(person_block=self.person, stores=stores.__getitem__,
                                     settings=SimpleNamespace(secret=secret))
        self._routes = Pipeline._person_routes

    def __call__(self, event: dict, cpu: dict[str, list[float]] | None = None) -> list:
        """Findings for one record; ``cpu`` collects this thread's CPU time per
        step: ``stage1`` (the NIK detector and the routes, in the NIK's
        partition) and ``block`` (each routed block's match, one route-agent
        step in the worker)."""
        c = time.thread_time()
        findings = list(self.nik.process_one(event))
        routes = self._routes(self._shim, event)
        if cpu is not None:
            cpu["stage1"].append(time.thread_time() - c)
        for route in routes:
            c = time.thread_time()
            findings += self.person.match_in_block(route.key, route.event)
            if cpu is not None:
                cpu["block"].append(time.thread_time() - c)
        return findings


def save_sketch(det: PersonDuplicateDetector, path: str) -> None:
    np.save(path, det.names.table)
    with open(path + ".total", "w") as f:
        f.write(str(det.names.total))


def load_sketch(det: PersonDuplicateDetector, path: str) -> None:
    det.names.table = np.load(path)
    with open(path + ".total") as f:
        det.names.total = int(f.read())


# -- the two ways to fill the stores --------------------------------------------


def load_record_by_record(events: Iterable[dict], path: str, report_every: int = 0, **kw) -> dict:
    """Every event through :class:`WorkerPath`; returns latencies, findings and time."""
    dbs = open_stores(path)
    wp = WorkerPath(dbs, **kw)
    lat: list[float] = []
    findings = 0
    t0 = time.perf_counter()
    for i, ev in enumerate(events, 1):
        t = time.perf_counter()
        findings += len(wp(ev))
        lat.append(time.perf_counter() - t)
        if report_every and i % report_every == 0:
            el = time.perf_counter() - t0
            print(f"  {i:>11,d} voters  {i / el:8.0f}/s  elapsed {el:7.0f} s  findings {findings}", flush=True)
    elapsed = time.perf_counter() - t0
    save_sketch(wp.person, os.path.join(path, "sketch.npy"))
    close_stores(dbs)
    return {"lat": lat, "findings": findings, "seconds": elapsed, "n": len(lat)}


def _bucket(key: str) -> str:
    """Two hex digits of the key's hash: buckets in this order hold keys in sorted order."""
    return key[3:5] if key.startswith("dp:") else key[:2]


class _Buckets:
    def __init__(self, root: str, store: str):
        self.dir = os.path.join(root, store)
        os.makedirs(self.dir, exist_ok=True)
        self.files: dict[str, object] = {}

    def write(self, key: str, line: bytes) -> None:
        b = _bucket(key)
        f = self.files.get(b)
        if f is None:
            f = self.files[b] = open(os.path.join(self.dir, b), "ab", buffering=1 << 16)
        f.write(line)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()

    def names(self) -> list[str]:
        return sorted(os.listdir(self.dir))

    def lines(self, name: str) -> list[list[bytes]]:
        with open(os.path.join(self.dir, name), "rb") as f:
            return [line[:-1].split(b"\t") for line in f]


def _clean(field: str) -> bytes:
    if "\t" in field or "\n" in field:
        raise ValueError(f"tab or newline in {field!r}")
    return field.encode()


class _FastKeyedHash:
    """:func:`models.privacy.keyed_hash` with a far larger memo, for the bulk load:
    the blocking keys other than ``r`` (name sound + date or year) repeat across
    millions of voters, while NIK hashes never do and stay out of the memo."""

    MEMO = 4_000_000

    def __init__(self):
        self.memo: dict[tuple[bytes, str], str] = {}

    def __call__(self, secret: bytes, value: str) -> str:
        if not (value[1:2] == "|" and value[:1] in "fslyn"):
            return keyed_hash(secret, value)
        h = self.memo.get((secret, value))
        if h is None:
            if len(self.memo) >= self.MEMO:
                self.memo.clear()
            h = self.memo[(secret, value)] = keyed_hash(secret, value)
        return h


@contextlib.contextmanager
def _fast_hashes(fast: _FastKeyedHash):
    saved = models.duplicate_person.keyed_hash, models.duplicate_nik.keyed_hash
    models.duplicate_person.keyed_hash = models.duplicate_nik.keyed_hash = fast
    try:
        yield
    finally:
        models.duplicate_person.keyed_hash, models.duplicate_nik.keyed_hash = saved


def bulk_load(events: Iterable[dict], path: str, report_every: int = 0, stage: str | None = None,
              secret: bytes = SECRET, **kw) -> dict:
    """The state :func:`load_record_by_record` would leave, written directly.

    Only ``add`` events with distinct event ids (what the generator yields);
    anything else raises. Returns the number of events and the seconds of each pass.
    """
    stage = stage or os.path.join(path, "_stage")
    shutil.rmtree(stage, ignore_errors=True)
    # The detectors are only used for their record code (no store is read).
    nik_kw = {k[4:]: kw.pop(k) for k in list(kw) if k.startswith("nik_")}
    nik = NikDuplicateDetector({}, secret, **nik_kw)
    person = PersonDuplicateDetector({}, secret, **kw)
    out = {s: _Buckets(stage, s) for s in STORES}
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    # The sketch only adds: counts per name (and name word) summed first give
    # the same table; names repeat, so this is far fewer hashes.
    sketch_items: Counter = Counter()
    fast = _FastKeyedHash()
    last_eid = b""
    with _fast_hashes(fast):
        for seq, ev in enumerate(events):
            if ev.get("action", "add") != "add":
                raise ValueError("bulk_load takes add events only")
            nikv = str(ev["voter"]["nik"])
            eid = _clean(ev["event_id"])
            if eid <= last_eid:  # so each add is new to its blocks and its NIK (no reprocessing)
                raise ValueError("bulk_load needs strictly increasing event ids")
            last_eid = eid
            sq = b"%012d" % seq
            nk = nik.nik_key(nikv)
            out["nik_index"].write(nk, b"\t".join((nk.encode(), sq, eid, orjson.dumps(nik_fingerprint(ev)))) + b"\n")
            pk = fast(secret, "nik:" + nikv)  # app.pipeline.Pipeline._person_routes
            rec = person.compact(ev)
            keys = person._blocking_keys(ev)  # blocking_keys without its one-record cache
            nh = rec[1].encode()
            out["person_keys"].write(pk, b"\t".join((pk.encode(), sq, nh, orjson.dumps(keys))) + b"\n")
            rb = orjson.dumps(rec)
            for k in keys:
                out["person_blocks"].write(k, b"\t".join((k.encode(), sq, b"a", eid, nh, rb)) + b"\n")
            if keys:  # match_in_block counts a record on its first block
                sketch_items[rec[3]] += 1
                for tok in set(rec[3].split()):
                    sketch_items["t:" + tok] += 1
            n += 1
            if report_every and n % report_every == 0:
                el = time.perf_counter() - t0
                print(f"  pass 1 {n:>11,d} voters  {n / el:8.0f}/s  elapsed {el:7.0f} s", flush=True)
    sketch = person.names
    for item, count in sketch_items.items():
        for row, col in enumerate(sketch._cols(item)):
            sketch.table[row, col] += count
        sketch.total += count
    del sketch_items
    for b in out.values():
        b.close()
    t1, c1 = time.perf_counter(), time.process_time()

    dbs = open_stores(path, load_options())
    wo = WriteOptions()
    wo.disable_wal = True

    def write_sorted(db: Rdict, items: Iterable[tuple[bytes, bytes]]) -> None:
        batch, size = WriteBatch(raw_mode=True), 0
        for k, v in items:
            batch.put(k, v)
            size += len(k) + len(v)
            if size > 8 << 20:
                db.write(batch, wo)
                batch, size = WriteBatch(raw_mode=True), 0
        if size:
            db.write(batch, wo)

    # person_keys: the pipeline stores a NIK's keys when they change, and
    # routes a removal to each block its record has left.
    removals = _Buckets(stage, "removals")
    for name in out["person_keys"].names():
        groups: dict[bytes, list] = {}
        for key, sq, nh, keys in out["person_keys"].lines(name):
            groups.setdefault(key, []).append((sq, nh, keys))

        def person_keys_values():
            for key in sorted(groups):
                entries = groups[key]
                if len(entries) == 1:
                    if entries[0][2] != b"[]":
                        yield key, entries[0][2]
                    continue
                previous: list = []
                for sq, nh, keys in entries:
                    current = orjson.loads(keys)
                    for k in previous:
                        if k not in current:
                            removals.write(k, b"\t".join((k.encode(), sq, b"r", b"", nh, b"")) + b"\n")
                    if current != previous:
                        previous = current
                if previous:
                    yield key, orjson.dumps(previous)

        write_sorted(dbs["person_keys"], person_keys_values())
    removals.close()

    cap_regs = nik.max_registrations
    for name in out["nik_index"].names():
        groups = {}
        for key, sq, eid, fp in out["nik_index"].lines(name):
            groups.setdefault(key, []).append((eid, fp))

        def nik_values():
            for key in sorted(groups):
                regs = groups[key][-cap_regs:]  # event ids are new: every add appends
                yield key, b'{"r":[' + b",".join(fp for _, fp in regs) + b'],"x":[]}'

        write_sorted(dbs["nik_index"], nik_values())

    cap = person.max_candidates
    for name in out["person_blocks"].names():
        ops = out["person_blocks"].lines(name)
        if os.path.exists(os.path.join(removals.dir, name)):
            ops += removals.lines(name)
        ops.sort(key=itemgetter(0, 1))  # by key, then stream order

        def block_values():
            for key, group in itertools.groupby(ops, key=itemgetter(0)):
                group = list(group)
                if any(op[2] == b"r" for op in group):
                    block: list = []
                    for op in group:
                        if op[2] == b"r":
                            block = [c for c in block if c[4] != op[4]]
                        else:
                            block = (block + [op])[-cap:]
                else:
                    block = group[-cap:]
                if block:
                    yield key, b"[" + b",".join(c[5] for c in block) + b"]"

        write_sorted(dbs["person_blocks"], block_values())
        del ops
    t2 = time.perf_counter()
    close_stores(dbs)
    t3 = time.perf_counter()
    save_sketch(person, os.path.join(path, "sketch.npy"))
    shutil.rmtree(stage, ignore_errors=True)
    return {"n": n, "pass1": t1 - t0, "pass2": t2 - t1, "compact": t3 - t2, "seconds": t3 - t0,
            "cpu_pass1": c1 - c0, "cpu": time.process_time() - c0}


# -- probing ---------------------------------------------------------------------


def rss_now(field: str = "VmRSS:") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def probe(path: str, probes_file: str, **kw) -> dict:
    """Score the probe records through the worker's call path on a filled store."""
    opts = worker_options()  # imports Faust first, so that it counts in the start figure
    rss0 = rss_now()
    dbs = open_stores(path, opts)
    wp = WorkerPath(dbs, **kw)
    load_sketch(wp.person, os.path.join(path, "sketch.npy"))
    with open(probes_file, "rb") as f:
        events = [orjson.loads(line) for line in f]
    rss1 = rss_now()
    lat: list[float] = []
    cpu: list[float] = []  # this thread's CPU: what the record costs, whatever else the machine runs
    steps: dict[str, list[float]] = {"stage1": [], "block": []}
    by_detector: dict[str, int] = {}
    slow: list[tuple[float, str]] = []
    for ev in events:
        c = time.thread_time()
        t = time.perf_counter()
        found = wp(ev, steps)
        dt = time.perf_counter() - t
        cpu.append(time.thread_time() - c)
        lat.append(dt)
        slow.append((dt, ev["event_id"]))
        for f in found:
            by_detector[f.detector] = by_detector.get(f.detector, 0) + 1
            if f.detector == "duplicate_person" and f.evidence["features"]["nkk_equal"] == 1.0:
                # The stream gives every new voter a random NKK and keeps it when
                # the voter registers again: a shared NKK is a true pair.
                by_detector["duplicate_person_true"] = by_detector.get("duplicate_person_true", 0) + 1
    close_stores(dbs, compact=False)
    slow.sort(reverse=True)
    return {"lat": lat, "cpu": cpu, "cpu_pct": pct(cpu), "by_detector": by_detector,
            "cpu_stage1_pct": pct(steps["stage1"]), "cpu_block_pct": pct(steps["block"]),
            "rss_start": rss0, "rss_open": rss1, "rss_end": rss_now(),
            "peak_rss": rss_now("VmHWM:"),
            "slowest": [e for _, e in slow[:20]]}


def pct(lat: list[float]) -> str:
    s = sorted(lat)
    n = len(s)
    return (f"p50 {s[n // 2] * 1e3:.2f} ms, p99 {s[min(int(n * 0.99), n - 1)] * 1e3:.2f} ms,"
            f" max {s[-1] * 1e3:.1f} ms, mean {sum(s) / n * 1e3:.2f} ms (n={n:,d})")


def warm_page_cache(path: str) -> tuple[int, float]:
    """Read every file of the state once: (bytes, seconds).

    A probe's reads cost what the page cache makes them cost. Right after a
    build, how much of the state is still cached depends on what the load
    wrote last, and at 10 M voters the same probes gave a p99 of 7.65 ms
    with the state partly cached and ~5 ms with all of it (session 11). A
    worker that has run a while, on a machine with room for its partitions'
    state, has it all cached; this is that case, whatever the load left.
    """
    t, total = time.perf_counter(), 0
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb", buffering=0) as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total, time.perf_counter() - t


def _warm(path: str, out) -> None:  # noqa: ANN001 - a text stream
    size, seconds = warm_page_cache(path)
    print(f"page cache: read {size / 1e9:.2f} GB of state in {seconds:.0f} s before probing", file=out, flush=True)


def du(path: str) -> int:
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", type=int, default=10_000_000)
    ap.add_argument("--probes", type=int, default=20_000)
    ap.add_argument("--bulk", action="store_true", help="write the background state directly (see module doc)")
    ap.add_argument("--path", default="/tmp/pantau-dups-scale")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--report-every", type=int, default=250_000)
    ap.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                    help="read the whole state once before probing (see warm_page_cache); --no-warm probes"
                         " the page cache as it is")
    ap.add_argument("--probe-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    probes_file = os.path.join(args.path, "probes.jsonl")

    if args.probe_only:
        if args.warm:
            _warm(args.path, sys.stderr)  # stdout is read by the parent
        r = probe(args.path, probes_file)
        with open(os.path.join(args.path, "probe_cpu.txt"), "w") as f:
            f.write("\n".join(f"{x:.6f}" for x in r["cpu"]))
        print(json.dumps({k: r[k] for k in r if k not in ("lat", "cpu")}))
        print("LAT " + " ".join(f"{x:.6f}" for x in r["lat"]))
        return

    shutil.rmtree(args.path, ignore_errors=True)
    os.makedirs(args.path)
    stream = voters(args.voters + args.probes, args.seed, same_nik_from=args.voters)
    probes: list[dict] = []

    def background():
        for i, ev in enumerate(stream):
            if i < args.voters:
                yield ev
            else:
                probes.append(ev)

    print(f"{'bulk' if args.bulk else 'record-by-record'} load of {args.voters:,d} voters into {args.path}", flush=True)
    if args.bulk:
        load = bulk_load(background(), args.path, args.report_every)
        print(f"load {load['seconds']:.0f} s (pass 1 {load['pass1']:.0f} s, pass 2 {load['pass2']:.0f} s,"
              f" flush + compaction {load['compact']:.0f} s) = {load['n'] / load['seconds']:.0f} voters/s;"
              f" CPU of this process {load['cpu']:.0f} s (pass 1 {load['cpu_pass1']:.0f} s, of which generating"
              f" the voters is part; RocksDB's threads included)", flush=True)
    else:
        load = load_record_by_record(background(), args.path, args.report_every)
        print(f"load {load['seconds']:.0f} s = {load['n'] / load['seconds']:.0f} records/s (one process);"
              f" latency while loading: {pct(load['lat'])}; findings {load['findings']:,d}", flush=True)
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(probes_file, "wb") as f:
        for ev in probes:
            f.write(orjson.dumps(ev) + b"\n")
    sizes = {s: du(os.path.join(args.path, s)) for s in STORES}
    size = sum(sizes.values())
    print(f"disk after compaction {size / 1e9:.2f} GB = {size / args.voters:.0f} B/voter ("
          + ", ".join(f"{s} {v / args.voters:.0f}" for s, v in sizes.items()) + ")", flush=True)
    print(f"peak RSS of the loading process {load_peak / 1e6:.0f} MB", flush=True)
    if os.environ.get("KEEP_DB") == "1":  # the state before the probes, to probe again (py-spy)
        from rocksdict import Checkpoint

        keep = args.path.rstrip("/") + "-before-probes"
        shutil.rmtree(keep, ignore_errors=True)
        os.makedirs(keep)
        dbs = open_stores(args.path)
        for name, db in dbs.items():
            Checkpoint(db).create_checkpoint(os.path.join(keep, name))
        close_stores(dbs, compact=False)
        for f in ("sketch.npy", "sketch.npy.total", "probes.jsonl"):
            shutil.copy(os.path.join(args.path, f), keep)

    # A fresh process scores the probes: its memory is what a worker holding this state needs.
    if args.warm:
        _warm(args.path, sys.stdout)
    out = subprocess.run([sys.executable, "-m", "bench.duplicates_scale", "--probe-only", "--no-warm",
                          "--path", args.path], capture_output=True, text=True, check=True).stdout.splitlines()
    r = json.loads(out[0])
    lat = [float(x) for x in out[1].split()[1:]]
    print(f"probes: the next {len(lat):,d} records of the stream, worker call path, both detectors: {pct(lat)}")
    print(f"the same, CPU time of the probing thread (RocksDB's background threads not counted): {r['cpu_pct']}")
    print(f"  of which stage 1 per record (NIK detector, blocking keys, person_keys): {r['cpu_stage1_pct']}")
    print(f"  and per routed block (one match_in_block, a route-agent step in the worker): {r['cpu_block_pct']}")
    print(f"findings on the probes: {r['by_detector']}")
    dp = r["by_detector"].get("duplicate_person", 0)
    if dp:
        print(f"duplicate_person precision on the probes: {r['by_detector'].get('duplicate_person_true', 0) / dp:.3f}"
              " (a true pair shares the NKK: the stream keeps a voter's NKK when they register again)")
    print(f"probing process RSS: {r['rss_start'] / 1e6:.0f} MB after imports, {r['rss_open'] / 1e6:.0f} MB with the"
          f" stores open, sketch and probes loaded, {r['rss_end'] / 1e6:.0f} MB at the end, peak {r['peak_rss'] / 1e6:.0f}"
          f" MB (RocksDB budget: {BLOCK_CACHE_MB} MB block cache + {MEMTABLE_MB} MB memtables)")
    print(f"slowest probes: {' '.join(r['slowest'][:10])}")
    with open(os.path.join(args.path, "probe_latencies.txt"), "w") as f:
        f.write("\n".join(f"{x:.6f}" for x in lat))
    if os.environ.get("KEEP_DB") != "1":
        shutil.rmtree(args.path, ignore_errors=True)


if __name__ == "__main__":
    main()
