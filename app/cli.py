"""``pantau``: the command line.

Subcommands: ``worker`` (production), ``demo`` (everything on a laptop),
``replay`` (detectors over files), ``simulate`` (write simulator files),
``produce`` (send JSON Lines files to the input topics), ``tail`` (read the
alerts topic), ``sirekap`` (convert the Sirekap sample), ``report`` (HTML),
``settings`` (list every setting and its environment variable).

Settings come from ``PANTAU_*`` environment variables (see ``pantau settings``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from app.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"pantau: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.embedded:
        print("pantau: PANTAU_BROKER_URL=embedded is for `pantau demo`; the worker needs a broker URL "
              "(e.g. kafka://localhost:9092)", file=sys.stderr)
        return 2
    from app.kafka_io import ensure_topics
    from app.worker import run_worker

    asyncio.run(ensure_topics(settings))
    run_worker(settings)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Print every setting; ``--format markdown`` / ``env`` write the README table and config/pantau.env.example."""
    documented = Settings().documented()
    if args.format == "markdown":
        print("| variable | default | what it sets |\n|---|---|---|")
        for var, default, doc in documented:
            print(f"| `{var}` | `{default or '(empty)'}` | {doc} |")
    elif args.format == "env":
        print(ENV_EXAMPLE_HEADER)
        for var, default, doc in documented:
            print(f"\n# {doc}\n# {var}={default}")
    else:
        for var, default, doc in documented:
            print(f"{var}={default}\n    {doc}")
    return 0


ENV_EXAMPLE_HEADER = """\
# Pantau worker settings: every PANTAU_* variable, its default, and what it sets.
# Copy to pantau.env, uncomment what you change. `pantau settings` prints the same list.
# In production set PANTAU_ENV=production and a secret of your own:
#   PANTAU_HMAC_SECRET=$(openssl rand -hex 32)"""


def cmd_broker(args: argparse.Namespace) -> int:
    """Run the embedded broker in the foreground (for trying things by hand)."""
    import signal
    import threading

    from app.broker import EmbeddedBroker

    with EmbeddedBroker(port=args.port) as broker:
        print(f"embedded broker at {broker.url} (Ctrl-C stops it)", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pantau", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run a worker (broker and everything else from PANTAU_* settings)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("settings", help="list every setting, its environment variable and default")
    p.add_argument("--format", choices=("text", "markdown", "env"), default="text",
                   help="markdown: the README's table; env: config/pantau.env.example")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("broker", help="run the embedded Tansu broker in the foreground")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=cmd_broker)

    from app import commands

    commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
