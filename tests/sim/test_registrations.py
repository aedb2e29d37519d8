"""Registrations: NIKs encode what they should, legitimate look-alikes exist unlabelled,
and the daily rhythm follows office hours."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from lokal import parse_nik

from sim.nik import nik_problems
from sim.population import age_on
from sim.registrations import ineligible

parse_date = dt.date.fromisoformat



def test_legit_niks_encode_region_birth_date_and_sex(out):
    checked = 0
    for e in out.legit():
        v = e.value["voter"]
        info = parse_nik(v["nik"], reference_date=dt.date(2024, 2, 14))
        assert info.valid, (v["nik"], info.errors)
        assert info.serial != "0000"
        assert info.gender == v["sex"]
        if v["birth_date"]:
            b = parse_date(v["birth_date"])
            y, m, d = info.birth_date.split("-")
            assert (int(m), int(d), int(y) % 100) == (b.month, b.day, b.year % 100)
            checked += 1
        assert nik_problems(v["nik"], v["birth_date"] or None, v["sex"]) == []
    assert checked > 15000


def test_most_live_where_their_nik_was_issued_some_moved(out):
    adds = [e.value for e in out.legit() if e.value["action"] == "add"]
    moved = sum(v["voter"]["nik"][:6] != v["region"]["district"] for v in adds)
    assert 0.03 * len(adds) < moved < 0.2 * len(adds)


def test_nik_unique_per_person(out):
    """A NIK is added twice legitimately only after its removal (a voter who moved)."""
    history = defaultdict(list)
    for e in out.legit():
        history[e.key].append(e.value)
    for nik, evs in history.items():
        adds = [i for i, v in enumerate(evs) if v["action"] == "add"]
        names = {(v["voter"]["birth_date"], v["voter"]["sex"]) for v in evs}
        assert len(names) == 1, nik  # one person per NIK
        for a, b in zip(adds, adds[1:]):
            assert any(evs[i]["action"] == "remove" for i in range(a + 1, b)), nik
        assert evs[0]["action"] == "add"


def test_nkk_region_encoded_and_households_realistic(out, default_sim):
    adds = [e.value for e in out.legit() if e.value["action"] == "add"]
    with_nkk = [v for v in adds if v["voter"]["nkk"]]
    assert all(len(v["voter"]["nkk"]) == 16 and v["voter"]["nkk"].isdigit() for v in with_nkk)
    local = sum(v["voter"]["nkk"][:6] == v["region"]["district"] for v in with_nkk)
    assert local > 0.97 * len(with_nkk)
    sizes = Counter(v["voter"]["nkk"] for v in with_nkk)
    mean_voters = sum(sizes.values()) / len(sizes)
    assert 2.2 < mean_voters < 3.4  # voters per card; the card also holds children
    members = [len(h.members) for h in default_sim.households]
    assert 3.4 < sum(members) / len(members) < 4.4


def test_legit_voters_are_eligible(out):
    for e in out.legit():
        assert not ineligible(e.value["voter"]), e.value["voter"]


def test_lookalikes_exist_unlabelled(out):
    legit = [e.value for e in out.legit() if e.value["action"] == "add"]
    by_nkk = defaultdict(list)
    for v in legit:
        if v["voter"]["nkk"]:
            by_nkk[v["voter"]["nkk"]].append(v["voter"])
    same_name = twins = 0
    for members in by_nkk.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if a["name"] == b["name"] and a["birth_date"] != b["birth_date"]:
                    same_name += 1
                if a["birth_date"] and a["birth_date"] == b["birth_date"] and a["name"] != b["name"]:
                    twins += 1
    assert same_name >= 5, "father and son with the same name"
    assert twins >= 5, "twins"
    married_16 = [v for v in legit if v["voter"]["birth_date"] and v["voter"]["marital_status"] == "S"
                  and age_on(parse_date(v["voter"]["birth_date"])) == 16]
    assert len(married_16) >= 3
    jan1 = [v for v in legit if (v["voter"]["birth_date"] or "").endswith("-01-01")]
    assert len(jan1) > 100
    assert max(Counter(len(m) for m in by_nkk.values())) >= 7  # large legit families
    names = Counter(v["voter"]["name"] for v in legit)
    assert names.most_common(1)[0][1] >= 10, "common names shared by unrelated voters"
    assert any(n.startswith(("H. ", "Hj. ")) for n in names)
    assert any(n.isupper() for n in names) and any(not n.isupper() for n in names)  # SIAK capitals
    actions = Counter(e.value["action"] for e in out.legit())
    assert actions["update"] > 500 and actions["remove"] > 200
    # Moved: removed in one village and added again (same NIK) in another.
    seen = defaultdict(set)
    for e in out.legit():
        if e.value["action"] == "add":
            seen[e.key].add(e.value["region"]["village"])
    assert sum(len(v) > 1 for v in seen.values()) >= 3


def _local_hour(e) -> int:
    return e.at.hour  # event times are in the province's local zone


def test_office_hours_rhythm(out):
    hours = Counter(_local_hour(e) for e in out.legit())
    office = sum(hours[h] for h in range(8, 16))
    night = sum(hours[h] for h in range(0, 6))
    assert office > 0.65 * sum(hours.values())
    assert office > 10 * night > 0  # some online registrations at night
    days = Counter(e.at.date() for e in out.legit())
    sundays = [n for d, n in days.items() if d.weekday() == 6]
    weekdays = [n for d, n in days.items() if d.weekday() < 5]
    assert max(sundays) < 0.5 * (sum(weekdays) / len(weekdays))


def test_times_use_local_zones(out):
    offsets = {e.value["region"]["province"]: e.value["occurred_at"][-6:] for e in out.regs}
    assert offsets["32"] == "+07:00" and offsets["73"] == "+08:00"


def test_sources_and_operators(out):
    sources = Counter(e.value["source"] for e in out.legit())
    assert set(sources) == {"coklit", "online", "dukcapil", "manual"}
    assert sources["coklit"] > sources["online"] > 0
    assert all(e.value["operator_id"] is None for e in out.legit() if e.value["source"] == "online")
    assert all(e.value["operator_id"] for e in out.legit() if e.value["source"] != "online")
