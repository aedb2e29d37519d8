"""VolumeModel: one test per robustness point, plus a generic check of every River-style model."""

from __future__ import annotations

import importlib
import inspect
import math
import pickle
import pkgutil
import random
import sys
from datetime import datetime, timedelta, timezone

import pytest
from river import base as river_base

import models
from models.volume import VolumeModel

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def at(i: int, minutes: int = 5) -> datetime:
    return T0 + timedelta(minutes=minutes * i)


def seasonal_counts(n: int, seed: int = 0, minutes: int = 5, base: float = 40.0) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = at(i, minutes)
        mean = base * (1.0 + 0.6 * math.sin(2 * math.pi * (t.hour + t.minute / 60) / 24))
        # Poisson via a normal approximation is enough here; counts must be integers.
        out.append(float(max(0, round(rng.gauss(mean, math.sqrt(mean))))))
    return out


def trained(values, minutes: int = 5, **params) -> VolumeModel:
    m = VolumeModel(**params)
    for i, v in enumerate(values):
        m.learn_one({"timestamp": at(i, minutes), "value": v})
    return m


def score(m: VolumeModel, i: int, v: float, minutes: int = 5) -> float:
    return m.score_one({"timestamp": at(i, minutes), "value": v})


# -- robustness ------------------------------------------------------------------------


def test_constant_series_is_quiet_and_a_change_is_loud():
    m = trained([7.5] * 500)
    assert score(m, 500, 7.5) == pytest.approx(0.0, abs=1e-9)
    assert score(m, 500, 9.0) > 0.6
    assert all(math.isfinite(getattr(m, k)) for k in ("mad_s", "mad_p", "slow_s", "slow_p"))
    # A constant count is still read with Poisson noise in mind: 7 -> 9 is ordinary.
    counts = trained([7.0] * 500)
    assert score(counts, 500, 9.0) < 0.3 < 0.6 < score(counts, 500, 30.0)


def test_runs_of_zeros_keep_scales_non_negative_and_finite():
    values = [0.0] * 300 + [3.0, 0.0, 1.0] * 50 + [0.0] * 300
    m = trained(values)
    for name in ("mad_s", "mad_p", "slow_s", "slow_p", "err_s", "err_p"):
        assert getattr(m, name) >= 0.0 and math.isfinite(getattr(m, name)), name
    assert all(v >= 0.0 for v in m.slot_mad)
    s = score(m, len(values), 0.0)
    assert 0.0 <= s < 0.5


def test_huge_values_score_high_and_do_not_break_state():
    values = seasonal_counts(600)
    m = trained(values)
    for huge in (1e12, 1e300, sys.float_info.max, -sys.float_info.max):
        s = score(m, 600, huge)
        assert 0.9 < s <= 1.0
        m.learn_one({"timestamp": at(600), "value": huge})
    assert math.isfinite(m.level_p) and math.isfinite(m.level_s)
    assert math.isfinite(m.expected({"timestamp": at(601)}))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), None, "12", True])
def test_non_finite_or_non_numeric_values_are_ignored_and_counted(bad):
    m = trained(seasonal_counts(300))
    before = m.state_dict()["state"]
    assert m.score_one({"timestamp": at(300), "value": bad}) == 0.0
    m.learn_one({"timestamp": at(300), "value": bad})
    after = m.state_dict()["state"]
    assert after["n_ignored"] == before["n_ignored"] + 1
    assert {k: v for k, v in after.items() if k != "n_ignored"} == {
        k: v for k, v in before.items() if k != "n_ignored"}


def test_gaps_in_time_do_not_change_the_inferred_interval_or_crash():
    values = seasonal_counts(800)
    m = VolumeModel()
    for i, v in enumerate(values):
        # A two-day hole in the middle.
        j = i if i < 400 else i + 2 * 288
        m.learn_one({"timestamp": at(j), "value": v})
    assert m.interval == 300.0
    assert 0.0 <= score(m, 800 + 2 * 288, values[-1]) < 0.5


def test_out_of_order_timestamps_are_learned_and_do_not_move_time_backwards():
    values = seasonal_counts(600)
    order = list(range(600))
    rng = random.Random(3)
    for k in range(0, 600, 10):  # shuffle within blocks of 10
        block = order[k:k + 10]
        rng.shuffle(block)
        order[k:k + 10] = block
    m = VolumeModel()
    for i in order:
        m.learn_one({"timestamp": at(i), "value": values[i]})
    assert m.n_seen == 600
    assert m.last_t == at(599).timestamp()
    assert m.interval is not None and m.interval > 0
    assert score(m, 600, values[-1]) < score(m, 600, 4 * max(values))


def test_level_shift_is_adopted_instead_of_alarming_forever():
    rng = random.Random(5)
    m = VolumeModel()
    scores = []
    for i in range(1200):
        v = rng.gauss(50, 2) if i < 600 else rng.gauss(90, 2)
        x = {"timestamp": at(i), "value": v}
        scores.append(m.score_one(x))
        m.learn_one(x)
    assert scores[600] > 0.7  # the shift itself is an anomaly
    assert max(scores[700:]) < 0.6  # ... but the new level becomes normal
    assert m.n_shifts >= 1


def test_warm_up_scores_zero_and_says_so():
    m = VolumeModel(grace_period=30)
    for i in range(30):
        x = {"timestamp": at(i), "value": 1000.0 if i % 7 == 0 else 1.0}
        assert m.score_one(x) == 0.0
        assert not m.warm
        m.learn_one(x)
    assert m.warm and m.n_seen == 30


def test_anomalies_are_kept_out_of_the_baseline():
    values = seasonal_counts(2016)  # one week of 5-minute buckets
    clean = trained(values)
    dirty = VolumeModel()
    for i, v in enumerate(values + [5000.0] * 3):
        dirty.learn_one({"timestamp": at(i), "value": v})
    x = {"timestamp": at(2016 + 3)}
    # Three huge buckets barely move what the model expects next.
    assert dirty.expected(x) == pytest.approx(clean.expected(x), rel=0.1)
    # A model without protection would have moved by hundreds.
    assert dirty.expected(x) < 2 * max(values)


def test_spike_scores_higher_than_normal():
    values = seasonal_counts(2016)
    m = trained(values)
    normal = [score(m, 2016, v) for v in values[-288:]]  # yesterday's values, same hours
    spike = score(m, 2016, 4 * max(values))
    assert spike > 0.7
    assert spike > max(normal)


def test_drop_to_zero_scores_higher_than_normal():
    values = seasonal_counts(2016)
    m = trained(values)
    t = 2016 + 72  # 06:00, the busy hour: about 64 expected
    assert m.expected({"timestamp": at(t)}) > 40
    assert m.direction({"timestamp": at(t), "value": 0.0}) == "drop"
    silence = score(m, t, 0.0)
    normal = score(m, t, round(m.expected({"timestamp": at(t)})))
    assert silence > 0.7 > normal


def test_scores_are_in_unit_interval_over_awkward_input():
    rng = random.Random(11)
    m = VolumeModel(grace_period=5)
    for i in range(3000):
        kind = rng.random()
        v = (rng.choice([0.0, -1e9, 1e15, float("nan"), 3.5]) if kind < 0.05 else
             rng.expovariate(0.1) if kind < 0.5 else float(rng.randint(0, 50)))
        x = {"timestamp": at(i, 1) if rng.random() > 0.05 else None, "value": v}
        s = m.score_one(x)
        assert 0.0 <= s <= 1.0
        m.learn_one(x)


def test_no_ties_at_the_top_for_ever_larger_spikes():
    m = trained(seasonal_counts(2016))
    spikes = [100 * 10 ** k for k in range(0, 300, 10)]
    scores = [score(m, 2016, s) for s in spikes]
    assert all(a < b for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] < 1.0


def test_memory_is_bounded_whatever_the_length():
    def size(m):
        return len(pickle.dumps(m.state_dict()))

    short = trained(seasonal_counts(1000, minutes=1), minutes=1)
    long = trained(seasonal_counts(8000, minutes=1), minutes=1)
    assert size(long) <= size(short) + 64
    assert len(long.gaps) <= long.interval_window


def test_sampling_interval_is_inferred():
    for minutes in (1, 5, 60):
        m = trained(seasonal_counts(200, minutes=minutes), minutes=minutes)
        assert m.interval == 60.0 * minutes


def test_non_count_value_restarts_on_raw_values():
    m = trained(seasonal_counts(300))
    assert m.is_count
    m.learn_one({"timestamp": at(300), "value": 2.5})
    assert not m.is_count and m.n_restarts == 1 and m.n_seen == 1


def test_state_round_trip_gives_identical_scores():
    values = seasonal_counts(1000)
    m = trained(values[:900])
    copy = VolumeModel.from_state_dict(pickle.loads(pickle.dumps(m.state_dict())))
    for i, v in enumerate(values[900:], start=900):
        x = {"timestamp": at(i), "value": v}
        assert copy.score_one(x) == m.score_one(x)
        m.learn_one(x)
        copy.learn_one(x)


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError):
        VolumeModel(level_alpha=0)
    with pytest.raises(ValueError):
        VolumeModel(shift_patience=0)


# -- every River-style model in models/ ------------------------------------------------


def river_models():
    found = []
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"models.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == module.__name__ and issubclass(cls, river_base.Estimator)
                    and not inspect.isabstract(cls)):
                found.append(cls)
    return found


def test_volume_model_is_found_by_the_generic_check():
    assert VolumeModel in river_models()


@pytest.mark.parametrize("cls", river_models(), ids=lambda c: c.__name__)
def test_river_model_prequential_contract(cls):
    params = next(iter(cls._unit_test_params()))
    model = cls(**params)
    rng = random.Random(1)
    level = 10.0
    for i in range(1500):
        level = max(0.0, level + rng.gauss(0, 0.5))
        x = {"timestamp": at(i), "value": rng.gauss(level, 1.0) if rng.random() > 0.01 else level * 20}
        s = model.score_one(x)
        assert isinstance(s, float) and 0.0 <= s <= 1.0
        model.learn_one(x)
    fresh = model.clone()
    assert type(fresh) is cls
    assert fresh._get_params() == model._get_params()
    assert fresh.score_one({"timestamp": at(0), "value": 1.0}) == 0.0 or not hasattr(fresh, "warm")


def sparse_counts(n: int, seed: int = 2) -> list[float]:
    """Office hours only, about 2 events per 15-minute bucket: many empty buckets are normal."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = at(i, 15)
        lam = 2.0 if 8 <= t.hour < 16 else 0.05
        # Poisson by counting exponential arrivals.
        k, acc = 0, rng.expovariate(1.0)
        while acc < lam:
            k += 1
            acc += rng.expovariate(1.0)
        out.append(float(k))
    return out


def test_long_silence_of_a_sparse_series_builds_up_to_an_alarm():
    values = sparse_counts(14 * 96)  # two weeks of 15-minute buckets
    m = trained(values, minutes=15)
    start = 14 * 96 + 9 * 4  # 09:00 on day 15
    scores = []
    for i in range(start, start + 16):  # four silent office hours
        x = {"timestamp": at(i, 15), "value": 0.0}
        scores.append(m.score_one(x))
        m.learn_one(x)
    # One empty bucket is ordinary here; hours of them are not.
    assert scores[0] < 0.5
    assert max(scores) > 0.6
    assert scores.index(max(scores)) > 0
    # A whole empty night (as every night is) never looks like that.
    m = trained(values[:-8 * 4], minutes=15)
    night = []
    for i in range(14 * 96 - 8 * 4, 14 * 96 + 8 * 4):  # 16:00 to 08:00
        x = {"timestamp": at(i, 15), "value": 0.0}
        night.append(m.score_one(x))
        m.learn_one(x)
    assert max(night) < 0.5


def test_lasting_silence_is_adopted_not_alarmed_forever():
    values = sparse_counts(14 * 96)
    m = trained(values, minutes=15)
    shifts = m.n_shifts
    scores = []
    for i in range(14 * 96, 16 * 96):  # two silent days
        x = {"timestamp": at(i, 15), "value": 0.0}
        scores.append(m.score_one(x))
        m.learn_one(x)
    assert m.n_shifts > shifts
    assert max(scores[-24:]) < 0.6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_score_learn_one_equals_the_four_calls(seed):
    """The monitor's one-call path gives exactly what score_one, expected,
    direction and learn_one give, on a random count series with silences,
    spikes, gaps, repeats, out-of-order times and a switch to raw values."""
    import random

    rng = random.Random(seed)
    a, b = VolumeModel(), VolumeModel()
    t = 1_700_000_000.0
    for i in range(3000):
        t += rng.choice([300.0] * 20 + [600.0, 3600.0, -300.0, 0.0])
        base = 30 + 25 * math.sin(2 * math.pi * (t % 86400) / 86400)
        r = rng.random()
        v = 0.0 if r < 0.1 else float(rng.randint(200, 400)) if r < 0.12 else float(max(0, round(rng.gauss(base, 5))))
        if i == 2500:
            v = 2.5  # no longer a count series: the model restarts on raw values
        elif i > 2500 and r < 0.02:
            v = float("nan")
        x = {"timestamp": t, "value": v}
        want = (a.score_one(x), a.expected(x), a.direction(x))
        a.learn_one(x)
        got = b.score_learn_one(t, v)
        assert got[2] == want[2]
        assert got[0] == pytest.approx(want[0], abs=1e-9) and got[1] == pytest.approx(want[1], abs=1e-9)
    assert a.state_dict() == b.state_dict()


def silence_then_back(days_before: int = 7, silent_days: int = 2, back: int = 48, factor: float = 1.0):
    """5-minute counts with a daily rhythm, ``silent_days`` of nothing, then ``back``
    buckets at ``factor`` x the rhythm; also the indexes where the silence starts and ends."""
    n, gap = days_before * 288, silent_days * 288
    values = seasonal_counts(n + gap + back, seed=5)
    return values[:n] + [0.0] * gap + [round(v * factor) for v in values[n + gap:]], n, n + gap


def run(values, start: int = 0, model: VolumeModel | None = None) -> tuple[VolumeModel, list[float], list[tuple]]:
    m = model or VolumeModel()
    scores, out = [], []
    for i, v in enumerate(values[start:], start):
        x = {"timestamp": at(i), "value": v}
        scores.append(m.score_one(x))
        out.append((m.expected(x), m.direction(x)))
        m.learn_one(x)
    return m, scores, out


def test_return_to_the_usual_level_after_an_adopted_silence_is_not_a_spike():
    values, silence, back = silence_then_back()
    m, scores, out = run(values)
    assert max(scores[silence:silence + 24]) >= 0.75  # the silence alarms
    assert m.n_shifts >= 1 and max(scores[back - 24:back]) < 0.6  # then it is the norm
    # The office reopens at its usual pace: expected is the old level again, no spike.
    assert max(scores[back:]) < 0.6, scores[back:back + 6]
    assert abs(out[back][0] - values[back]) < 0.3 * values[back]


def test_a_new_level_after_an_adopted_silence_is_still_flagged():
    values, _, back = silence_then_back(factor=5.0)  # back at five times the old pace
    _, scores, out = run(values)
    assert scores[back] >= 0.75 and out[back][1] == "spike"
    values, _, back = silence_then_back(factor=0.05)  # a trickle: not the old regime
    _, scores, _ = run(values)
    assert scores[back] < 0.6


def test_a_sparse_series_silence_alarms_before_it_is_adopted():
    # About one event every two 5-minute buckets in office hours (a small regency):
    # six silent office hours must alarm, not be taken for the norm first.
    rng = random.Random(3)
    values = []
    start = 15 * 288 + 9 * 12  # Tuesday of the third week, 09:00
    for i in range(start):
        t = at(i)
        lam = 0.5 if 8 <= t.hour < 16 and t.weekday() < 5 else 0.02
        k, acc = 0, rng.expovariate(1.0)
        while acc < lam:
            k, acc = k + 1, acc + rng.expovariate(1.0)
        values.append(float(k))
    m = trained(values)
    _, scores, _ = run([0.0] * (start + 6 * 12), start=start, model=m)
    # Still alarming after six silent hours: about 36 events were due; the
    # evidence grows slowly, and adopting the silence earlier would end the
    # alarm just as it became sure.
    assert scores[-1] >= 0.6 and scores[-1] == max(scores)


def test_score_learn_one_equals_the_four_calls_through_an_adopted_silence():
    values, _, back = silence_then_back(back=100)
    a, b = VolumeModel(), VolumeModel()
    for i, v in enumerate(values):
        x = {"timestamp": at(i), "value": v}
        want = (a.score_one(x), a.expected(x), a.direction(x))
        a.learn_one(x)
        assert b.score_learn_one(at(i).timestamp(), v) == want, i
    assert a.state_dict() == b.state_dict() and a.n_shifts >= 1


def test_state_of_version_1_still_loads():
    m = trained(seasonal_counts(600))
    old = m.state_dict()
    old["version"] = "1"
    for name in ("pre_silence", "silence_from", "zero_wp", "zero_wn"):
        del old["state"][name]
    restored = VolumeModel().load_state_dict(old)
    assert restored.pre_silence is None and restored.n_seen == m.n_seen



def test_a_quiet_day_of_the_week_is_learned_as_quiet():
    # An office busy on weekdays and nearly idle on Sundays (a tenth of the pace):
    # after four Sundays its mostly empty office hours are the norm, though
    # those hours are busy on every other day.
    rng = random.Random(8)
    values = []
    for i in range(42 * 288):
        t = at(i)  # T0 is a Monday
        lam = (0.3 if t.weekday() == 6 else 3.0) if 8 <= t.hour < 16 else 0.05
        k, acc = 0, rng.expovariate(1.0)
        while acc < lam:
            k, acc = k + 1, acc + rng.expovariate(1.0)
        values.append(float(k))
    _, scores, _ = run(values)
    for sunday in (34, 41):  # the fifth and sixth (without the hour of the week's share: 0.64, 0.59)
        assert max(scores[sunday * 288:(sunday + 1) * 288]) < 0.55
