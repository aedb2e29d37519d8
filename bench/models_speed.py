"""Detector cost per event, and ``pantau replay`` speed, before/after side by side.

Run: ``.venv/bin/python -m bench.models_speed [--compare /tmp/base] [--runs 3]``

* Registration detectors over the simulator's ``registrations.jsonl``
  (``python -m sim --out DIR --seed 3 --voters 5000``, made on first use):
  each stage-1 detector's ``process_one``, ``blocking_keys``,
  ``match_in_block`` summed over the record's blocking keys, and
  ``Household.process_one``, in microseconds per registration event.
* Result detectors (stage 1 and the regency stage) over the real Sirekap
  sample (``pantau sirekap --out``), microseconds per result event.
* ``VolumeMonitor``: microseconds per scored bucket (``stats["buckets_scored"]``),
  the registrations fed through ``observe`` until ``--volume-buckets`` buckets
  were scored.
* ``pantau replay`` of the simulator's registrations + results and of the
  Sirekap file, as subprocesses: events per second by replay's own timer
  (``--summary``; interpreter start-up excluded) and the wall time.

``--tree DIR`` measures a snapshot instead of this checkout (e.g.
``git archive HEAD | tar -x -C /tmp/head``). ``--compare ROOT`` runs the same measurements with ``app/`` and ``models/``
imported from ROOT (e.g. ``git archive HEAD~3 | tar -x -C /tmp/base``),
alternating the two trees run by run so both see the same machine load; every
figure is the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> list[dict]:
    import orjson

    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def measure(sim: Path, sirekap: Path, volume_buckets: int) -> dict[str, float]:
    """One run, in this interpreter (whatever ``app``/``models`` it imports)."""
    from datetime import datetime

    from app.pipeline import Pipeline, dict_stores
    from app.settings import Settings

    out: dict[str, float] = {}
    regs = _load(sim / "registrations.jsonl")
    p = Pipeline(Settings(), dict_stores())
    cost: Counter = Counter()
    clock = time.process_time  # CPU time: the 2 cores are shared, waiting for one is not cost
    for e in regs:
        for d in p.registration_detectors:
            t = clock()
            d.process_one(e)
            cost[type(d).__name__] += clock() - t
        t = clock()
        keys = p.person_block.blocking_keys(e)
        cost["PersonDuplicate.blocking_keys"] += clock() - t
        t = clock()
        for k in keys:
            p.person_block.match_in_block(k, e)
        cost["PersonDuplicate.match_in_block"] += clock() - t
        t = clock()
        p.household.process_one(e)
        cost["Household"] += clock() - t
    for name, s in cost.items():
        out[f"reg {name}"] = s / len(regs) * 1e6
    out["reg total"] = sum(cost.values()) / len(regs) * 1e6

    results = [e for e in _load(sirekap) if "votes" in e]
    p = Pipeline(Settings(), dict_stores())
    cost = Counter()
    for e in results:
        for d in p.result_detectors + p.regency_detectors:
            t = clock()
            d.process_one(e)
            cost[type(d).__name__] += clock() - t
    for name, s in cost.items():
        out[f"res {name}"] = s / len(results) * 1e6
    out["res total"] = sum(cost.values()) / len(results) * 1e6

    from app.detectors import make_volume_monitor

    mon = make_volume_monitor(Settings())
    spent = 0.0
    for e in regs:
        when = datetime.fromisoformat(e["occurred_at"])
        t = clock()
        mon.observe("registrations", when, e.get("region") or {}, e.get("source"))
        spent += clock() - t
        if mon.stats["buckets_scored"] >= volume_buckets:
            break
    out["volume us/bucket"] = spent / max(mon.stats["buckets_scored"], 1) * 1e6
    return out


def replay(root: Path, files: list[Path], work: Path) -> tuple[float, float, int]:
    """(events/s by replay's timer, wall seconds, events) of ``pantau replay`` with code from ``root``."""
    summary = work / "summary.json"
    env = dict(os.environ, PYTHONPATH=str(root))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "app.cli", "replay", *map(str, files), "--out",  # noqa: S603
                           os.devnull, "--quiet", "--summary", str(summary)], cwd=root, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"replay failed in {root}:\n{proc.stderr[-2000:]}")
    wall = time.perf_counter() - started
    s = json.loads(summary.read_text())
    n = sum(s["events"].values())
    return n / s["seconds"], wall, n


def ensure_inputs(sim: Path, sirekap: Path) -> None:
    py = sys.executable
    if not (sim / "registrations.jsonl").exists():
        sim.mkdir(parents=True, exist_ok=True)
        subprocess.run([py, "-m", "sim", "--out", str(sim), "--seed", "3", "--voters", "5000"],  # noqa: S603
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    if not sirekap.exists():
        subprocess.run([py, "-m", "app.cli", "sirekap", "--out", str(sirekap)], cwd=ROOT, check=True,  # noqa: S603
                       stdout=subprocess.DEVNULL)


def one_run(root: Path, args: argparse.Namespace, work: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run(  # noqa: S603
        [sys.executable, str(Path(__file__).resolve()), "--child", "--sim", str(args.sim), "--sirekap",
         str(args.sirekap), "--volume-buckets", str(args.volume_buckets)],
        cwd=root, env=env, check=True, capture_output=True, text=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if not args.skip_replay:
        mixed = [args.sim / "registrations.jsonl", args.sim / "results.jsonl"]
        rate, wall, n = replay(root, mixed, work)
        res["replay sim events/s"], res["replay sim wall s"], res["replay sim events"] = rate, wall, n
        rate, wall, n = replay(root, [args.sirekap], work)
        res["replay sirekap events/s"], res["replay sirekap wall s"], res["replay sirekap events"] = rate, wall, n
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", type=Path, default=Path(tempfile.gettempdir()) / "pantau-speed-sim")
    ap.add_argument("--sirekap", type=Path, default=Path(tempfile.gettempdir()) / "pantau-speed-sirekap.jsonl")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--volume-buckets", type=int, default=20_000)
    ap.add_argument("--compare", type=Path, help="another source tree (app/, models/) to measure side by side")
    ap.add_argument("--tree", type=Path, default=ROOT,
                    help="the tree measured as 'this tree' (default: this checkout; a snapshot keeps edits out)")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--json", type=Path, help="write the medians here too")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.sim, args.sirekap, args.volume_buckets)))
        return
    ensure_inputs(args.sim, args.sirekap)
    trees = {"this tree": args.tree.resolve()}
    if args.compare:
        trees = {"compare": args.compare.resolve(), "this tree": args.tree.resolve()}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, root in trees.items():
                runs[name].append(one_run(root, args, Path(tmp)))
                print(f"run {i + 1}/{args.runs} {name} done", file=sys.stderr, flush=True)
    medians = {name: {k: statistics.median(r[k] for r in rs if k in r) for k in rs[0]} for name, rs in runs.items()}
    names = list(trees)
    keys = list(dict.fromkeys(k for m in medians.values() for k in m))
    print(f"median of {args.runs} runs; load {os.getloadavg()[0]:.1f}; sim {args.sim}, sirekap {args.sirekap}")
    print(f"{'measure (µs/event unless named)':42s}" + "".join(f"{n:>14s}" for n in names)
          + ("   speed-up" if len(names) == 2 else ""))
    for k in keys:
        vals = [medians[n].get(k, float("nan")) for n in names]
        line = f"{k:42s}" + "".join(f"{v:14.1f}" for v in vals)
        if len(names) == 2 and vals[0] and vals[1] and not k.endswith(" events"):
            # Costs: before / after; rates (events/s): after / before. Above 1 is faster.
            line += f"{(vals[1] / vals[0]) if k.endswith('/s') else (vals[0] / vals[1]):10.2f}x"
        print(line)
    for name, root in trees.items():
        print(f"  {name}: {root}")
    if args.json:
        args.json.write_text(json.dumps({"trees": {n: str(r) for n, r in trees.items()}, "medians": medians},
                                        indent=1))


if __name__ == "__main__":
    main()
