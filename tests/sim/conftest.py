"""Shared simulator fixtures: one default-size simulation per test session (it takes a
few seconds), and helpers that see the output only as a consumer would."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sim.simulator import SimEvent, Simulator


@dataclass
class Output:
    """A simulation's events and labels, indexed for tests."""

    regs: list[SimEvent]
    results: list[SimEvent]
    labels: list[dict]
    by_id: dict[str, SimEvent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {e.value["event_id"]: e for e in self.regs + self.results}

    def legit(self, stream: str = "registrations") -> list[SimEvent]:
        """Events that are no anomaly's injected record."""
        return [e for e in (self.regs if stream == "registrations" else self.results) if not e.labels]

    def of(self, detector: str) -> list[dict]:
        return [lb for lb in self.labels if lb["detector"] == detector]


def collect(sim: Simulator) -> Output:
    return Output(list(sim.registrations()), list(sim.results()), sim.labels())


@pytest.fixture(scope="session")
def default_sim() -> Simulator:
    return Simulator()


@pytest.fixture(scope="session")
def out(default_sim: Simulator) -> Output:
    return collect(default_sim)



