"""A Faust app that only counts: the ceiling for ``pantau worker`` on the same broker.

Run: ``PANTAU_BROKER_URL=kafka://127.0.0.1:9092 PANTAU_APP_ID=noop-1 BENCH_COUNT_PORT=6077 python -m bench.noop_app``

Same Faust settings as :mod:`app.worker` (session/heartbeat/rebalance
timeouts, partitions, replication, earliest offsets, no recovery consistency
check, raw key/value serializers, internal topics, web server off) and the
same agent loop shape (``async for event in events.events()``), with agents on
the registrations and results topics that only count. ``GET /count`` on
``BENCH_COUNT_PORT`` answers ``{"count": N, "first": t, "last": t}``
(``time.monotonic()`` of the first and last message).
"""

from __future__ import annotations

import os
import time

import faust
from aiohttp import web

from app.settings import Settings
from app.worker import faust_app


def build(settings: Settings, port: int) -> faust.App:
    s = settings
    app = faust_app(s)  # the worker's own Faust settings, so the baseline is comparable
    state = {"count": 0, "first": None, "last": None}

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                         partitions=s.partitions, replicas=s.replication_factor, internal=True)

    async def count(events: faust.StreamT) -> None:
        async for _event in events.events():
            if state["first"] is None:
                state["first"] = time.monotonic()
            state["count"] += 1
            state["last"] = time.monotonic()

    for name, topic_name in (("registrations", s.topic_registrations), ("results", s.topic_results)):
        app.agent(topic(topic_name), name=f"noop.{name}")(count)

    async def view(request: web.Request) -> web.Response:
        return web.json_response(state)

    @app.task
    async def serve() -> None:
        server = web.Application()
        server.router.add_get("/count", view)
        runner = web.AppRunner(server, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    return app


def main() -> None:
    from faust.worker import Worker as FaustWorker

    settings = Settings.from_env()
    app = build(settings, int(os.environ.get("BENCH_COUNT_PORT", "6077")))
    FaustWorker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
