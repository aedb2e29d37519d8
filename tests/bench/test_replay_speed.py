"""The national bench sample: what its two orders hold."""

from collections import Counter

import pytest

from app.demo import interleaved
from bench.replay_speed import national_tallies


@pytest.fixture(scope="module")
def templates():
    return [e.value for e in interleaved(1) if e.stream == "results"][:40]


@pytest.mark.parametrize("n", [1000, 5041])
def test_interleaved_order_spreads_the_same_tallies_over_regencies_of_at_most_1680_tps(templates, n):
    by_regency = list(national_tallies(templates, n, order="regency"))
    spread = list(national_tallies(templates, n, order="interleaved"))
    assert len({t["tps"] for t in spread}) == n  # no TPS twice
    for t in spread:
        region = t["region"]
        assert t["tps"].startswith(region["village"]) and region["village"].startswith(region["district"])
        assert region["district"].startswith(region["regency"])
    sizes = Counter(t["region"]["regency"] for t in spread)
    assert len(sizes) == -(-n // 1680) and max(sizes.values()) <= 1680
    # Consecutive tallies come from different regencies (when there are several), as on an election evening.
    if len(sizes) > 1:
        assert spread[0]["region"]["regency"] != spread[1]["region"]["regency"]
    # The same counts in the same order: only where each TPS sits differs.
    assert [t["votes"] for t in spread] == [t["votes"] for t in by_regency]


def test_an_unknown_order_is_refused(templates):
    with pytest.raises(ValueError, match="order must be"):
        next(national_tallies(templates, 10, order="random"))
