"""The subcommands around the worker: replay, simulate, produce, tail, sirekap, report, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import orjson

from app.settings import Settings


def _settings() -> Settings:
    from app.cli import _settings as settings_or_exit  # app.cli imports this module lazily

    return settings_or_exit()


def _existing(paths: list[str]) -> list[Path]:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        print(f"pantau: no such file: {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    return [Path(p) for p in paths]


# -- replay -------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from app.replay import run_replay

    files = _existing(args.files)
    labels = _existing(args.labels) if args.labels else None
    settings = _settings()
    with ExitStack() as stack:
        out = stack.enter_context(open(args.out, "wb")) if args.out != "-" else sys.stdout.buffer
        dead = stack.enter_context(open(args.dead_letters, "wb")) if args.dead_letters else None
        summary = run_replay(files, out, dead, labels, settings, progress=not args.quiet, jobs=args.jobs,
                             tune_gc=True)
    data = summary.as_dict()
    if args.summary:
        Path(args.summary).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    console = Console(stderr=True)
    console.print(f"[bold]replayed[/] {sum(summary.events.values())} events "
                  f"({', '.join(f'{k}: {v}' for k, v in sorted(summary.events.items()))}) in {summary.seconds:.2f}s "
                  f"= {data['events_per_second']} events/s")
    console.print(f"[bold]dead letters[/] {sum(summary.dead_letters.values())} {dict(summary.dead_letters)}")
    table = Table("detector", "alerts (open/updated/resolved)", "precision", "recall", "labels", title="alerts")
    detectors = sorted({k.split("/")[0] for k in summary.alerts} | set(summary.quality or {}))
    for det in detectors:
        counts = "/".join(str(summary.alerts.get(f"{det}/{s}", 0)) for s in ("open", "updated", "resolved"))
        q = (summary.quality or {}).get(det, {})
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(det, counts, fmt(q.get("precision")), fmt(q.get("recall")), str(q.get("labels", "-")))
    console.print(table)
    return 0


# -- simulate -----------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from sim.simulator import write_files

    counts = write_files(Path(args.out), seed=args.seed, voters=args.voters)
    print(orjson.dumps(counts).decode())
    return 0


# -- produce ------------------------------------------------------------------
def event_key(stream: str | None, payload: bytes) -> bytes | None:
    """The topic key DESIGN.md fixes: NIK, TPS code or alert id (None when unreadable)."""
    try:
        event = orjson.loads(payload)
        if stream == "registrations":
            return str(event["voter"]["nik"]).encode()
        if stream == "results":
            return str(event["tps"]).encode()
        if stream == "feedback":
            return str(event["alert_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    return None


def topic_for(settings: Settings, stream: str | None) -> str:
    return {"results": settings.topic_results, "feedback": settings.topic_feedback}.get(
        stream or "", settings.topic_registrations
    )


async def _produce(settings: Settings, files: list[Path], rate: float) -> int:
    from app.kafka_io import Pacer, ensure_topics, start_producer
    from app.replay import guess_stream

    await ensure_topics(settings)
    producer = await start_producer(settings)
    sent = 0
    pacer = Pacer(rate, every=50)
    try:
        for path in files:
            with path.open("rb") as fh:
                for line in fh:
                    line = line.rstrip(b"\r\n")
                    if not line:
                        continue
                    stream = guess_stream(line)
                    await producer.send(topic_for(settings, stream), key=event_key(stream, line), value=line)
                    sent += 1
                    await pacer.sent(sent)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def cmd_produce(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.embedded:
        print("pantau: set PANTAU_BROKER_URL to the broker to send to", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaError

    from app.kafka_io import broker_error

    try:
        sent = asyncio.run(_produce(settings, _existing(args.files), args.rate))
    except KafkaError as exc:
        print(broker_error(settings, exc), file=sys.stderr)
        return 2
    print(f"sent {sent} events", file=sys.stderr)
    return 0


# -- tail -----------------------------------------------------------------------
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def alert_line(alert: dict) -> str:
    """One readable line for an alert (rich markup)."""
    style = SEVERITY_STYLE.get(alert.get("severity", ""), "white")
    region = (alert.get("region") or {}).get("province") or "--"
    return (f"[{style}]{alert.get('severity', '?'):8}[/] {alert.get('detector', '?'):18} {alert.get('status', ''):8} "
            f"prov {region}  {alert.get('summary', '')}  [dim]{alert.get('alert_id', '')}[/]")


async def _tail(settings: Settings, from_beginning: bool, as_json: bool, limit: int | None) -> None:
    from rich.console import Console

    from app.kafka_io import consume

    console = Console()
    seen = 0
    async for record in consume(settings, settings.topic_alerts, from_beginning=from_beginning):
        if as_json:
            sys.stdout.write(record.value.decode() + "\n")
            sys.stdout.flush()
        else:
            console.print(alert_line(orjson.loads(record.value)), highlight=False)
        seen += 1
        if limit and seen >= limit:
            return


def cmd_tail(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.embedded:
        print("pantau: set PANTAU_BROKER_URL to the broker to read from", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaError

    from app.kafka_io import broker_error

    try:
        asyncio.run(_tail(settings, args.from_beginning, args.json, args.limit))
    except KeyboardInterrupt:
        pass
    except KafkaError as exc:
        print(broker_error(settings, exc), file=sys.stderr)
        return 2
    return 0


# -- sirekap ----------------------------------------------------------------------
DEFAULT_SIREKAP = Path(__file__).resolve().parent.parent / "data" / "sirekap2024-sample"


def cmd_sirekap(args: argparse.Namespace) -> int:
    from collections import Counter

    from app.sirekap import iter_sample, rejection_reason, sirekap_to_result

    sources = [Path(p) for p in args.sample] if args.sample else [DEFAULT_SIREKAP]
    counts: Counter = Counter()
    with open(args.out, "wb") as out:
        for source in sources:
            for tps, record in iter_sample(source):
                event = sirekap_to_result(tps, record)
                if event is None:
                    counts[f"skipped: {rejection_reason(tps, record)}"] += 1
                    continue
                out.write(orjson.dumps(event) + b"\n")
                counts["converted"] += 1
    for what, n in sorted(counts.items()):
        print(f"{n:6d} {what}", file=sys.stderr)
    return 0


# -- report -------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from app.report import render_report

    render_report(_existing([args.alerts])[0], _existing(args.events), Path(args.out))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


# -- demo ---------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    return run_demo(duration=args.duration, rate=args.rate, seed=args.seed)


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs takes a whole number, not {text!r}") from None
    if jobs < 0:
        raise argparse.ArgumentTypeError(f"--jobs must be 0 (one per CPU) or more, not {jobs}")
    return jobs or (os.cpu_count() or 1)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run the detectors over JSON Lines files (no broker)")
    p.add_argument("files", nargs="+", help="registration.v1 / result.v1 / feedback.v1 JSON Lines, in order")
    p.add_argument("--out", default="alerts.jsonl", help="alerts as JSON Lines ('-' for stdout)")
    p.add_argument("--dead-letters", help="bad lines with their reason, as JSON Lines")
    p.add_argument("--labels", nargs="+", help="labels.jsonl from the simulator: prints precision/recall")
    p.add_argument("--summary", help="write the summary as JSON here too")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="processes that judge result lines, sharded by regency (0: one per CPU); the alerts are "
                        "the same as with 1, in the same order")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("simulate", help="write simulator events and labels as JSON Lines")
    p.add_argument("--out", default="sim-out", help="directory for registrations/results/labels .jsonl")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--voters", type=int, default=20000)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("produce", help="send JSON Lines files to the input topics, keyed as DESIGN.md says")
    p.add_argument("files", nargs="+")
    p.add_argument("--rate", type=float, default=0, help="events per second (0: as fast as possible)")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("tail", help="print alerts from the alerts topic as they arrive")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true", help="raw alert.v1 JSON, one per line")
    p.add_argument("--limit", type=int, help="stop after this many alerts")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("sirekap", help="convert the Sirekap 2024 sample to result.v1 JSON Lines")
    p.add_argument("sample", nargs="*", help=f"zip files or folders (default: {DEFAULT_SIREKAP})")
    p.add_argument("--out", default="sirekap.jsonl")
    p.set_defaults(func=cmd_sirekap)

    p = sub.add_parser("report", help="an HTML page with charts from a replay's alerts and events")
    p.add_argument("alerts", help="alerts.jsonl written by `pantau replay`")
    p.add_argument("events", nargs="+", help="the event files that were replayed")
    p.add_argument("--out", default="report.html")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="embedded broker + worker + simulator, alerts live in the terminal")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--rate", type=float, default=150, help="simulated events per second (one worker on 2 shared cores sustains ~140-190)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo)
