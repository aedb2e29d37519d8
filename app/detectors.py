"""Which detectors run, built from settings: the one place that lists them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.settings import Settings


@dataclass
class Built:
    registration: list[Any] = field(default_factory=list)
    result: list[Any] = field(default_factory=list)
    regency: list[Any] = field(default_factory=list)
    person_block: Any = None
    household: Any = None
    volume: Any = None
    feedback: list[Any] = field(default_factory=list)


def build_detectors(settings: Settings, stores) -> Built:
    from models.tally_arithmetic import TallyArithmetic

    built = Built()
    built.result.append(
        TallyArithmetic(cap=settings.tps_cap, reserve_rate=settings.ballot_reserve, state=stores("tally_state"))
    )
    return built
