"""Unit tests of the building blocks: NIK rules, name variants, the clock."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from lokal import parse_nik

from sim import names
from sim.clock import Clock
from sim.nik import PLACEHOLDER_NIK, NikIssuer, nik_problems
from sim.results import tally_problems
from sim.simulator import Simulator


def test_issued_niks_parse_and_are_unique():
    issuer = NikIssuer(random.Random(1))
    born = dt.date(1990, 6, 5)
    niks = [issuer.nik("327301", born, "P") for _ in range(200)]
    assert len(set(niks)) == 200
    info = parse_nik(niks[0])
    assert info.valid and info.gender == "P" and info.birth_date == "1990-06-05"
    assert niks[0].startswith("3273014506")


@pytest.mark.parametrize("nik,birth,sex,problem", [
    ("3273014506900001", "1990-06-05", "P", None),
    ("3273010506900001", "1990-06-05", "P", "sex_mismatch"),
    ("3273014506900001", "1990-05-06", "P", "birth_date_mismatch"),
    ("1073014506900001", "1990-06-05", "P", "unknown_province"),
    ("3273014506900000", "1990-06-05", "P", "serial_0000"),
    ("1111111111111111", None, None, "patterned"),
    (PLACEHOLDER_NIK, None, None, "placeholder"),
    ("32730145069", None, None, "format"),
])
def test_nik_problems(nik, birth, sex, problem):
    found = nik_problems(nik, birth, sex)
    assert (problem in found) if problem else found == []


def test_name_variants_are_the_real_ones():
    rng = random.Random(3)
    seen = {names.name_variant(rng, "Muhammad Rizki Pratama") for _ in range(60)}
    assert {"M. Rizki Pratama", "Muhamad Rizki Pratama", "Muhammad R. Pratama"} <= seen
    assert names.name_variant(random.Random(1), "Dewi") == "Dewy"
    assert "Ratnasari" in {names.name_variant(rng, "Ratna Sari") for _ in range(20)}
    assert "Joesoef" in {names.name_variant(rng, "Yusuf") for _ in range(20)}
    assert names.strip_titles("Hj. Siti Aminah") == "Siti Aminah"
    assert names.strip_titles("Agus Santoso, S.H.") == "Agus Santoso"
    t = names.typo(random.Random(2), "Nurhayati")
    assert t != "Nurhayati" and abs(len(t) - len("Nurhayati")) <= 1


def test_clock_respects_after_and_avoid():
    start = dt.datetime(2023, 11, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    clock = Clock(random.Random(1), start, 14)
    after = start + dt.timedelta(days=5)
    blocked_day = (start + dt.timedelta(days=6)).date()
    for _ in range(300):
        t = clock.sample("32", after=after, avoid=lambda t: t.date() == blocked_day)
        assert t > after and t.date() != blocked_day
    wita = clock.sample("73")
    assert wita.utcoffset() == dt.timedelta(hours=8)
    with pytest.raises(ValueError):
        Clock(random.Random(1), dt.datetime(2023, 11, 1), 3)


def test_tally_problems():
    ok = {"registered": {"dpt": 200, "dptb": 2, "dpk": 1}, "voters": 160,
          "votes": {"01": 50, "02": 100, "03": 7}, "valid": 157, "invalid": 3}
    assert tally_problems(ok) == []
    assert tally_problems({**ok, "votes": {"01": 550, "02": 100, "03": 7}}) == ["sum_mismatch", "over_cap"]
    inflated = {**ok, "voters": 260, "valid": 257, "votes": {"01": 150, "02": 100, "03": 7}}
    assert tally_problems(inflated) == ["over_registered"]


def test_zero_rate_is_a_clean_baseline():
    sim = Simulator(seed=11, voters=800, regions=["32"], anomaly_rate=0.0)
    assert sim.labels() == []
    regs = list(sim.registrations())
    for e in regs:
        v = e.value["voter"]
        assert nik_problems(v["nik"], v["birth_date"] or None, v["sex"]) == []
    assert all(tally_problems(e.value) == [] for e in sim.results())
    assert any(e.value["revision"] == 1 for e in sim.results())


def test_sim_random_is_deterministic_and_uniform():
    from collections import Counter

    from sim.rand import SimRandom
    a, b = SimRandom("x"), SimRandom("x")
    assert [a.randint(1, 6) for _ in range(50)] == [b.randint(1, 6) for _ in range(50)]
    r = SimRandom(1)
    counts = Counter(r.randint(1, 6) for _ in range(60000))
    assert set(counts) == {1, 2, 3, 4, 5, 6} and min(counts.values()) > 9400
    picks = Counter(r.choices("abc", cum_weights=(0.5, 0.75, 1.0))[0] for _ in range(40000))
    assert 19000 < picks["a"] < 21000 and 9000 < picks["c"] < 11000
    assert sorted(r.sample(range(10), 10)) == list(range(10))
    with pytest.raises(IndexError):
        r.choice([])
