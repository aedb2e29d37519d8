"""The simulated calendar: when registrations happen.

Office sources (coklit, dukcapil, manual) follow KPU/PPS office hours in the local time
zone (WIB/WITA/WIT): most events 08:00-16:00, a dip at the midday break, little at
night, little on Sunday. Online self-registration is flatter with an evening peak.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable

from .regions import utc_offset

POLLING_DAY = dt.date(2024, 2, 14)

_HOURS_OFFICE = (0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.3, 1.2, 5, 8, 9, 8,
                 4, 7, 8, 6, 2.5, 1, 0.5, 0.6, 0.5, 0.3, 0.15, 0.08)
_HOURS_ONLINE = (0.6, 0.3, 0.2, 0.15, 0.3, 0.6, 1, 1.5, 2, 2.5, 2.5, 2.4,
                 2.2, 2.3, 2.3, 2.2, 2.2, 2, 2.2, 3, 3.5, 3.2, 2.2, 1.2)
# Monday..Sunday. Friday is shorter (Friday prayers); Sunday offices are mostly closed.
_DAYS_OFFICE = (1.0, 1.05, 1.0, 1.0, 0.8, 0.35, 0.1)
_DAYS_ONLINE = (1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8)

PROFILES = {"office": (_HOURS_OFFICE, _DAYS_OFFICE), "online": (_HOURS_ONLINE, _DAYS_ONLINE)}

Avoid = Callable[[dt.datetime], bool]


def iso(t: dt.datetime) -> str:
    """RFC 3339 with the local offset, seconds precision."""
    return t.isoformat(timespec="seconds")


class Clock:
    """Samples event times over `days` calendar days from `start`."""

    def __init__(self, rng: random.Random, start: dt.datetime, days: int):
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (e.g. +07:00)")
        if days < 1:
            raise ValueError("days must be >= 1")
        self.rng = rng
        self.start = start
        self.days = days
        self.end = start + dt.timedelta(days=days)
        self.dates = [start.date() + dt.timedelta(days=i) for i in range(days + 1)]
        self._hour_cum = {k: list(itertools.accumulate(h)) for k, (h, _) in PROFILES.items()}

        self._day_cum: dict[tuple[str, int], list[float]] = {}

    def _day_cum_weights(self, profile: str, first: int) -> list[float]:
        key = (profile, first)
        if key not in self._day_cum:
            days = PROFILES[profile][1]
            self._day_cum[key] = list(itertools.accumulate(days[d.weekday()] for d in self.dates[first:]))
        return self._day_cum[key]

    def sample(self, province: str, profile: str = "office", *, after: dt.datetime | None = None,
               avoid: Avoid | None = None, day: dt.date | None = None) -> dt.datetime:
        """One event time in the province's local zone.

        after: strictly later than this instant (an update after its add);
        avoid: reject instants for which this returns True (a silenced office);
        day: force the calendar day.
        """
        rng = self.rng
        tz = utc_offset(province)
        first = 0
        if after is not None:
            first = max(0, (after.astimezone(tz).date() - self.dates[0]).days)
        if day is not None:
            candidates, cum_days = [day], [1.0]
        elif first < len(self.dates):
            candidates, cum_days = self.dates[first:], self._day_cum_weights(profile, first)
        else:
            candidates, cum_days = [self.dates[-1]], [1.0]
        cum_hours = self._hour_cum[profile]
        for _ in range(200):
            d = rng.choices(candidates, cum_weights=cum_days)[0]
            h = rng.choices(range(24), cum_weights=cum_hours)[0]
            t = dt.datetime(d.year, d.month, d.day, h, rng.randrange(60), rng.randrange(60), tzinfo=tz)
            if t < self.start or (day is None and t >= self.end):
                continue
            if after is not None and t <= after:
                continue
            if avoid is not None and avoid(t):
                continue
            return t
        # The window left is too narrow for the rhythm (late dependants): just follow on.
        base = after or self.start
        t = base.astimezone(tz) + dt.timedelta(minutes=rng.randint(5, 600))
        while avoid is not None and avoid(t):
            t += dt.timedelta(hours=1)
        return t

    def share(self, province: str, profile: str, start: dt.datetime, end: dt.datetime) -> float:
        """About what share of a profile's events `sample` puts in [start, end)."""
        hours, days = PROFILES[profile]
        tz = utc_offset(province)
        total = sum(days[d.weekday()] for d in self.dates) * sum(hours)
        hour = dt.timedelta(hours=1)
        t = start.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        got = 0.0
        while t < end:
            if self.start <= t < self.end:
                part = (min(end, t + hour) - max(start, t)) / hour
                got += days[t.weekday()] * hours[t.hour] * part
            t += hour
        return got / total if total else 0.0

    def local(self, province: str, d: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        """A wall-clock time in the province's zone."""
        return dt.datetime(d.year, d.month, d.day, hour, minute, tzinfo=utc_offset(province))

    def weekdays(self) -> list[dt.date]:
        """Working days (Mon-Fri) of the calendar, excluding the first and last day."""
        return [d for d in self.dates[1:-1] if d.weekday() < 5]
