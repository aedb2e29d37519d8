"""How the duplicate detectors scale: N voters indexed into RocksDB (rocksdict, as Faust uses).

Run: ``.venv/bin/python -m bench.duplicates_scale --voters 1000000 [--path /tmp/pantau-dups] [--seed 3]``

Synthetic voters (name pools from Faker ``id_ID``, Zipf-like name popularity,
birth dates over 1950-2007 with default-date heaping, 514 regencies) go
through :class:`NikDuplicateDetector` and :class:`PersonDuplicateDetector`
exactly as in the worker, with both indexes in one RocksDB through an
orjson-encoding ``MutableMapping`` (the bytes Faust's JSON-serialised table
would write). 1 % of records are re-registrations under another NIK so that
the scorer does real work. Prints load rate, p50/p99 latency per record
(both detectors), resident memory, and disk per voter after a final flush and
compaction.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import time
from collections.abc import MutableMapping

import orjson
from faker import Faker
from rocksdict import Options, Rdict

from models.duplicate_nik import NikDuplicateDetector
from models.duplicate_person import PersonDuplicateDetector

SECRET = b"scale-secret"


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

    def __contains__(self, key):
        return self.db.get(key.encode()) is not None

    def __iter__(self):
        for k in self.db.keys():
            yield k.decode()

    def __len__(self):  # a full scan; only for small runs
        return sum(1 for _ in self.db.keys())


def voters(n: int, seed: int):
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


def du(path: str) -> int:
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", type=int, default=10_000_000)
    ap.add_argument("--path", default="/tmp/pantau-dups-scale")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--report-every", type=int, default=250_000)
    args = ap.parse_args(argv)

    shutil.rmtree(args.path, ignore_errors=True)
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(64 << 20)
    db = Rdict(args.path, options=opts)
    index = RocksMap(db)
    nik_det = NikDuplicateDetector(index, SECRET)
    per_det = PersonDuplicateDetector(index, SECRET)

    lat: list[float] = []
    findings = 0
    t0 = time.perf_counter()
    for i, ev in enumerate(voters(args.voters, args.seed), 1):
        t = time.perf_counter()
        findings += len(nik_det.process_one(ev)) + len(per_det.process_one(ev))
        lat.append(time.perf_counter() - t)
        if i % args.report_every == 0:
            el = time.perf_counter() - t0
            print(f"  {i:>11,d} voters  {i / el:8.0f}/s  elapsed {el:7.0f} s  findings {findings}", flush=True)
    elapsed = time.perf_counter() - t0
    db.flush()
    db.compact_range(None, None)
    db.close()
    size = du(args.path)
    lat.sort()
    n = len(lat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"voters {n:,d}; load {elapsed:.0f} s = {n / elapsed:.0f} records/s (one process, one core)")
    print(f"latency per record (both detectors): p50 {lat[n // 2] * 1e3:.2f} ms, p99 {lat[int(n * 0.99)] * 1e3:.2f} ms,"
          f" max {lat[-1] * 1e3:.1f} ms")
    print(f"findings {findings:,d}")
    print(f"disk {size / 1e6:.1f} MB after compaction = {size / n:.0f} B/voter")
    print(f"peak RSS {rss / 1e6:.0f} MB (includes the {per_det.sketch_width * per_det.sketch_depth * 4 / 1e6:.0f} MB"
          f" name sketch and the generator's own state)")
    if os.environ.get("KEEP_DB") != "1":
        shutil.rmtree(args.path, ignore_errors=True)


if __name__ == "__main__":
    main()
