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
