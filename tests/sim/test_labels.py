"""Labels: the contract format, kept apart from events, one or more per family, and each
injected record really is what its label says."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import orjson
import pytest

from sim.nik import PLACEHOLDER_NIK, nik_problems
from sim.population import is_default_date
from sim.registrations import ineligible

FAMILIES = {"volume", "duplicate_nik", "duplicate_person", "nik_conflict", "nik_integrity",
            "eligibility", "household", "birthdate_heaping", "tally_arithmetic", "ocr_misread",
            "revision", "peer_outlier"}
KEYS = {"label_id", "detector", "kind", "event_ids", "stream", "region", "window", "source"}


def _keys(obj, found: set) -> set:
    if isinstance(obj, dict):
        for k, v in obj.items():
            found.add(k)
            _keys(v, found)
    return found


def test_every_family_is_present(out):
    counts = Counter(lb["detector"] for lb in out.labels)
    assert FAMILIES <= set(counts), FAMILIES - set(counts)
    assert counts["duplicate_person"] >= 50 and counts["duplicate_nik"] >= 50


def test_label_format(out):
    ids = [lb["label_id"] for lb in out.labels]
    assert len(set(ids)) == len(ids)
    for lb in out.labels:
        assert set(lb) == KEYS, lb
        assert lb["stream"] in ("registrations", "results")
        assert lb["region"]["province"].isdigit() and len(lb["region"]["province"]) == 2
        for e in lb["event_ids"]:
            assert out.by_id[e].stream == lb["stream"]
        if lb["detector"] == "volume":
            assert lb["event_ids"] == [] and lb["window"]
            assert dt.datetime.fromisoformat(lb["window"]["start"]) < dt.datetime.fromisoformat(lb["window"]["end"])
        else:
            assert lb["event_ids"], lb
            first = out.by_id[lb["event_ids"][0]]
            assert lb in first.labels, "the injected record comes first and carries its label"


def test_labels_never_inside_events(out):
    label_id = re.compile(rb'"L[0-9]{6}"')
    for e in out.regs + out.results:
        keys = _keys(e.value, set())
        assert not keys & {"label", "labels", "label_id", "anomaly", "injected", "kind", "detector"}
        assert not label_id.search(orjson.dumps(e.value))


def _pair(out, lb):
    return out.by_id[lb["event_ids"][0]].value, out.by_id[lb["event_ids"][1]].value


def test_duplicate_nik_is_same_person_elsewhere(out):
    for lb in out.of("duplicate_nik"):
        new, old = _pair(out, lb)
        assert new["voter"]["nik"] == old["voter"]["nik"]
        assert new["voter"]["birth_date"] == old["voter"]["birth_date"]
        assert new["tps"] != old["tps"]


def test_duplicate_person_differs_only_plausibly(out):
    kinds = Counter()
    for lb in out.of("duplicate_person"):
        new, old = _pair(out, lb)
        a, b = new["voter"], old["voter"]
        assert a["nik"] != b["nik"] and a["sex"] == b["sex"]
        assert (a["birth_place"] or "").casefold() == (b["birth_place"] or "").casefold()
        if lb["kind"] == "swapped_birth_date":
            y, m, d = b["birth_date"].split("-")
            assert a["birth_date"] == f"{y}-{d}-{m}"
        else:
            assert a["birth_date"] == b["birth_date"]
        if lb["kind"] != "reissued_nik" and lb["kind"] != "swapped_birth_date":
            assert a["name"] != b["name"]
        assert nik_problems(a["nik"], a["birth_date"], a["sex"]) == []
        kinds[lb["kind"]] += 1
    assert {"name_variant", "typo", "title_honorific", "swapped_birth_date", "married_name"} <= set(kinds)


def test_nik_conflict_is_another_person(out):
    kinds = Counter()
    for lb in out.of("nik_conflict"):
        new, old = _pair(out, lb)
        assert new["voter"]["nik"] == old["voter"]["nik"]
        a, b = new["voter"], old["voter"]
        assert (a["name"], a["birth_date"]) != (b["name"], b["birth_date"])
        kinds[lb["kind"]] += 1
    assert kinds["placeholder"] >= 2 and kinds["nik_reused"] >= 10
    assert any(out.by_id[lb["event_ids"][0]].key == PLACEHOLDER_NIK for lb in out.of("nik_integrity"))


def test_nik_integrity_records_are_broken(out):
    kinds = Counter()
    for lb in out.of("nik_integrity"):
        v = out.by_id[lb["event_ids"][0]].value["voter"]
        assert nik_problems(v["nik"], v["birth_date"] or None, v["sex"] or None), v
        kinds[lb["kind"]] += 1
    assert {"birth_date_mismatch", "female_without_40", "unknown_province", "patterned", "placeholder"} <= set(kinds)
    assert any(out.by_id[lb["event_ids"][0]].key[:2] in ("10", "30", "37") for lb in out.of("nik_integrity"))


def test_eligibility_records_are_ineligible(out):
    kinds = Counter(lb["kind"] for lb in out.of("eligibility"))
    assert kinds["under_age"] >= 5 and kinds["implausible_age"] >= 2
    for lb in out.of("eligibility"):
        assert ineligible(out.by_id[lb["event_ids"][0]].value["voter"])


def test_household_burst(out):
    for lb in out.of("household"):
        evs = [out.by_id[e] for e in lb["event_ids"]]
        assert len(evs) >= 25
        assert len({e.value["voter"]["nkk"] for e in evs}) == 1
        assert max(e.at for e in evs) - min(e.at for e in evs) < dt.timedelta(hours=3)


def test_birthdate_heaping(out):
    (lb,) = out.of("birthdate_heaping")
    evs = [out.by_id[e] for e in lb["event_ids"]]
    assert len(evs) >= 40
    assert all(is_default_date(dt.date.fromisoformat(e.value["voter"]["birth_date"])) for e in evs)
    assert {e.value["region"]["regency"] for e in evs} == {lb["region"]["regency"]}
    start, end = (dt.datetime.fromisoformat(lb["window"][k]) for k in ("start", "end"))
    assert all(start <= e.at < end for e in evs)
    # Far above the regency's own baseline outside the window.
    base = [e for e in out.legit() if e.value["region"]["regency"] == lb["region"]["regency"]
            and e.value["voter"]["birth_date"] and e.value["action"] == "add"]
    share = sum(is_default_date(dt.date.fromisoformat(e.value["voter"]["birth_date"])) for e in base) / len(base)
    assert share < 0.15


def _window(lb):
    return tuple(dt.datetime.fromisoformat(lb["window"][k]) for k in ("start", "end"))


def test_volume_spike_and_silences(out):
    spikes = [lb for lb in out.of("volume") if lb["kind"] == "spike"]
    silences = [lb for lb in out.of("volume") if lb["kind"] == "silence"]
    assert spikes and len(silences) >= 2
    for lb in spikes:
        start, end = _window(lb)
        inside = [e for e in out.regs if start <= e.at < end and e.value["region"]["regency"] == lb["region"]["regency"]
                  and e.value["source"] == lb["source"]]
        injected = [e for e in inside if lb in e.labels]
        assert len(injected) >= 60 and len(injected) > 0.9 * len(inside)  # a few legit ones may coincide
        assert all(start <= e.at < end for e in out.regs if lb in e.labels)
    for lb in silences:
        start, end = _window(lb)
        assert end - start >= dt.timedelta(hours=6)
        assert 8 <= start.hour <= 10 and start.weekday() < 5

        def in_series(e, lb=lb):
            r = e.value["region"]
            return all(r.get(k) == v for k, v in lb["region"].items()) and lb["source"] in (None, e.value["source"])

        assert not [e for e in out.regs if start <= e.at < end and in_series(e)]
        # The same hours a week earlier or later were busy: the silence is an anomaly.
        week = dt.timedelta(days=7)
        other = [e for e in out.regs if in_series(e)
                 and any(start + k * week <= e.at < end + k * week for k in (-1, 1))]
        assert len(other) >= 10


def test_injected_records_are_after_what_they_duplicate(out):
    for lb in out.labels:
        if lb["detector"] in ("duplicate_nik", "duplicate_person", "nik_conflict", "revision"):
            first, *rest = (out.by_id[e] for e in lb["event_ids"])
            assert all(first.at > r.at for r in rest), lb


@pytest.mark.parametrize("seed,voters,days", [(2, 2000, 28), (3, 1000, 14)])
def test_silences_are_where_events_were_due_even_in_small_simulations(seed, voters, days):
    """A small simulation spreads few events over many series: a silence is put in a
    series busy enough (or made long enough) that its absence is noticeable."""
    from sim.simulator import Simulator

    sim = Simulator(seed=seed, voters=voters, days=days)
    regs = list(sim.registrations())
    period_end = sim.start + dt.timedelta(days=days)
    silences = [lb for lb in sim.labels() if lb["detector"] == "volume" and lb["kind"] == "silence"]
    assert len(silences) == 2
    for lb in silences:
        start, end = _window(lb)

        def in_series(e, lb=lb):
            r = e.value["region"]
            return all(r.get(k) == v for k, v in lb["region"].items()) and lb["source"] in (None, e.value["source"])

        times = [e.at for e in regs if in_series(e)]
        assert not [t for t in times if start <= t < end]
        # The same hours on other working days, where they do not overlap the silence.
        usual = []
        for k in range(-days, days + 1):
            s2, e2 = start + dt.timedelta(days=k), end + dt.timedelta(days=k)
            if k and sim.start <= s2 and e2 <= period_end and not (s2 < end and start < e2) and s2.weekday() < 5:
                usual.append(sum(s2 <= t < e2 for t in times))
        assert usual and sorted(usual)[len(usual) // 2] >= 30, (lb, sorted(usual))
