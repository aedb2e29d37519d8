"""Recall at scale: later duplicates of voters registered long before, once the blocks are full.

Run, on a state kept by :mod:`bench.duplicates_scale` (``KEEP_DB=1`` keeps it
as ``<path>-before-probes``)::

    KEEP_DB=1 .venv/bin/python -m bench.duplicates_scale --voters 1000000 --bulk --path /tmp/scale-1m
    .venv/bin/python -m bench.duplicates_scale_recall --state /tmp/scale-1m-before-probes --voters 1000000

A block keeps only its newest ``max_candidates`` members (64), so at scale a
voter registered long ago may have left every block that a later duplicate of
them visits. The labelled population of :mod:`bench.duplicates_eval` is too
small to fill a block, so its recall says nothing about this.

Here ``--probes`` voters are drawn uniformly from the ``--voters`` indexed
(each one's registration regenerated from the same seeded stream) and each is
registered again under another NIK in one of the ways of ``KINDS``. Every
probe is scored twice through the worker's call path (both duplicate
detectors, the pipeline's blocking-key routes):

* at scale: on a copy of the state;
* control: on a fresh state that holds only the drawn originals (a few
  thousand records: no block fills), with the same name counts.

A probe counts as found when a ``duplicate_person`` finding names its
original's event. Recall per kind at scale and in the control; the
difference is what full blocks cost at this size.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections import Counter

import orjson

from bench.duplicates_scale import WorkerPath, close_stores, load_sketch, open_stores, voters

# How a voter registers again under another NIK, and which blocking keys
# (models/duplicate_person.py: r, f, s, l, m, d, b, n) survive it.
KINDS = {
    "exact": "the same fields (r f s l m d b n)",
    "title": "an honorific added, H. / Hj. (r, and the keys whose name sound it keeps)",
    "name_typo": "one letter of a name word (of 5 letters or more, if any) replaced (r, and the keys whose sound it keeps)",
    "moved": "another regency and address (f s l m d b n)",
    "dob_swap": "day and month exchanged (f s l n)",
    "dob_typo": "birth day one off (m n)",
    "moved_dob_typo": "another regency and the birth day one off (m n)",
    "dob_month": "birth month replaced by another (d n)",
    "dob_year": "birth year one off (b n)",
}


def duplicate_of(ev: dict, kind: str, k: int, rng: random.Random, regencies: list[str]) -> dict:
    """A registration of the same person as ``ev`` under another NIK, changed as ``kind`` says."""
    dup = orjson.loads(orjson.dumps(ev))
    v = dup["voter"]
    v["nik"] = v["nik"][:12] + f"{9000 + k % 1000:04d}"  # serials from the bench's stream stay far below 9000
    dup["event_id"] = f"R{k:09d}"
    if kind == "title":
        v["name"] = ("H. " if v["sex"] == "L" else "Hj. ") + v["name"]
    elif kind == "name_typo":
        words = v["name"].split()
        long = [i for i, w in enumerate(words) if len(w) >= 5]  # a typo in "Adi" makes another name
        i = rng.choice(long) if long else rng.randrange(len(words))
        w = words[i]
        j = rng.randrange(1, len(w)) if len(w) > 1 else 0
        words[i] = w[:j] + rng.choice([c for c in "aiueoknrst" if c != w[j].lower()]) + w[j + 1:]
        v["name"] = " ".join(words)
    if kind in ("moved", "moved_dob_typo"):
        reg = rng.choice([r for r in regencies if r != dup["region"]["regency"]])
        district = f"{reg}{rng.randint(1, 20):02d}"
        dup["region"] = {"province": reg[:2], "regency": reg, "district": district,
                         "village": f"{district}{rng.randint(2001, 2020)}"}
        dup["tps"] = f"{district}{rng.randint(2001, 2020)}{rng.randint(1, 30):03d}"
        v["address"] = f"Jl. Baru No. {rng.randint(1, 200)}"
    if kind == "dob_swap":
        d = v["birth_date"]
        v["birth_date"] = f"{d[:4]}-{d[8:10]}-{d[5:7]}"
    if kind in ("dob_typo", "moved_dob_typo"):
        d = v["birth_date"]
        day = int(d[8:10])
        v["birth_date"] = f"{d[:8]}{day + 1 if day < 28 else day - 1:02d}"
    if kind == "dob_month":
        d = v["birth_date"]
        month = rng.choice([m for m in range(1, 13) if m != int(d[5:7])])
        v["birth_date"] = f"{d[:5]}{month:02d}{d[7:]}"
    if kind == "dob_year":
        d = v["birth_date"]
        v["birth_date"] = f"{int(d[:4]) + rng.choice((-1, 1))}{d[4:]}"
    return dup


def found_original(findings: list, original_id: str) -> bool:
    return any(f.detector == "duplicate_person" and original_id in f.event_ids for f in findings)


def _link_or_copy(src: str, dst: str) -> None:
    """RocksDB never changes a written SST file, so the copy can share them
    (a 10 M state is 12 GB); everything else is copied."""
    if src.endswith(".sst"):
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system
            pass
    shutil.copy2(src, dst)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True, help="a state left by bench.duplicates_scale (not changed: copied)")
    ap.add_argument("--voters", type=int, required=True, help="how many voters that state holds")
    ap.add_argument("--seed", type=int, default=3, help="the seed the state was built with")
    ap.add_argument("--probes", type=int, default=2100)
    ap.add_argument("--work", default=None, help="where to copy the state (default: a temporary directory)")
    args = ap.parse_args(argv)

    rng = random.Random(20261128)
    drawn = set(rng.sample(range(args.voters), args.probes))
    t0 = time.perf_counter()
    originals = [ev for i, ev in enumerate(voters(args.voters, args.seed)) if i in drawn]
    regencies = sorted({ev["region"]["regency"] for ev in originals})
    kinds = list(KINDS)
    probes = [(kinds[k % len(kinds)], ev, duplicate_of(ev, kinds[k % len(kinds)], k, rng, regencies))
              for k, ev in enumerate(originals)]
    print(f"{len(probes):,d} originals drawn from {args.voters:,d} and their duplicates made in"
          f" {time.perf_counter() - t0:.0f} s", flush=True)

    work = args.work or tempfile.mkdtemp(prefix="pantau-scale-recall-")
    copy = os.path.join(work, "state")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(args.state, copy, copy_function=_link_or_copy)
    results: dict[str, Counter] = {"scale": Counter(), "control": Counter()}
    try:
        for where in ("control", "scale"):
            path = os.path.join(work, "control") if where == "control" else copy
            dbs = open_stores(path)
            wp = WorkerPath(dbs)
            load_sketch(wp.person, os.path.join(args.state, "sketch.npy"))
            if where == "control":
                for _kind, ev, _dup in probes:
                    wp(ev)
            for kind, ev, dup in probes:
                results[where][kind] += found_original(wp(dup), ev["event_id"])
            close_stores(dbs, compact=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    per_kind = Counter(kind for kind, _, _ in probes)
    print(f"recall of duplicates of voters drawn uniformly from {args.voters:,d} indexed"
          f" (at scale / control: the originals alone)")
    for kind in kinds:
        n = per_kind[kind]
        s, c = results["scale"][kind], results["control"][kind]
        print(f"  {kind:15} {s:4d}/{n} = {s / n:.3f}   control {c:4d}/{n} = {c / n:.3f}   ({KINDS[kind]})")
    n = sum(per_kind.values())
    s, c = sum(results["scale"].values()), sum(results["control"].values())
    print(f"  {'all':15} {s:4d}/{n} = {s / n:.3f}   control {c:4d}/{n} = {c / n:.3f}")


if __name__ == "__main__":
    main()
