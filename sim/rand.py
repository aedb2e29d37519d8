"""A faster seeded random generator for the simulator.

random.Random draws integers by rejection sampling over getrandbits, in Python; the
simulator makes several hundred thousand such draws. Scaling one 53-bit float is about
twice as fast, equally deterministic by seed, and its bias (below 2**-40 for the small
ranges used here) is irrelevant to a simulation.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Sequence


class SimRandom(random.Random):
    """random.Random with float-based integer draws (same API)."""

    def _randbelow(self, n: int) -> int:  # used by randrange, shuffle, sample
        return int(self.random() * n)

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: Sequence):
        if not seq:
            raise IndexError("cannot choose from an empty sequence")
        return seq[int(self.random() * len(seq))]

    def choices(self, population, weights=None, *, cum_weights=None, k=1):
        if k == 1 and cum_weights is not None:  # the simulator's hot path
            return [population[bisect(cum_weights, self.random() * cum_weights[-1], 0, len(population) - 1)]]
        return super().choices(population, weights, cum_weights=cum_weights, k=k)
