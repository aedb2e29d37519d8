"""The bench commands' defaults are usable values (a frozen, slotted Settings class holds
descriptors, not defaults, on the class itself)."""

from __future__ import annotations

from app.settings import Settings
from bench import latency, throughput


def test_throughput_defaults_to_the_settings_fetch_wait():
    assert throughput.parse_args([]).waits == [Settings().fetch_max_wait_ms]
    assert throughput.parse_args(["--fetch-max-wait-ms", "100,1500"]).waits == [100, 1500]


def test_latency_defaults_to_the_settings_fetch_wait():
    assert latency.parse_args([]).fetch_max_wait_ms == Settings().fetch_max_wait_ms


def test_latency_runs_at_half_of_what_the_whole_pipeline_sustains():
    # The second stage lags behind the input: its rate, when lower, is the sustainable one.
    assert throughput.sustainable_rate(202.0, 98.0) == (98.0, "end to end")
    assert throughput.sustainable_rate(90.0, 98.0) == (90.0, "input")
    assert throughput.sustainable_rate(202.0, None) == (202.0, "input")  # 1b not run, or it timed out


def test_digit_eval_regencies_are_what_they_say():
    from bench.digit_eval import regency

    honest = regency([1], 200, 3, 5.0)
    assert len(honest) == 200 and all(r[0] == sum(r[1]) and r[0] <= r[2] <= r[3] for r in honest)
    rounded = regency([1], 200, 3, 5.0, fabricated=1.0, step=10)
    assert all(v % 10 == 0 for r in rounded for v in r[1]) and all(r[0] == sum(r[1]) for r in rounded)
    # Same seed, same regency: both nulls judge the same data.
    assert regency([2], 50, 4, None) == regency([2], 50, 4, None)
