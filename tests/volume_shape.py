"""A synthetic tally stream with one spike and one silence, for volume tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.factories import result

WIB = timezone(timedelta(hours=7))
T0 = datetime(2024, 2, 14, 8, 0, tzinfo=WIB)
BUCKET = timedelta(minutes=5)
PER_BUCKET = 6


def spike_and_silence() -> tuple[list[dict], dict[str, tuple[datetime, datetime]]]:
    """Tallies of one regency: steady, a spike bucket, steady, a 2-hour silence, steady.

    Returns the events and the (start, end) of the spike and the silence.
    """
    plan = [PER_BUCKET] * 96 + [150] + [PER_BUCKET] * 24 + [0] * 24 + [PER_BUCKET] * 24
    events, n = [], 0
    for b, count in enumerate(plan):
        start = T0 + b * BUCKET
        for i in range(count):
            at = start + (BUCKET * i) / max(count, 1)
            district, village, tps = 1 + n // 90000, 1001 + (n // 900) % 100, 1 + n % 900
            events.append(result(tps=f"3273{district:02d}{village:04d}{tps:03d}", event_id=f"vol-{n}",
                                 submitted_at=at.isoformat(timespec="seconds")))
            n += 1
    windows = {"spike": (T0 + 96 * BUCKET, T0 + 97 * BUCKET),
               "silence": (T0 + 121 * BUCKET, T0 + 145 * BUCKET)}
    return events, windows
