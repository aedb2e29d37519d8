"""Command line: write simulated events and labels as JSON Lines.

    python -m sim --out sim-out --seed 1 --voters 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import orjson

from .simulator import CONTESTS, DEFAULT_REGIONS, DEFAULT_START, write_files


def _start(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO date-time: {text!r}") from e
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError("start needs an offset, e.g. 2023-11-01T08:00+07:00")
    return t


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim",
        description="Write realistic Indonesian voter-registration events (registrations.jsonl), "
                    "TPS tallies (results.jsonl) and the labels of injected anomalies "
                    "(labels.jsonl, apart from the events). Deterministic by seed.")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--voters", type=int, default=20000, help="legitimate voters to simulate (default 20000)")
    p.add_argument("--regions", nargs="+", default=list(DEFAULT_REGIONS), metavar="PROV",
                   help="2-digit province codes (default: %(default)s)")
    p.add_argument("--anomaly-rate", type=float, default=0.02,
                   help="injected registration anomalies per voter (default 0.02)")
    p.add_argument("--tps-per-village", type=int, default=3, help="TPS per village (default 3)")
    p.add_argument("--contests", nargs="+", default=["PPWP"], choices=CONTESTS, help="contests to tally")
    p.add_argument("--days", type=int, default=28, help="length of the registration period in days")
    p.add_argument("--start", type=_start, default=DEFAULT_START,
                   help="start of the registration period (default %(default)s)")
    p.add_argument("--no-results", action="store_true", help="write registrations only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        counts = write_files(args.out, seed=args.seed, voters=args.voters,
                             with_results=not args.no_results, regions=args.regions,
                             anomaly_rate=args.anomaly_rate, tps_per_village=args.tps_per_village,
                             contests=tuple(args.contests), days=args.days, start=args.start)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(orjson.dumps(counts).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
