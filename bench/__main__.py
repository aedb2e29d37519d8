"""``make bench``: worker throughput, latency, replay speed, memory, scale-out and profiles.

Run: ``.venv/bin/python -m bench [--commit HEAD] [--repeats 3] [--cap 20] [--json out.json]``

One embedded broker; every worker a real subprocess with a fresh app id.
Figures are medians of ``--repeats`` runs, and ratios are taken side by side
in the same run (the 2 cores are shared with the broker and with whatever
else runs). Nothing here asserts a timing. What each part does is in its
module: :mod:`bench.throughput`, :mod:`bench.latency`,
:mod:`bench.replay_speed`; the figures and the profile reading are in
``docs/performance.md``.

``--commit REV`` runs the workers and replays from ``git archive REV`` (in
/tmp) instead of the working tree, so a half-edited tree cannot spoil a run.
``--cap S`` stops a pantau run S seconds after its first event (the rate is
taken over what it reached) so that a slow worker still fits in a few minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _snapshot(rev: str) -> Path:
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", rev], cwd=root, capture_output=True, text=True,  # noqa: S607
                            check=True).stdout.strip()
    dest = Path(tempfile.gettempdir()) / f"pantau-code-{commit[:12]}"
    if not (dest / "app" / "worker.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=root, capture_output=True, check=True)  # noqa: S607
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)  # noqa: S607
    return dest


def _shown(value: float | None, spec: str) -> str:
    """``spec.format(value)``, or "-" for a figure an older code tree or a timed-out run did not give."""
    return "-" if value is None else spec.format(value)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--events", type=int, default=20000, help="events pre-produced for throughput")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cap", type=float, default=10.0, help="seconds after its first event a pantau run stops (0: none)")
    p.add_argument("--e2e-events", type=int, default=1500,
                   help="events for the run that waits for the second stage too (0: skip)")
    p.add_argument("--latency-seconds", type=float, default=15.0)
    p.add_argument("--mixed", type=int, default=300, help="lines of the mixed replay file (0: all)")
    p.add_argument("--tallies", type=int, default=1000, help="tallies replayed for the national estimate")
    p.add_argument("--full-national", action="store_true", help="replay all 820,161 tallies whatever the estimate")
    p.add_argument("--sharded-tallies", type=int, default=10000,
                   help="tallies of the interleaved sample replayed with 1 and with one process per CPU (0: skip)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--no-scaleout", action="store_true")
    p.add_argument("--commit", default=None, help="run workers/replays from this git revision (a snapshot in /tmp)")
    p.add_argument("--json", default=None, help="also write every figure here")
    return p.parse_args()


def main() -> int:  # noqa: C901, PLR0915 - one linear script
    args = parse()
    if args.commit:
        os.environ["BENCH_CODE"] = str(_snapshot(args.commit))
    import orjson
    from rich.console import Console
    from rich.table import Table

    from app.broker import EmbeddedBroker
    from app.demo import interleaved
    from bench import common
    from bench.common import CODE, machine, median, summarize_profile
    from bench.latency import run_latency
    from bench.replay_speed import NATIONAL_TPS, replay, run_national, run_sharded, write_mixed
    from bench.throughput import prepare, run_end_to_end, run_noop, run_pantau, run_scaleout, sustainable_rate

    console = Console()
    began = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="pantau-bench-"))
    cap = args.cap or None
    m = machine()
    console.print(f"[bold]Pantau bench[/]  {m['nproc']} cores, {m['cpu']}, Python {m['python']}, "
                  f"load {m['load']}; code {CODE}; work dir {base}")
    out: dict = {"machine": m, "code": str(CODE), "args": vars(args)}
    if args.commit:
        out["commit"] = CODE.name

    def elapsed() -> str:
        return f"[{time.monotonic() - began:5.0f}s]"

    with ThreadPoolExecutor(1) as pool:
        events_f = pool.submit(interleaved, args.seed)
        broker = EmbeddedBroker(log_path=base / "broker.log").start()
        try:
            events = events_f.result()[: args.events]
            total = len(events)

            # 1. throughput, side by side
            settings, produced = prepare(broker.url, base, events)
            console.print(f"{elapsed()} produced {total} events in {produced['produce_seconds']:.1f}s "
                          f"({produced['produce_rate']:.0f} ev/s)")
            rows = []
            for i in range(args.repeats):
                noop = run_noop(settings, total, base)
                prof = base / "worker-profile.txt" if (i == args.repeats - 1 and not args.no_profile) else None
                pantau = run_pantau(settings, total, base, profile_out=prof, cap=cap)
                rows.append((noop, pantau, prof is not None))
                console.print(f"{elapsed()} run {i + 1}: no-op {noop['rate']:.0f} ev/s, pantau {pantau['rate']:.0f} "
                              f"ev/s ({pantau['processed']:.0f}/{total} in the cap){' [py-spy attached]' if prof else ''}")
            noop_med = median([r[0]["rate"] for r in rows])
            pantau_med = median([r[1]["rate"] for r in rows])
            ratios = [r[1]["rate"] / r[0]["rate"] for r in rows]
            out["throughput"] = {"runs": [{"noop": n, "pantau": p, "profiled": pr} for n, p, pr in rows],
                                 "noop_median": noop_med, "pantau_median": pantau_med,
                                 "ratio_median": median(ratios), "produce": produced}
            cpu_med = median([r[1].get("cpu_ms_per_event") for r in rows if not r[2]])
            out["throughput"]["pantau_cpu_ms_per_event_median"] = cpu_med
            t = Table("run", "no-op ev/s", "pantau ev/s", "pantau/no-op", "pantau events in cap",
                      "pantau CPU ms/event",
                      title=f"1. worker throughput, {total} mixed events, 4 partitions, RocksDB store")
            for i, (n, p, pr) in enumerate(rows, 1):
                t.add_row(f"{i}{' (py-spy)' if pr else ''}", f"{n['rate']:.0f}", f"{p['rate']:.0f}",
                          f"{p['rate'] / n['rate']:.4f}", f"{p['processed']:.0f}",
                          f"{p['cpu_ms_per_event']:.2f}" if p.get("cpu_ms_per_event") else "-")
            t.add_row("median", f"{noop_med:.0f}", f"{pantau_med:.0f}", f"{median(ratios):.4f}", "",
                      f"{cpu_med:.2f} (without py-spy)" if cpu_med else "-", style="bold")
            console.print(t)

            # 1b. end to end, second stage included
            if args.e2e_events:
                small, _ = prepare(broker.url, base, events[: args.e2e_events])
                e2e = run_end_to_end(small, args.e2e_events, base)
                out["end_to_end"] = e2e
                t = Table("events", "input done after", "input ev/s", "routed messages",
                          "second stage done after", "end-to-end ev/s",
                          title="1b. one pantau worker until its second stage (routed topics) is done too")
                t.add_row(str(e2e["events"]), _shown(e2e["input_seconds"], "{:.1f} s"),
                          _shown(e2e["input_rate"], "{:.0f}"), str(e2e["routed"]),
                          _shown(e2e["all_seconds"], "{:.1f} s"), _shown(e2e["end_to_end_rate"], "{:.0f}"))
                console.print(f"{elapsed()} end to end done")
                console.print(t)

            # 4. memory (from the last pantau run without py-spy, else the last)
            plain = [r[1] for r in rows if not r[2]] or [rows[-1][1]]
            mem = plain[-1]
            regs = mem["registrations"] or 0
            dup_bytes = sum(v for k, v in mem["tables"].items() if k in ("nik_index", "person_blocks"))
            delta = (mem["rss_end_mb"] or 0) - (mem["rss_base_mb"] or 0)
            out["memory"] = {**{k: mem[k] for k in ("rss_base_mb", "rss_end_mb", "registrations", "data_bytes",
                                                      "tables", "index_entries")},
                             "rss_per_voter_bytes": delta * 2**20 / regs if regs else None,
                             "dup_index_bytes": dup_bytes, "dup_disk_per_voter_bytes": dup_bytes / regs if regs else None}
            t = Table("what", "value", title="4. memory of the worker after run 1's events")
            t.add_row("RSS before the first event / after", f"{mem['rss_base_mb']:.0f} MB / {mem['rss_end_mb']:.0f} MB")
            t.add_row("registrations indexed", f"{regs:.0f}")
            if regs:
                t.add_row("RSS delta per indexed voter", f"{delta * 2**20 / regs:.0f} B")
                t.add_row("nik_index + person_blocks on disk per voter", f"{dup_bytes / regs:.0f} B "
                          f"(all tables {mem['data_bytes'] / 2**20:.1f} MB)")
            console.print(t)

            # 5. scale-out
            if not args.no_scaleout:
                scale = run_scaleout(broker.url, base, events, base, workers=2, cap=cap)
                out["scaleout"] = scale
                t = Table("workers", "partitions", "combined ev/s", "vs one worker (median)", "split",
                          title="5. scale-out: two pantau workers, one group, on the same 2 cores")
                t.add_row("2", str(scale["partitions"]), f"{scale['rate']:.0f}",
                          f"{scale['rate'] / pantau_med:.2f}x", " / ".join(f"{x:.0f}" for x in scale["split"]))
                console.print(f"{elapsed()} scale-out done")
                console.print(t)

            # 2. latency at half the sustainable rate: the slower of 1 and 1b
            sustainable, which = sustainable_rate(pantau_med, (out.get("end_to_end") or {}).get("end_to_end_rate"))
            out["sustainable_rate"] = sustainable
            rate = max(1.0, sustainable / 2)
            lat = run_latency(broker.url, base, events, rate, args.latency_seconds)
            out["latency"] = lat
            t = Table("target rate", "achieved", "alerting events", "alerted", "p50", "p99", "max",
                      title="2. event -> alert latency at half the sustainable rate "
                            f"({sustainable:.0f} ev/s, {which})")
            ms = lambda v: _shown(None if v is None else v * 1000, "{:.0f} ms")  # noqa: E731
            t.add_row(f"{rate:.0f} ev/s", f"{lat['rate']:.0f} ev/s", str(lat["alerting"]), str(lat["alerted"]),
                      ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"]))
            console.print(f"{elapsed()} latency done")
            console.print(t)
        finally:
            broker.stop()

    # 1c. the detectors alone: the events run 1-3's workers got through, replayed in one process
    # (the same detector objects, no broker, Faust or tables), stamped with one event time as
    # the workers' were (so no volume bucket closes in either). No worker can beat this rate;
    # the no-op ratio above says what Faust costs, this one what is left around the detectors.
    reached = int(median([r[1]["processed"] for r in rows])) or total
    floor_path = base / "worker-stream.jsonl"
    stamp = common.now_ms()
    floor_path.write_bytes(b"".join(common.stamped(e, stamp) + b"\n" for e in events[:reached]))
    floor = replay(floor_path, base)
    floor_path.unlink()
    out["detectors_alone"] = {**floor, "worker_rate_ratio": pantau_med / floor["cpu_rate"] if floor["cpu_rate"] else None,
                              "worker_cpu_ratio": (cpu_med / 1000) / (floor["cpu_seconds"] / floor["events"])
                              if cpu_med and floor["cpu_seconds"] else None}
    d = out["detectors_alone"]
    t = Table("events", "replay CPU s", "CPU µs/event", "ev/s of CPU", "worker ev/s / this",
              "worker CPU per event / this",
              title="1c. the detectors alone: pantau replay (one process, no broker) of the events the worker reached")
    t.add_row(str(floor["events"]), _shown(floor["cpu_seconds"], "{:.1f}"),
              _shown(floor["cpu_seconds"] and floor["cpu_seconds"] / floor["events"] * 1e6, "{:.0f}"),
              _shown(floor["cpu_rate"], "{:.0f}"), _shown(d["worker_rate_ratio"], "{:.2f}"),
              _shown(d["worker_cpu_ratio"], "{:.2f}x"))
    console.print(t)

    # 3. replay, no broker
    mixed_path = base / "mixed.jsonl"
    write_mixed(events_f.result(), mixed_path, args.mixed or None)
    prof_r = None if args.no_profile else base / "replay-profile.txt"
    mixed = replay(mixed_path, base, profile_out=prof_r)
    templates = [e.value for e in events_f.result() if e.stream == "results"]
    national = run_national(templates, args.tallies, base, True if args.full_national else None)
    out["replay"] = {"mixed": mixed, "national": national}
    t = Table("input", "events", "replay s", "ev/s", "wall s", title="3. pantau replay (no broker)")
    t.add_row("mixed simulator file", str(mixed["events"]), f"{mixed['seconds']:.1f}", f"{mixed['rate']:.0f}",
              f"{mixed['wall']:.1f}")
    s = national["sample"]
    t.add_row("results only, one contest", str(s["events"]), f"{s['seconds']:.1f}", f"{s['rate']:.0f}", f"{s['wall']:.1f}")
    t.add_row(f"-> {NATIONAL_TPS:,} TPS (extrapolated)", "", f"{national['estimate_seconds']:.0f}", "", "")
    if national["full"]:
        f = national["full"]
        t.add_row(f"{NATIONAL_TPS:,} TPS (measured)", str(f["events"]), f"{f['seconds']:.1f}", f"{f['rate']:.0f}",
                  f"{f['wall']:.1f}")
    jobs = os.cpu_count() or 1
    if args.sharded_tallies and jobs > 1:
        try:
            sharded = run_sharded(templates, args.sharded_tallies, base, jobs, rounds=1)
        except RuntimeError as exc:  # a code tree from before `replay --jobs`
            console.print(f"sharded replay not measured: {str(exc).splitlines()[-1]}")
        else:
            out["replay"]["sharded"] = sharded
            secs = sharded["median_seconds"]
            for j in (1, jobs):
                t.add_row(f"interleaved regencies, --jobs {j}", str(sharded["tallies"]), f"{secs[j]:.1f}",
                          f"{sharded['tallies'] / secs[j]:.0f}", "")
            t.add_row(f"-> {NATIONAL_TPS:,} TPS with --jobs {jobs} (extrapolated)", "",
                      f"{sharded['estimate_seconds'][jobs]:.0f}", f"speed-up {sharded['speedup']:.2f}x",
                      "same alerts" if sharded["same_alerts"] else "ALERTS DIFFER")
    console.print(f"{elapsed()} replay done")
    console.print(t)

    # 6. profiles
    skip = ("_find_and_load", "<module> (<frozen")
    for name, path in (("worker during run 3", base / "worker-profile.txt"), ("replay of the mixed file", prof_r)):
        prof = summarize_profile(path, top=10, skip=skip) if path else None
        if prof is None:
            continue
        out.setdefault("profiles", {})[name] = prof.as_dict()
        t = Table("share", "function (self time)", title=f"6. profile of the {name}: py-spy, {prof.samples} samples")
        for k, v in prof.self_funcs:
            t.add_row(f"{v:.1%}", k)
        console.print(t)
        console.print("self time by module: " + ", ".join(f"{k} {v:.1%}" for k, v in prof.self_modules[:8]))
        t = Table("share", "project function (inclusive)", "", "share", "activity (inclusive)",
                  title=f"   {name}: where the time goes")
        for i in range(max(len(prof.inclusive_project), len(prof.activities))):
            a = prof.inclusive_project[i] if i < len(prof.inclusive_project) else ("", 0)
            b = prof.activities[i] if i < len(prof.activities) else ("", 0)
            t.add_row(f"{a[1]:.1%}" if a[0] else "", a[0], "", f"{b[1]:.1%}" if b[0] else "", b[0])
        console.print(t)

    out["seconds"] = time.monotonic() - began
    console.print(f"{elapsed()} done; logs and profiles in {base}")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    del common
    return 0


if __name__ == "__main__":
    sys.exit(main())
