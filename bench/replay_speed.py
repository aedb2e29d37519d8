"""``pantau replay`` speed (no broker): a mixed simulator file, and a national result count.

Run alone: ``.venv/bin/python -m bench.replay_speed [--mixed 3000] [--tallies 20000] [--full]``

* mixed: the first N lines of the simulator's registrations + results
  (``app.demo.interleaved``, event time as simulated) through ``pantau replay``.
* national: ``--tallies`` synthetic result.v1 tallies for one contest (PPWP),
  made from the simulator's tallies with rewritten TPS codes, regions and
  event ids: ~10 TPS per village, 12 villages per district, 14 districts per
  regency (Indonesia 2024: 820,161 TPS, 83,731 villages, 7,277 districts, 514
  regencies), submitted over six hours of the evening. Candidate counts are
  honest multinomial draws from each template's shares and total
  (``--national-votes copies``: the older sample of near-copies, which the
  digit tests flag). Timed and extrapolated to 820,161 TPS; with ``--full``
  (or when the extrapolation is under a minute) the full 820,161 are
  generated to /tmp and replayed, then deleted.

``seconds`` is the replay's own timer (``--summary``), without interpreter
start-up; ``wall`` includes it. ``cpu_seconds`` is the replay's own CPU time
(process time, start-up excluded; code trees from before it was reported give
None): on a shared machine it moves less with the load than ``seconds``, so
compare ``cpu_rate`` and ``estimate_cpu_seconds`` between code trees.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

from bench.common import CODE, WIB, code_env, start_pyspy, stop_pyspy

NATIONAL_TPS = 820_161


def write_mixed(events, path: Path, n: int | None = None) -> int:
    with path.open("wb") as fh:
        count = 0
        for e in events[:n] if n else events:
            fh.write(orjson.dumps(e.value) + b"\n")
            count += 1
    return count


def national_tallies(templates: list[dict], n: int, votes: str = "honest", order: str = "regency"):
    """``n`` distinct TPS tallies (one contest) built from ``templates``.

    ``votes="honest"``: each TPS's candidate counts are drawn
    Multinomial(the template's vote total, the template's shares), so their
    digits are those of honest counts, and every total, sum and error of the
    template is kept. ``"copies"`` (the bench before digit_forensics version
    2): the template's counts with 0-4 votes taken off each; with the
    simulator's 91 templates these repeat their digits, which digit_forensics
    flags at most evaluations, so that sample is a country of suspicious
    regencies, each evaluation drawing all its simulations.

    ``order="regency"``: one regency's 1,680 TPS after another (the sample
    of earlier sessions). ``"interleaved"``: the same number of regencies of
    about 1,680 TPS, reporting all evening side by side as real ones do, so
    that a replay sharded by regency (``--jobs``) has work for every shard.
    """
    if votes not in ("honest", "copies"):
        raise ValueError(f"votes must be 'honest' or 'copies', not {votes!r}")
    if order not in ("regency", "interleaved"):
        raise ValueError(f"order must be 'regency' or 'interleaved', not {order!r}")
    regencies = max(1, -(-n // 1680))  # ceil: no regency holds more than 1,680
    draws = np.random.default_rng(20240214)
    start = datetime(2024, 2, 14, 13, 0, tzinfo=WIB)
    span = 6 * 3600
    for i in range(n):
        t = templates[i % len(templates)]
        if order == "regency":
            village_i = i // 10
            district_i = village_i // 12
            regency_i = district_i // 14
        else:
            regency_i, within = i % regencies, i // regencies
            village_i = regency_i * 168 + within // 10
            district_i = village_i // 12
        province = f"{11 + (regency_i // 14) % 85:02d}"
        regency = province + f"{regency_i % 14 + 1:02d}"
        district = regency + f"{district_i % 14 + 1:02d}"
        village = district + f"{2001 + village_i % 12:04d}"
        tps = village + f"{(i if order == 'regency' else within) % 10 + 1:03d}"
        value = dict(t)
        if votes == "honest":
            counted = [c for c, v in t["votes"].items() if isinstance(v, int) and not isinstance(v, bool)]
            total = sum(t["votes"][c] for c in counted)
            if total > 0:
                drawn = draws.multinomial(total, [t["votes"][c] / total for c in counted])
                value.update(votes={**t["votes"], **{c: int(x) for c, x in zip(counted, drawn)}})
        else:
            # Take a few votes off each candidate (never adding, so no TPS goes
            # over its DPT) and keep the sums as they were.
            rng = random.Random(i)
            cut = {c: v if not isinstance(v, int) else max(0, v - rng.randint(0, 4)) for c, v in t["votes"].items()}
            removed = sum(t["votes"][c] - cut[c] for c in cut if isinstance(cut[c], int))
            for field in ("valid", "voters"):
                if isinstance(t.get(field), int):
                    value[field] = t[field] - removed
            value.update(votes=cut)
        value.update(
            event_id=f"national-{i}", tps=tps, contest="PPWP", revision=0, operator_id=f"KPPS-{tps}",
            region={"province": province, "regency": regency, "district": district, "village": village},
            submitted_at=(start + timedelta(seconds=span * i / n)).isoformat(),
        )
        yield value


def write_national(templates: list[dict], n: int, path: Path, votes: str = "honest", order: str = "regency") -> int:
    with path.open("wb") as fh:
        for value in national_tallies(templates, n, votes, order):
            fh.write(orjson.dumps(value) + b"\n")
    return n


def replay(path: Path, work: Path, profile_out: Path | None = None, jobs: int = 1, out: Path | None = None) -> dict:
    """``pantau replay FILE --out /dev/null --quiet --summary S [--jobs N]``; its summary plus wall time."""
    summary = work / f"summary-{path.stem}.json"
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "app.cli", "replay", str(path), "--out", str(out or os.devnull), "--quiet",
         "--summary", str(summary)] + (["--jobs", str(jobs)] if jobs != 1 else []),
        cwd=CODE, env=code_env(dict(os.environ)), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    spy = start_pyspy(proc.pid, profile_out) if profile_out else None
    _, err = proc.communicate()
    stop_pyspy(spy)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"replay failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    data = orjson.loads(summary.read_bytes())
    events = sum(data["events"].values()) + sum(data["dead_letters"].values())
    cpu = data.get("cpu_seconds")  # (older code trees do not report it)
    return {"events": events, "seconds": data["seconds"], "wall": wall,
            "rate": events / data["seconds"] if data["seconds"] else None,
            "cpu_seconds": cpu, "cpu_rate": events / cpu if cpu else None, "alerts": data["alerts"]}


def run_national(templates: list[dict], n: int, work: Path, full: bool | None = None, votes: str = "honest") -> dict:
    """Replay ``n`` tallies, extrapolate to 820,161; replay all of them when ``full`` (None: if under 60 s).
    ``votes``: see :func:`national_tallies`."""
    path = work / "national-sample.jsonl"
    write_national(templates, n, path, votes)
    sample = replay(path, work)
    path.unlink()
    estimate = NATIONAL_TPS / sample["rate"]
    out = {"sample": sample, "estimate_seconds": estimate, "full": None,
           # The same from CPU time, which moves less with the machine's load.
           "estimate_cpu_seconds": NATIONAL_TPS / sample["cpu_rate"] if sample["cpu_rate"] else None}
    if full or (full is None and estimate <= 60):
        big = Path("/tmp") / f"pantau-national-{os.getpid()}.jsonl"
        try:
            t0 = time.perf_counter()
            write_national(templates, NATIONAL_TPS, big, votes)
            out["generate_seconds"] = time.perf_counter() - t0
            out["full"] = replay(big, work)
        finally:
            big.unlink(missing_ok=True)
    return out


def run_sharded(templates: list[dict], n: int, work: Path, jobs: int, rounds: int, votes: str = "honest") -> dict:
    """The interleaved national sample replayed with one process and with ``jobs``, alternately.

    Wall seconds and their ratio (the speed-up), CPU seconds of all processes,
    and whether the two wrote the same alerts, byte for byte.
    """
    path = work / "national-interleaved.jsonl"
    write_national(templates, n, path, votes, order="interleaved")
    runs: dict[int, list[dict]] = {1: [], jobs: []}
    same = True
    for _ in range(rounds):
        for j in (1, jobs):
            out = work / f"alerts-jobs{j}.jsonl"
            runs[j].append(replay(path, work, jobs=j, out=out))
        same &= (work / "alerts-jobs1.jsonl").read_bytes() == (work / f"alerts-jobs{jobs}.jsonl").read_bytes()
    path.unlink()
    seconds = {j: float(np.median([r["seconds"] for r in rs])) for j, rs in runs.items()}
    cpu = {j: float(np.median([r["cpu_seconds"] for r in rs])) for j, rs in runs.items()}
    return {"tallies": n, "jobs": jobs, "rounds": rounds, "cpus": os.cpu_count(),
            "median_seconds": seconds, "median_cpu_seconds": cpu,
            "speedup": seconds[1] / seconds[jobs], "cpu_ratio": cpu[jobs] / cpu[1],
            "estimate_seconds": {j: NATIONAL_TPS / n * v for j, v in seconds.items()},
            "same_alerts": same, "alerts": runs[1][0]["alerts"]}


def main() -> None:
    from app.demo import interleaved

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mixed", type=int, default=3000, help="lines of the mixed file (0: all)")
    parser.add_argument("--tallies", type=int, default=20000)
    parser.add_argument("--full", action="store_true", help="replay all 820,161 tallies whatever the estimate")
    parser.add_argument("--national-votes", choices=("honest", "copies"), default="honest",
                        help="candidate counts of the national sample (see national_tallies)")
    parser.add_argument("--jobs", type=int, default=0,
                        help="also replay an interleaved national sample with one process and with N, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the --jobs comparison (medians)")
    args = parser.parse_args()
    work = Path(os.environ.get("BENCH_DIR", f"/tmp/pantau-bench-{os.getpid()}"))
    work.mkdir(parents=True, exist_ok=True)
    events = interleaved(args.seed)
    path = work / "mixed.jsonl"
    write_mixed(events, path, args.mixed or None)
    print("mixed", replay(path, work))
    templates = [e.value for e in events if e.stream == "results"]
    print("national", run_national(templates, args.tallies, work, True if args.full else None, args.national_votes))
    if args.jobs > 1:
        print("sharded", run_sharded(templates, args.tallies, work, args.jobs, args.rounds, args.national_votes))


if __name__ == "__main__":
    main()
