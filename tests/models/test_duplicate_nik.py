"""duplicate_nik and nik_conflict: the same NIK twice, and one NIK on different people."""

import json

import pytest

from models.duplicate_nik import NikDuplicateDetector, date_relation, is_placeholder_nik, nik_birth
from models.names import name_similarity, normalise_name
from models.privacy import keyed_hash

SECRET = b"test-secret"
NIK = "3273014501900001"


class RecordingDict(dict):
    """Remembers the JSON of every value at the moment it was assigned."""

    def __init__(self):
        super().__init__()
        self.snapshots = {}
        self.writes = 0

    def __setitem__(self, key, value):
        self.snapshots[key] = json.dumps(value, sort_keys=True)  # fails if not plain JSON
        self.writes += 1
        super().__setitem__(key, value)

    def assert_no_in_place_mutation(self):
        for k, v in self.items():
            assert json.dumps(v, sort_keys=True) == self.snapshots[k], f"value under {k} changed without assignment"


def reg(eid, *, nik=NIK, name="Siti Aminah", dob="1990-01-05", sex="P", tps="3273010001001",
        regency="3273", village="3273010001", action="add"):
    return {"event_id": eid, "occurred_at": "2026-01-05T10:00:00+07:00", "action": action,
            "voter": {"nik": nik, "name": name, "birth_date": dob, "sex": sex},
            "region": {"province": regency[:2], "regency": regency, "village": village}, "tps": tps}


@pytest.fixture
def index():
    return RecordingDict()


@pytest.fixture
def det(index):
    return NikDuplicateDetector(index, SECRET)


def test_first_registration_is_quiet_and_keyed_by_hash(det, index):
    assert det.process_one(reg("e1")) == []
    assert list(index) == [keyed_hash(SECRET, NIK)]
    assert NIK not in json.dumps(index)


def test_same_person_other_regency_is_critical_duplicate(det):
    det.process_one(reg("e1"))
    [f] = det.process_one(reg("e2", name="Hj. Siti Aminah, S.Pd.", tps="3201020002005", regency="3201",
                              village="3201020002"))
    assert (f.detector, f.kind, f.severity) == ("duplicate_nik", "other_region", "critical")
    assert f.event_ids == ["e2", "e1"]
    assert f.key == keyed_hash(SECRET, NIK)
    assert f.subject_id == "3273**********01"
    assert NIK not in json.dumps(f.evidence) and "Aminah" not in json.dumps(f.evidence)


def test_same_person_other_tps_same_village_is_warning(det):
    det.process_one(reg("e1"))
    [f] = det.process_one(reg("e2", tps="3273010001002"))
    assert (f.kind, f.severity) == ("other_tps", "warning")


def test_third_registration_lists_all_earlier_ones_new_first(det):
    det.process_one(reg("e1"))
    det.process_one(reg("e2", tps="3273010001002"))
    [f] = det.process_one(reg("e3", tps="3273010001003"))
    assert f.event_ids == ["e3", "e1", "e2"]


@pytest.mark.parametrize("change", [
    {"name": "Budi Santoso"},                       # name clearly different
    {"dob": "1975-08-17"},                          # birth date disagrees
    {"sex": "L"},                                   # sex disagrees
])
def test_different_person_on_same_nik_is_conflict(det, change):
    det.process_one(reg("e1"))
    [f] = det.process_one(reg("e2", tps="3273010001002", **change))
    assert f.detector == "nik_conflict" and f.kind == "different_person" and f.severity == "critical"
    assert f.event_ids == ["e2", "e1"]


def test_typo_and_swapped_birth_date_stay_the_same_person(det):
    det.process_one(reg("e1", dob="1990-03-04"))
    [f] = det.process_one(reg("e2", dob="1990-04-03", tps="3273010001002"))
    assert f.detector == "duplicate_nik"
    other = NikDuplicateDetector({}, SECRET)
    other.process_one(reg("e1", dob="1990-03-04"))
    [g] = other.process_one(reg("e3", dob="1990-03-07", name="Siti Aminha", tps="3273010001003"))
    assert g.detector == "duplicate_nik"


def test_one_wrong_part_of_the_birth_date_stays_the_same_person(det):
    """A year or a month typed wrong is a slip, not another person: two or three parts are."""
    det.process_one(reg("e1", dob="1990-03-19"))
    [f] = det.process_one(reg("e2", dob="1990-11-19", tps="3273010001002"))
    assert f.detector == "duplicate_nik"
    assert f.evidence["comparisons"][0]["birth_date"] == "part"


@pytest.mark.parametrize("dob, expected", [
    ("1990-01-05", "duplicate_nik"),   # equal birth date: the shared NIK and date carry a weaker name
    ("1990-05-01", "duplicate_nik"),   # day and month swapped: the same
    ("1990-01-08", "nik_conflict"),    # a weaker name with a slipped date is not enough
    (None, "nik_conflict"),            # nor with the date missing: it must agree, not be unknown
])
def test_a_weaker_name_is_the_same_person_only_on_an_agreeing_birth_date(det, dob, expected):
    # An abbreviated, reordered name: between the two thresholds.
    a, b = "Elisabeth Maria Bartel", "Bartel Elis"
    sim = name_similarity(normalise_name(a).split(), normalise_name(b).split())
    assert det.conflict_name_threshold <= sim < det.name_threshold
    det.process_one(reg("e1", name=a))
    [f] = det.process_one(reg("e2", name=b, dob=dob, tps="3273010001002"))
    assert f.detector == expected


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="conflict_name_threshold"):
        NikDuplicateDetector({}, SECRET, name_threshold=0.5, conflict_name_threshold=0.6)


def test_missing_birth_date_does_not_make_a_conflict(det):
    det.process_one(reg("e1", dob=None))
    [f] = det.process_one(reg("e2", tps="3273010001002"))
    assert f.detector == "duplicate_nik"


def test_placeholder_nik_shared_by_strangers(det):
    ph = "2222222222222222"
    det.process_one(reg("e1", nik=ph, name="Andi Wijaya", sex="L", dob="1980-02-02"))
    det.process_one(reg("e2", nik=ph, name="Rina Marlina", dob="1992-06-06", tps="3273010001002"))
    [f] = det.process_one(reg("e3", nik=ph, name="Joko Susilo", sex="L", dob="1970-07-07", tps="3273010001003"))
    assert f.detector == "nik_conflict" and f.kind == "placeholder"
    assert f.event_ids == ["e3", "e1", "e2"] and f.evidence["placeholder_nik"] is True


def test_placeholder_value_is_bounded(index):
    det = NikDuplicateDetector(index, SECRET, max_registrations=5)
    for i in range(20):
        det.process_one(reg(f"e{i}", nik="2222222222222222", name=f"Orang {i}", tps=f"3273010001{i:03d}"))
    assert len(index[keyed_hash(SECRET, "2222222222222222")]["r"]) == 5


def test_reprocessing_same_event_is_idempotent(det, index):
    det.process_one(reg("e1"))
    before = json.dumps(index, sort_keys=True)
    assert det.process_one(reg("e1")) == []
    assert json.dumps(index, sort_keys=True) == before
    first = det.process_one(reg("e2", tps="3273010001002"))
    again = det.process_one(reg("e2", tps="3273010001002"))
    # The same finding again (same key, so the alerter coalesces), never e2 against itself.
    assert [(f.key, f.event_ids) for f in again] == [(f.key, f.event_ids) for f in first] == \
        [(keyed_hash(SECRET, NIK), ["e2", "e1"])]
    assert len(index[keyed_hash(SECRET, NIK)]["r"]) == 2


def test_update_replaces_the_registration(det, index):
    det.process_one(reg("e1"))
    # A move to another TPS is an update, not a duplicate.
    assert det.process_one(reg("u1", tps="3273010001009", action="update")) == []
    regs = index[keyed_hash(SECRET, NIK)]["r"]
    assert [r["e"] for r in regs] == ["u1"] and regs[0]["t"] == "3273010001009"


def test_update_with_two_registrations_replaces_the_one_at_its_tps(det, index):
    det.process_one(reg("e1"))
    det.process_one(reg("e2", tps="3273010001002"))
    [f] = det.process_one(reg("u2", tps="3273010001002", name="Siti Aminah Hasan", action="update"))
    assert f.event_ids == ["u2", "e1"]
    assert sorted(r["e"] for r in index[keyed_hash(SECRET, NIK)]["r"]) == ["e1", "u2"]


def test_remove_takes_registration_out_and_resolves(det, index):
    det.process_one(reg("e1"))
    det.process_one(reg("e2", tps="3273010001002"))
    [f] = det.process_one(reg("r1", tps="3273010001002", action="remove"))
    assert f.status == "resolved" and f.detector == "duplicate_nik" and f.key == keyed_hash(SECRET, NIK)
    assert [r["e"] for r in index[keyed_hash(SECRET, NIK)]["r"]] == ["e1"]
    # A fresh registration elsewhere is a duplicate again, of e1 only.
    [g] = det.process_one(reg("e3", tps="3273010001003"))
    assert g.event_ids == ["e3", "e1"]


def test_replayed_add_after_remove_does_not_come_back(det, index):
    det.process_one(reg("e1"))
    det.process_one(reg("r1", action="remove"))
    assert det.process_one(reg("e1")) == []
    assert index[keyed_hash(SECRET, NIK)]["r"] == []


def test_remove_of_unknown_is_harmless(det):
    assert det.process_one(reg("r1", action="remove")) == []


def test_values_are_plain_json_and_always_assigned(det, index):
    det.process_one(reg("e1"))
    det.process_one(reg("e2", tps="3273010001002"))
    det.process_one(reg("e3", name="Budi", sex="L", tps="3273010001003"))
    det.process_one(reg("u1", tps="3273010001003", action="update"))
    det.process_one(reg("r1", tps="3273010001002", action="remove"))
    assert index.writes >= 5
    index.assert_no_in_place_mutation()
    assert NIK not in json.dumps(index)


def test_missing_nik_is_a_clear_error(det):
    e = reg("e1")
    e["voter"]["nik"] = ""
    with pytest.raises(ValueError, match="no voter.nik"):
        det.process_one(e)


def test_secret_required():
    with pytest.raises(ValueError):
        NikDuplicateDetector({}, b"")


def test_helpers():
    assert nik_birth("3273014501900001") == ("900105", "P")
    assert nik_birth("32730145019000") is None
    assert is_placeholder_nik("0000000000000000") and not is_placeholder_nik("3273014501900001")
    assert date_relation("1990-01-05", "1990-05-01") == "swap"


def _relation_by_positions(a, b):
    """date_relation's rule read off the whole strings: the wrong parts, then the differing positions."""
    if not a or not b:
        return "missing"
    if a == b:
        return "equal"
    wrong = [a[:4] != b[:4], a[5:7] != b[5:7], a[8:10] != b[8:10]]
    if sum(wrong) >= 2:
        return "swap" if not wrong[0] and a[5:7] == b[8:10] and a[8:10] == b[5:7] else "differ"
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                              and a[diff[1]] == b[diff[0]]):
            return "typo"
    if wrong[2] and a[8:10].isdigit() and b[8:10].isdigit() and abs(int(a[8:10]) - int(b[8:10])) == 1:
        return "typo"
    return "part"


def test_date_relation_reads_one_wrong_part_as_the_whole_strings_say():
    # date_relation decides a pair with one wrong part from that part alone:
    # it must agree with the rule read off every position, malformed dates included.
    import random

    rng = random.Random(4)
    years, months, days = ["1990", "1991", "1909", "1980", "2990", "19a0"], ["01", "10", "11", "02", "1a", "20"], \
        ["05", "50", "06", "04", "15", "14", "31", "30", "0x", "01", "10", "09", "19", "20", "29"]
    odd = ["1990-1-5", "19900105", "1990/01/05", "1990-01-0", "", None]
    seen = set()
    for _ in range(60_000):
        a = rng.choice(odd) if rng.random() < 0.03 else f"{rng.choice(years)}-{rng.choice(months)}-{rng.choice(days)}"
        b = rng.choice(odd) if rng.random() < 0.03 else f"{rng.choice(years)}-{rng.choice(months)}-{rng.choice(days)}"
        if a and len(a) == 10 and rng.random() < 0.5:  # one character of a changed, or two neighbours exchanged
            i, chars = rng.randrange(10), list(a)
            if rng.random() < 0.5:
                chars[i] = rng.choice("0123456789-/")
            elif i < 9:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            b = "".join(chars)
        expected = _relation_by_positions(a, b)
        assert date_relation(a, b) == expected, (a, b)
        seen.add(expected)
    assert seen == {"missing", "equal", "swap", "differ", "typo", "part"}
