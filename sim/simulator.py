"""The Pantau simulator: realistic Indonesian voter-registration events and TPS tallies
with labelled injected anomalies, deterministic by seed.

    >>> sim = Simulator(seed=7, voters=600, regions=["32"])
    >>> ev = next(sim.registrations())
    >>> ev.stream, len(ev.key), ev.value["schema"]
    ('registrations', 16, 'registration.v1')

Labels never travel inside an event's value: they are on `SimEvent.labels` (for the
event that is the injected record of an anomaly) and all together in `labels()`.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson

from .clock import Clock
from .labels import LabelBook, Rec
from .nik import NikIssuer
from .population import Household, PopulationBuilder, assign_tps
from .rand import SimRandom
from .regions import choose_villages
from .registrations import RegistrationBuilder
from .results import ResultBuilder, TpsInfo

WIB = dt.timezone(dt.timedelta(hours=7))
DEFAULT_START = dt.datetime(2023, 11, 1, 8, 0, tzinfo=WIB)
DEFAULT_REGIONS = ("31", "32", "33", "35", "73")
CONTESTS = ("PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKOTA")
VOTERS_PER_TPS = 227  # 2024 average DPT per TPS (204.8 M voters / 820 k TPS) is about 250


class SimEvent(NamedTuple):
    """One simulated event.

    stream: "registrations" | "results"; key: NIK (registrations) or TPS code (results);
    value: the registration.v1 / result.v1 object; labels: label objects of anomalies this
    event is the injected record of (never inside value); at: event time (aware datetime,
    the simulated calendar — the sender decides how fast to replay it).
    """

    stream: str
    key: str
    value: dict
    labels: list[dict]
    at: dt.datetime


class Simulator:
    """Builds (lazily, once) a population, its registration events and TPS tallies."""

    def __init__(self, seed: int = 1, start: dt.datetime = DEFAULT_START,
                 regions: list[str] | None = None, voters: int = 20000, tps_per_village: int = 3,
                 anomaly_rate: float = 0.02, contests: tuple[str, ...] = ("PPWP",),
                 days: int = 28, moved_share: float = 0.08):
        if voters < 200:
            raise ValueError("voters must be at least 200 (anomaly families need a population)")
        if not 0 <= anomaly_rate <= 0.2:
            raise ValueError("anomaly_rate must be within [0, 0.2]")
        if tps_per_village < 1:
            raise ValueError("tps_per_village must be >= 1")
        bad = [c for c in contests if c not in CONTESTS]
        if not contests or bad:
            raise ValueError(f"unknown contest(s) {bad}; expected some of {CONTESTS}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware, e.g. 2023-11-01T08:00+07:00")
        self.seed = seed
        self.start = start
        self.regions = list(regions) if regions else list(DEFAULT_REGIONS)
        self.voters = voters
        self.tps_per_village = tps_per_village
        self.anomaly_rate = anomaly_rate
        self.contests = tuple(contests)
        self.days = days
        self.moved_share = moved_share
        self._built = False

    # -- public API -----------------------------------------------------------------
    def registrations(self, n: int | None = None) -> Iterator[SimEvent]:
        """Registration events in event-time order (at most n)."""
        self._build()
        return itertools.islice((self._event(r) for r in self._regs), n)

    def results(self) -> Iterator[SimEvent]:
        """TPS tallies in submission-time order."""
        self._build()
        return (self._event(r) for r in self._results)

    def mixed(self, n: int | None = None) -> Iterator[SimEvent]:
        """Both streams interleaved in event-time order (at most n)."""
        merged = heapq.merge(self.registrations(), self.results(), key=lambda e: e.at)
        return itertools.islice(merged, n)

    def labels(self) -> list[dict]:
        """Every label, including those with no event of their own (volume silences)."""
        self._build()
        return list(self._labels)

    @property
    def households(self) -> list[Household]:
        """The simulated households (for tests and inspection)."""
        self._build()
        return self._households

    # -- construction -----------------------------------------------------------------
    def _rng(self, part: str) -> random.Random:
        # One independent stream per part: changing how results are drawn does not
        # change the registrations of the same seed.
        return SimRandom(f"pantau-sim:{self.seed}:{part}")

    def _build(self) -> None:
        if self._built:
            return
        rng = self._rng("population")
        per_village = self.tps_per_village * VOTERS_PER_TPS
        villages = choose_villages(rng, self.regions, math.ceil(self.voters / per_village) + 1)
        issuer = NikIssuer(rng)
        pop = PopulationBuilder(rng, issuer, self.moved_share)
        households: list[Household] = []
        tps_by_village: dict[str, list[str]] = {}
        remaining = self.voters
        for v in villages:
            if remaining <= 0:
                break
            quota = min(remaining, self.tps_per_village * rng.randint(190, 265))
            got: list[Household] = []
            count = 0
            while count < quota:
                hh = pop.household(v)
                got.append(hh)
                count += len(hh.voters)
            remaining -= count
            tps_by_village[v.code] = assign_tps(v, got, self.tps_per_village)
            households.extend(got)
        self._households = households

        book = LabelBook()
        clock = Clock(self._rng("registrations"), self.start, self.days)
        reg = RegistrationBuilder(clock.rng, clock, pop, issuer, households, tps_by_village,
                                  book, self.anomaly_rate)
        regs = reg.build()
        reg.secondary_labels()

        dpt: dict[str, list[int]] = {}
        for p in reg.registered.values():
            dpt.setdefault(p.tps, [0, 0])[0 if p.sex == "L" else 1] += 1
        village_of = {v.code: v for v in villages}
        tps = [TpsInfo(code, village_of[code[:10]], *dpt.get(code, (0, 0)))
               for codes in tps_by_village.values() for code in codes]
        res = ResultBuilder(self._rng("results"), np.random.default_rng([self.seed, 2024]),
                            tps, self.contests, book, self.anomaly_rate).build()

        ids = self._rng("ids")
        for recs in (regs, res):
            # Stable: equal instants keep construction order. A float key avoids slow
            # aware-datetime comparisons across time zones.
            recs.sort(key=lambda r: r.at.timestamp())
            for r in recs:
                r.value["event_id"] = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        self._labels = book.resolve()
        self._regs, self._results = regs, res
        self.registered = reg.registered
        self._built = True

    @staticmethod
    def _event(r: Rec) -> SimEvent:
        return SimEvent(r.stream, r.key, r.value, r.labels, r.at)


def _dump(path: Path, rows) -> int:
    n = 0
    with path.open("wb") as f:
        for row in rows:
            f.write(orjson.dumps(row))
            f.write(b"\n")
            n += 1
    return n


def write_files(out_dir: str | Path, seed: int = 1, voters: int = 20000, *,
                with_results: bool = True, **kwargs) -> dict[str, int]:
    """Write registrations.jsonl, results.jsonl (optional) and labels.jsonl into out_dir.

    kwargs go to Simulator (start, regions, tps_per_village, anomaly_rate, contests, days).
    Returns the number of lines written per file. Labels are written apart from events;
    without results, result labels are left out too.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = Simulator(seed=seed, voters=voters, **kwargs)
    counts = {"registrations.jsonl": _dump(out / "registrations.jsonl",
                                           (e.value for e in sim.registrations()))}
    if with_results:
        counts["results.jsonl"] = _dump(out / "results.jsonl", (e.value for e in sim.results()))
    labels = [lb for lb in sim.labels() if with_results or lb["stream"] != "results"]
    counts["labels.jsonl"] = _dump(out / "labels.jsonl", labels)
    return counts
