"""Small aiokafka helpers for the tools around the worker: topics, produce, consume.

The worker itself goes through Faust; these serve ``pantau demo``, ``tail``,
``produce``, the tests and the benchmarks.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.settings import Settings

log = logging.getLogger(__name__)


def bootstrap(settings: Settings) -> str:
    return settings.broker_url.removeprefix("kafka://").replace(";", ",")


def client_options(settings: Settings) -> dict[str, Any]:
    """Security options for aiokafka clients, from the same settings the worker uses."""
    opts: dict[str, Any] = {"bootstrap_servers": bootstrap(settings), "security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
        opts["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        opts.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return opts


def broker_error(settings: Settings, exc: BaseException) -> str:
    """One line for a person: the tools could not use the broker, and which settings to check.

    aiokafka reports a refused SASL login or a TLS/plaintext mismatch only as
    "Unable to bootstrap", so the protocol in use decides the hint.
    """
    protocol = settings.security_protocol
    if protocol.startswith("SASL"):
        hint = (f"SASL authentication failed or was refused (mechanism {settings.sasl_mechanism}, user "
                f"{settings.sasl_username!r}), or the broker is unreachable: check PANTAU_SASL_MECHANISM, "
                "PANTAU_SASL_USERNAME, PANTAU_SASL_PASSWORD and PANTAU_BROKER_URL")
    elif protocol == "SSL":
        hint = "TLS connection failed or the broker is unreachable: check PANTAU_SSL_CAFILE and PANTAU_BROKER_URL"
    else:
        hint = ("the broker is unreachable, or it expects TLS or SASL: check PANTAU_BROKER_URL and "
                "PANTAU_SECURITY_PROTOCOL")
    return f"pantau: cannot use the broker at {bootstrap(settings)} ({protocol}): {hint} ({type(exc).__name__}: {exc})"


def all_topics(settings: Settings) -> list[str]:
    from app.pipeline import ROUTE_KINDS
    from app.worker import internal_topic_name

    return [
        settings.topic_registrations, settings.topic_results, settings.topic_feedback,
        settings.topic_alerts, settings.topic_dead_letters,
    ] + [internal_topic_name(settings, k) for k in ROUTE_KINDS]


async def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> None:
    """Create Pantau's topics with the configured partitions, if missing.

    Topics auto-created by a broker get its default partition count, and a
    table whose changelog disagrees with its source topic cannot start.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or all_topics(settings)) if t not in existing]
        if wanted:
            try:
                await admin.create_topics(
                    [NewTopic(t, settings.partitions, settings.replication_factor) for t in wanted]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def start_producer(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5, **extra)
    await producer.start()
    return producer


async def consume(
    settings: Settings, topic: str, *, from_beginning: bool = True, group_id: str | None = None
) -> AsyncIterator[Any]:
    """Yield records of ``topic`` forever (the caller breaks out)."""
    consumer = AIOKafkaConsumer(
        topic, **client_options(settings), group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest", enable_auto_commit=group_id is not None,
    )
    await consumer.start()
    try:
        async for record in consumer:
            yield record
    finally:
        await consumer.stop()
