"""Internal event records and the label book.

Labels are built while events are still being generated, before event ids exist
(ids are given after the final time sort so they carry no hint of injection order).
So a label holds references to records, and `LabelBook.resolve()` turns them into the
docs/contracts.md label objects once ids are known.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .clock import iso


@dataclass(slots=True, eq=False)
class Rec:
    """One event under construction."""

    stream: str  # "registrations" | "results"
    at: dt.datetime
    value: dict
    key: str
    injected: bool = False
    person: object | None = None  # sim.population.Person for registrations
    labels: list[dict] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return self.value["event_id"]


@dataclass(slots=True, eq=False)
class _Pending:
    detector: str
    kind: str
    records: list[Rec]
    stream: str
    region: dict
    window: tuple[dt.datetime, dt.datetime] | None
    source: str | None
    attach: list[Rec]


class LabelBook:
    """Collects labels; each is attached to the records that are its injected events."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self.labels: list[dict] = []

    def add(self, detector: str, kind: str, records: list[Rec], *, stream: str, region: dict,
            window: tuple[dt.datetime, dt.datetime] | None = None, source: str | None = None,
            attach: list[Rec] | None = None) -> None:
        """records: event_ids order (injected record first); attach: the records that
        carry this label in SimEvent.labels (default: the first record only)."""
        if attach is None:
            attach = records[:1]
        self._pending.append(_Pending(detector, kind, list(records), stream,
                                      {k: v for k, v in region.items() if v is not None},
                                      window, source, list(attach)))

    def has(self, rec: Rec, detector: str) -> bool:
        """Whether a pending label of `detector` lists `rec` first."""
        return any(p.detector == detector and p.records and p.records[0] is rec
                   for p in self._pending)

    def resolve(self) -> list[dict]:
        """Label objects in creation order, with ids; also attaches them to records."""
        self.labels = []
        for i, p in enumerate(self._pending, start=1):
            label = {
                "label_id": f"L{i:06d}",
                "detector": p.detector,
                "kind": p.kind,
                "event_ids": [r.event_id for r in p.records],
                "stream": p.stream,
                "region": p.region,
                "window": {"start": iso(p.window[0]), "end": iso(p.window[1])} if p.window else None,
                "source": p.source,
            }
            self.labels.append(label)
            for r in p.attach:
                r.labels.append(label)
        return self.labels
