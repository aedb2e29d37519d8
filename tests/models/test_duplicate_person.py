"""duplicate_person: one person under several NIKs, and the look-alikes that are not."""

import json
import random

import pytest

from models.duplicate_person import PRIOR, PersonDuplicateDetector
from models.names import name_similarity
from models.privacy import keyed_hash

SECRET = b"test-secret"


class RecordingDict(dict):
    """Remembers the JSON of every value at the moment it was assigned."""

    def __init__(self):
        super().__init__()
        self.snapshots = {}

    def __setitem__(self, key, value):
        self.snapshots[key] = json.dumps(value, sort_keys=True)
        super().__setitem__(key, value)

    def assert_no_in_place_mutation(self):
        for k, v in self.items():
            assert json.dumps(v, sort_keys=True) == self.snapshots[k], f"value under {k} changed without assignment"


def nik_for(dob, sex, region6="327301", serial=1):
    dd = int(dob[8:10]) + (40 if sex == "P" else 0)
    return f"{region6}{dd:02d}{dob[5:7]}{dob[2:4]}{serial:04d}"


def person(eid, name, *, dob="1990-01-05", sex="P", serial=1, region6="327301", nkk="3273010101010001",
           place="Bandung", address="Jl. Merdeka No. 5", rt="001", rw="002", regency="3273",
           marital="S", action="add", nik=None, nik_dob=None):
    return {"event_id": eid, "occurred_at": "2026-01-05T10:00:00+07:00", "action": action,
            "voter": {"nik": nik or nik_for(nik_dob or dob or "1990-01-05", sex, region6, serial), "nkk": nkk,
                      "name": name, "birth_place": place, "birth_date": dob, "sex": sex,
                      "marital_status": marital, "address": address, "rt": rt, "rw": rw, "disability": "0"},
            "region": {"province": regency[:2], "regency": regency, "village": regency + "010001"},
            "tps": regency + "010001001"}


def moved(eid, name, serial, **kw):
    """The same person registered again after moving: other NIK, household and address."""
    base = dict(serial=serial, region6="320102", nkk="3201020202020002", address="Gg. Melati 12", rt="004",
                rw="007", regency="3201")
    base.update(kw)
    return person(eid, name, **base)


@pytest.fixture
def det():
    return PersonDuplicateDetector(RecordingDict(), SECRET)


@pytest.mark.parametrize("first,second", [
    ("Muhammad Ridwan", "Mochamad Ridwan"),
    ("Muhammad Ridwan", "M. Ridwan"),
    ("Joesoef Hasan", "Yusuf Hasan"),
    ("Dewi Ratnasari", "Hj. Dewy Ratna Sari, S.Pd."),
    ("Ahmad Fauzi", "Drs. H. Ahmad Fauzi, M.H."),
    ("Siti Nur Hasanah", "Siti N. Hasanah"),
    ("Siti Aminah", "Siti Aminah Kurniawan"),      # married name
    ("Maimunah Lubis", "Maimnuah Lubis"),          # typo
    ("Hasan Basri", "Basri Hasan"),                # swapped order
])
def test_same_person_other_nik_is_found(det, first, second):
    sex = "L" if first.split()[0] in {"Muhammad", "Joesoef", "Ahmad", "Hasan"} else "P"
    assert det.process_one(person("e1", first, sex=sex)) == []
    [f] = det.process_one(moved("e2", second, 2, sex=sex))
    assert f.detector == "duplicate_person" and f.event_ids == ["e2", "e1"]
    assert f.score >= det.threshold
    n1, n2 = nik_for("1990-01-05", sex), nik_for("1990-01-05", sex, "320102", 2)
    assert f.key == ":".join(sorted((keyed_hash(SECRET, n1), keyed_hash(SECRET, n2))))
    assert f.evidence["masked_niks"] == ["3201**********02", "3273**********01"]
    assert "birth_date" in f.evidence["fields_agreed"]


@pytest.mark.parametrize("first,second", [
    ("Siti Nur Hasanah", "Siti N. Hasanah"),  # the last word's sound is their only shared block
    ("Joesoef Hasan", "Yusuf Hasan"),
    ("Dewi Ratnasari", "Hj. Dewy Ratna Sari, S.Pd."),
])
@pytest.mark.parametrize("dob", ["1990-07-01", "1990-01-01", "1990-12-31"])
def test_a_voter_who_moved_is_found_on_a_filler_birth_date(det, first, second, dob):
    det.process_one(person("e1", first, dob=dob))
    [f] = det.process_one(moved("e2", second, 2, dob=dob))
    assert f.event_ids == ["e2", "e1"]


def test_a_filler_birth_date_blocks_the_names_sound_by_birth_place(det):
    def shared(dob_a, place_a, dob_b, place_b, **kw):
        a = det.blocking_keys(person("e1", "Siti Aminah", dob=dob_a, place=place_a))
        b = det.blocking_keys(person("e2", "Siti Aminah", dob=dob_b, place=place_b, serial=2, **kw))
        return len(set(a) & set(b)), len(a)

    # A real date: the birth place is in no key.
    assert shared("1990-01-05", "Bandung", "1990-01-05", "Medan") == (8, 8)
    # A filler date: the three blocks of the name's sound on the date are the birth place's ...
    assert shared("1990-07-01", "Bandung", "1990-07-01", "Medan") == (5, 8)
    assert shared("1990-07-01", "Bandung", "1990-07-01", None) == (5, 8)
    # ... whatever the regency, the spelling of the place, or a swapped day and month.
    assert shared("1990-07-01", "Kota Bandung", "1990-07-01", "BANDUNG", regency="3201") == (7, 8)
    assert shared("1990-07-01", "Bandung", "1990-01-07", "Bandung")[0] >= 3


def test_swapped_day_and_month_is_found(det):
    det.process_one(person("e1", "Rina Marlina", dob="1990-03-04"))
    [f] = det.process_one(moved("e2", "Rina Marlina", 2, dob="1990-04-03", nik_dob="1990-03-04"))
    assert f.evidence["features"]["dob_swap"] == 1.0


def test_evidence_holds_no_personal_data(det):
    det.process_one(person("e1", "Dewi Ratnasari"))
    [f] = det.process_one(moved("e2", "Dewy Ratna Sari", 2))
    blob = json.dumps(f.evidence) + f.summary + f.subject_id + f.key
    for secret_bit in ("DEWI", "Dewi", "Ratna", "1990", "Bandung", "Merdeka", "3273010101010001",
                       nik_for("1990-01-05", "P"), "900105"):
        assert secret_bit not in blob
    assert all(isinstance(v, float) for v in f.evidence["features"].values())


def test_father_and_son_same_name_same_household_are_not_duplicates(det):
    det.process_one(person("e1", "Muhammad Yusuf", sex="L", dob="1960-05-10", marital="S"))
    assert det.process_one(person("e2", "Muhammad Yusuf", sex="L", dob="1988-09-21", serial=2, marital="B")) == []


@pytest.mark.parametrize("a,b", [("Muhammad Putra", "Muhammad Putri"), ("Hasan", "Husein"), ("Andi", "Andri"),
                                 ("Siti Rizki", "Siti Rizka")])
def test_twins_are_not_duplicates(det, a, b):
    det.process_one(person("e1", a, sex="L", dob="2001-07-07"))
    assert det.process_one(person("e2", b, sex="L", dob="2001-07-07", serial=2)) == []


def test_missing_birth_date_is_not_a_match(det):
    # Same name in one household; the birth date is missing on one record and the NIKs say different dates.
    det.process_one(person("e1", "Nurhayati", dob="1965-02-02"))
    assert det.process_one(person("e2", "Nurhayati", dob=None, nik_dob="1989-11-30", serial=2)) == []


def test_missing_birth_date_weighs_against(det):
    full = person("a", "Rina Marlina")
    x_equal = det.features(det.compact(moved("b", "Rina Marlina", 2)), det.compact(full))
    x_missing = det.features(det.compact(moved("b", "Rina Marlina", 2, dob=None, nik_dob="1990-01-05")),
                             det.compact(full))
    assert x_missing["dob_missing"] == 1.0
    assert det.score(x_missing) < det.score(x_equal) - 0.3


def test_common_names_weigh_less(det):
    # Ten thousand Nurhayati already in the list make a bare name+date+sex match weak.
    for _ in range(10_000):
        det.names.add("NURHAYATI")
    rare = det.features(det.compact(moved("b", "Kartika Wulandari", 2, place="Medan")),
                        det.compact(person("a", "Kartika Wulandari", place=None)))
    common = det.features(det.compact(moved("b", "Nurhayati", 2, place="Medan")),
                          det.compact(person("a", "Nurhayati", place=None)))
    assert common["name_common"] == 1.0 and rare["name_common"] == 0.0
    assert det.score(common) < det.score(rare)


def test_namesakes_born_elsewhere_are_not_flagged(det):
    det.process_one(person("e1", "Nurhayati", place="Makassar"))
    assert det.process_one(moved("e2", "Nurhayati", 2, place="Padang")) == []


def test_pair_reported_once_though_it_shares_several_blocks(det):
    det.process_one(person("e1", "Dewi Ratnasari"))
    e2 = person("e2", "Dewi Ratnasari", serial=2, nkk="3273010101010009")
    shared = set(det.blocking_keys(e2)) & set(det.blocking_keys(person("e1", "Dewi Ratnasari")))
    assert len(shared) >= 2
    findings = det.process_one(e2)
    assert len(findings) == 1


def test_block_by_block_gives_the_same_key_as_process_one():
    a, b = PersonDuplicateDetector({}, SECRET), PersonDuplicateDetector({}, SECRET)
    e1, e2 = person("e1", "Dewi Ratnasari"), moved("e2", "Dewy Ratna Sari", 2)
    a.process_one(e1)
    [f] = a.process_one(e2)
    for k in b.blocking_keys(e1):
        b.match_in_block(k, e1)
    keys = {g.key for k in b.blocking_keys(e2) for g in b.match_in_block(k, e2)}
    assert keys == {f.key}


def test_blocking_keys_are_hashed_bounded_and_secret_dependent():
    e = person("e1", "Siti Aminah", dob="1990-01-05")
    a, b = PersonDuplicateDetector({}, SECRET), PersonDuplicateDetector({}, b"other")
    keys = a.blocking_keys(e)
    assert 1 <= len(keys) <= 8 and len(set(keys)) == len(keys)
    for k in keys:
        assert k.startswith("dp:") and len(k) == 35 and all(c in "0123456789abcdef" for c in k[3:])
        for bit in ("SITI", "AMINAH", "1990", "900105", "01-05", "3273", e["voter"]["nik"]):
            assert bit not in k
    assert not set(keys) & set(b.blocking_keys(e))


def test_blocking_keys_use_nik_birth_date_when_the_record_has_none(det):
    with_date = person("e1", "Siti Aminah", dob="1990-01-05")
    without = person("e2", "Siti Aminah", dob=None, nik_dob="1990-01-05", serial=2)
    assert det.blocking_keys(with_date) == det.blocking_keys(without)


def test_removal_takes_the_record_out(det):
    det.process_one(person("e1", "Dewi Ratnasari"))
    det.process_one({**person("r1", "Dewi Ratnasari"), "action": "remove"})
    assert det.index == {}
    assert det.process_one(moved("e2", "Dewi Ratnasari", 2)) == []


def test_update_replaces_the_record_even_when_its_blocks_change(det):
    det.process_one(person("e1", "Dewi Ratnasari", dob="1990-01-05"))
    # Corrected birth date: the record leaves its old blocks.
    det.process_one(person("u1", "Dewi Ratnasari", dob="1991-06-06", action="update",
                           nik=nik_for("1990-01-05", "P")))
    stored = [c[0] for v in det.index.values() if isinstance(v, list) and v and isinstance(v[0], list) for c in v]
    assert "e1" not in stored and "u1" in stored
    assert det.process_one(moved("e2", "Dewi Ratnasari", 2, dob="1990-01-05")) == []
    [f] = det.process_one(moved("e3", "Dewi Ratnasari", 3, dob="1991-06-06", nik_dob="1990-01-05"))
    assert f.event_ids == ["e3", "u1"]


def test_reprocessing_is_idempotent(det):
    e1, e2 = person("e1", "Dewi Ratnasari"), moved("e2", "Dewy Ratna Sari", 2)
    det.process_one(e1)
    first = det.process_one(e2)
    before = json.dumps(dict(det.index), sort_keys=True)
    again = det.process_one(e2)
    assert [(f.key, f.event_ids) for f in again] == [(f.key, f.event_ids) for f in first]
    assert det.process_one(e1) == []  # never a duplicate of itself
    assert json.dumps(dict(det.index), sort_keys=True) == before


def test_same_nik_is_left_to_duplicate_nik(det):
    det.process_one(person("e1", "Dewi Ratnasari"))
    assert det.process_one(moved("e2", "Dewi Ratnasari", 1, nik=nik_for("1990-01-05", "P"))) == []


def test_feedback_changes_later_scores():
    det = PersonDuplicateDetector({}, SECRET)
    det.process_one(person("e1", "Rina Marlina"))
    [f] = det.process_one(moved("e2", "Rina Marlina", 2))
    x = f.evidence["features"]
    for _ in range(60):
        det.learn_feedback(x, is_duplicate=False)
    assert det.score(x) < f.score
    assert det.score(x) < det.threshold
    # A later pair with the same look is no longer alerted.
    assert det.process_one(moved("e3", "Rina Marlina", 3, nkk="3201020202020077", address="Gg. Melati 12")) == []
    state = det.scorer_state()
    json.dumps(state)
    restored = PersonDuplicateDetector({}, SECRET, prior=state)
    assert abs(restored.score(x) - det.score(x)) < 1e-9


def test_feedback_true_raises_a_weak_score():
    det = PersonDuplicateDetector({}, SECRET)
    x = {"name_sim": 0.9, "name_close": 0.66, "dob_missing": 1.0, "sex_equal": 1.0}
    before = det.score(x)
    for _ in range(30):
        det.learn_feedback(x, is_duplicate=True)
    assert det.score(x) > before


def test_prior_is_used_and_not_shared_between_instances():
    a = PersonDuplicateDetector({}, SECRET)
    b = PersonDuplicateDetector({}, SECRET)
    a.learn_feedback({"dob_equal": 1.0}, False)
    assert b.scorer_state()["dob_equal"] == PRIOR["dob_equal"] != a.scorer_state()["dob_equal"]


def test_index_values_plain_json_and_assigned():
    idx = RecordingDict()
    det = PersonDuplicateDetector(idx, SECRET, max_candidates=3)
    for i in range(6):
        det.process_one(person(f"e{i}", f"Nama Orang{i}", serial=i + 1, dob="1990-01-05"))
    det.process_one(moved("m1", "Nama Orang1", 50))
    det.process_one(person("u0", "Nama Orang0", serial=1, dob="1990-01-06", action="update"))
    det.process_one({**person("r1", "Nama Orang2", serial=3), "action": "remove"})
    idx.assert_no_in_place_mutation()
    blob = json.dumps(idx)
    assert nik_for("1990-01-05", "P", serial=1) not in blob and "3273010101010001" not in blob
    # Blocks are capped at max_candidates, most recent kept.
    assert all(len(v) <= 3 for k, v in idx.items() if k.startswith("dp:"))


def test_secret_required():
    with pytest.raises(ValueError):
        PersonDuplicateDetector({}, b"")


def test_name_written_together_with_its_leading_word_and_moved_is_found(det):
    # Siti Diana / Sitidiana, Muhammad Daliman / Muhammaddaliman: written
    # together the leading word no longer looks like one; another regency.
    det.process_one(person("e1", "Siti Diana"))
    det.process_one(person("e2", "Muhammad Daliman", sex="L", serial=3))
    [f] = det.process_one(moved("e3", "Sitidiana", 2))
    assert f.event_ids == ["e3", "e1"]
    [g] = det.process_one(moved("e4", "Muhammaddaliman", 4, sex="L"))
    assert g.event_ids == ["e4", "e2"]


def test_birth_day_one_off_across_a_ten_is_found_when_the_nik_carries_the_real_date(det):
    # 19 -> 20 changes two digits; the second NIK was issued from the real date.
    det.process_one(person("e1", "Kartika Wulandari", dob="1990-01-19"))
    [f] = det.process_one(moved("e2", "Kartika Wulandari", 2, dob="1990-01-20", nik_dob="1990-01-19"))
    x = f.evidence["features"]
    assert x["dob_typo"] == 1.0 and x["dob_nik_cross"] == 1.0


def test_birth_dates_far_apart_are_not_matched_even_with_one_name(det):
    det.process_one(person("e1", "Kartika Wulandari", dob="1990-01-19"))
    assert det.process_one(moved("e2", "Kartika Wulandari", 2, dob="1975-08-02")) == []


def test_misspelt_re_entry_in_one_household_is_found_but_twins_with_real_names_are_not(det):
    # Token counts as a national list would have them: Maimunah, Putra and
    # Putri are established names; Maimnuah is a misspelling seen once.
    for tok in ("MAIMUNAH", "LUBIS", "PUTRA", "PUTRI", "MUHAMMAD", "ANDI", "ANDRI"):
        for _ in range(200):
            det.names.add("t:" + tok)
    det.process_one(person("e1", "Maimunah Lubis", dob="1970-03-03"))
    [f] = det.process_one(person("e2", "Maimnuah Lubis", dob="1970-03-03", serial=2))
    assert f.event_ids == ["e2", "e1"] and f.evidence["features"]["household_typo"] > 0.5
    det.process_one(person("t1", "Muhammad Putra", sex="L", dob="2001-07-07", serial=1))
    assert det.process_one(person("t2", "Muhammad Putri", sex="L", dob="2001-07-07", serial=2)) == []
    det.process_one(person("t3", "Andi", sex="L", dob="2003-02-02", serial=1))
    assert det.process_one(person("t4", "Andri", sex="L", dob="2003-02-02", serial=2)) == []


def test_a_twin_is_not_matched_when_the_other_twin_is_the_closer_name(det):
    det.process_one(person("e1", "Siti Nanda", dob="1995-04-04", serial=1))
    det.process_one(person("e2", "Siti Nandi", dob="1995-04-04", serial=2))
    # Nandi registered again after moving: one finding, with Nandi, not Nanda.
    findings = det.process_one(moved("e3", "Siti Nandi", 9, dob="1995-04-04"))
    assert [f.event_ids for f in findings] == [["e3", "e2"]]


def test_weak_name_needs_a_shared_word_date_and_place(det):
    # Same birth date and address, another household, names barely alike: not one person.
    det.process_one(person("e1", "Dewi Ratnasari", nkk="3273010101010009"))
    assert det.process_one(person("e2", "Sri Wahyuni", serial=2)) == []


def test_unknown_birth_place_is_between_agreeing_and_differing(det):
    base = person("a", "Rina Marlina")
    same = det.features(det.compact(moved("b", "Rina Marlina", 2)), det.compact(base))
    other = det.features(det.compact(moved("b", "Rina Marlina", 2, place="Medan")), det.compact(base))
    unknown = det.features(det.compact(moved("b", "Rina Marlina", 2, place=None)), det.compact(base))
    assert unknown["place_missing"] == 1.0 and unknown["place_agree"] == 0.0
    assert det.score(other) < det.score(unknown) < det.score(same)


def test_scorer_state_of_the_earlier_feature_set_is_not_reused():
    old = {"intercept": -8.5, "name_close": 6.0, "sex_equal": 0.5, "place_close": 1.5, "marital_equal": 0.3}
    det = PersonDuplicateDetector({}, SECRET, prior=old)
    assert det.scorer_state()["intercept"] == PRIOR["intercept"]
    assert "sex_equal" not in det.scorer_state()


def test_scorer_state_saved_before_the_no_id_features_gets_their_prior_weights():
    saved = {k: v for k, v in PRIOR.items() if k not in ("nik_near", "noid_addr", "noid_same_regency")}
    saved["name_close"] = 7.0  # moved by verdicts: kept
    state = PersonDuplicateDetector({}, SECRET, prior=saved).scorer_state()
    assert state["noid_addr"] == PRIOR["noid_addr"] and state["nik_near"] == PRIOR["nik_near"]
    assert state["name_close"] == 7.0


def febrl_like(eid, name, dob, address, number):
    """A list without NIK, sex, birth place or household (another source; FEBRL)."""
    return {"event_id": eid, "occurred_at": "2026-01-05T10:00:00+07:00", "action": "add",
            "voter": {"nik": number, "name": name, "birth_date": dob, "address": address,
                      "sex": None, "birth_place": None, "nkk": None},
            "region": {"province": "00", "regency": "2617"}}


def test_without_identity_fields_a_shared_address_is_evidence(det):
    a = det.compact(febrl_like("a", "chloe whittlesis", "1966-06-30", "12 blacket street curl curl", "F1"))
    b = febrl_like("b", "chloet whittesis", "1966-06-30", "12 blacket street curl curl", "F2")
    c = febrl_like("c", "chloet whittesis", "1966-06-30", "7 mason road ryde", "F3")
    same, other = det.features(det.compact(b), a), det.features(det.compact(c), a)
    assert same["no_id_fields"] == 1.0 and same["noid_addr"] == 1.0
    assert det.score(same) >= 0.5 and det.score(same) > det.score(other)
    # In a KPU list the same address is a household's, and says nothing more.
    kpu = det.features(det.compact(person("x", "Rina Marlina", serial=2)), det.compact(person("y", "Rina Marlina")))
    assert kpu["no_id_fields"] == 0.0 and kpu["noid_addr"] == 0.0


def test_another_list_personal_number_one_slip_apart(det):
    # FEBRL's soc_sec_id, or any personal number of another source, in the NIK field.
    det.process_one(febrl_like("e1", "holly white", "1945-07-03", "57 boolee street bacchus marsh", "1804974"))
    found = det.process_one(febrl_like("e2", "holly whyte", "1945-07-03", "57 boolee st bacchus marsh", "1809474"))
    assert [f.event_ids for f in found] == [["e2", "e1"]] and found[0].evidence["features"]["nik_near"] == 1.0


def test_niks_one_digit_apart_are_no_evidence(det):
    # Dense numbers: born the same day in the neighbouring district, serial 0001.
    a = person("a", "Rina Marlina", region6="327301")
    b = person("b", "Rina Marlina", region6="327302", nkk="3273020101010002")
    assert det.compact(a)[15] == "" and det.features(det.compact(b), det.compact(a))["nik_near"] == 0.0


def test_a_far_birth_date_is_scored_when_the_numbers_are_one_slip_apart():
    det = PersonDuplicateDetector({}, SECRET, threshold=0.0)  # every pair past the gates
    det.process_one(febrl_like("e1", "holly white", "1945-07-03", "57 boolee street bacchus marsh", "1804974"))
    [f] = det.process_one(febrl_like("e2", "holly white", "1991-12-24", "57 boolee street", "1804947"))
    assert f.evidence["features"]["nik_near"] == 1.0 and f.evidence["features"]["dob_differ"] == 1.0
    # Two birth dates far apart and numbers far apart: never scored.
    assert det.process_one(febrl_like("e3", "holly white", "1977-02-14", "57 boolee street", "5512093")) == []
    rec = det.compact(febrl_like("e4", "holly white", None, "", "1804974"))
    assert "1804974" not in json.dumps(rec) and "804974" not in json.dumps(rec)


def test_the_closer_name_in_a_household_counts_whatever_its_birth_date():
    # _compare tests the birth date before the name; the household rule still
    # looks at every member: Nanda (the closer name, another birth date) keeps
    # Nandi, her sister with the record's birth date, from being matched.
    det = PersonDuplicateDetector({}, SECRET, threshold=0.0)  # every pair past the gates
    nanda = det.compact(person("e1", "Siti Nanda", dob="1971-09-23", serial=1))
    nandi = det.compact(person("e2", "Siti Nandi", dob="1995-04-04", serial=2))
    rec = det.compact(moved("e3", "Siti Nanda", 9, dob="1995-04-04"))
    ev = moved("e3", "Siti Nanda", 9, dob="1995-04-04")
    assert [f.event_ids for f in det._compare(rec, [nandi], ev)] == [["e3", "e2"]]
    assert det._compare(rec, [nanda, nandi], ev) == []


def _name_first_compare(det, rec, candidates):
    """_compare as it was written before the birth date went first (the reference):
    the name of every member, the household's closest name, then the date and the other gates."""
    from models.duplicate_nik import date_relation
    from models.duplicate_person import _WEAKEST_NAME, _near_slip, _nik_cross
    from models.names import name_similarity

    toks, strong, out = rec[3].split(), det.min_name_similarity, []
    near, best_in_household = [], {}
    for c in candidates:
        if c[1] == rec[1] or c[0] == rec[0]:
            continue
        sim = name_similarity(toks, c[3].split()) if toks and c[3] else 0.0
        if sim >= _WEAKEST_NAME:
            near.append((c, sim))
            if c[11] and sim > best_in_household.get(c[11], 0.0):
                best_in_household[c[11]] = sim
    for c, sim in near:
        if c[11] and best_in_household[c[11]] >= max(sim + 0.03, strong):
            continue
        rel, slip = date_relation(rec[4], c[4]), _near_slip(rec, c)
        if rel == "differ" and not slip and not _nik_cross(rec, c):
            continue
        if sim < strong and not slip and (rel not in ("equal", "swap") or rec[5] != c[5]
                                          or not any(len(t) > 2 and t in c[3].split() for t in toks)):
            continue
        x = det.features(rec, c, sim, slip)
        if sim < strong and not slip and (x["addr_close"] >= 0.8) + x["same_regency"] + x["nkk_equal"] + \
                (x["place_agree"] >= 0.5) < 2:
            continue
        p = det.score(x)
        if p >= det.threshold:
            out.append((c[0], round(p, 4), x))
    return out


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_compare_finds_what_the_name_first_order_found(threshold):
    import random

    rng = random.Random(5)
    names = ["Siti Nanda", "Siti Nandi", "Sitinanda", "Nanda", "Siti Nanda Lubis", "Sri Wahyuni", "Sri Wahyu",
             "Dewi Ratnasari", "Dewy Ratna Sari", "Muhammad Putra", "Muhammad Putri", "M. Putra", "Nurhayati",
             "Nurhajati", "Putra Nurhayati", "", "Andi", "Andri"]
    dates = ["1990-01-05", "1990-05-01", "1990-01-06", "1990-01-15", "1991-01-05", "1990-11-05", "1985-07-23",
             "1990-01-01", "1990-70-01", None]
    numbers = [None, None, "1804974", "1809474", "1804947"]  # another list's numbers one slip apart
    det = PersonDuplicateDetector({}, SECRET, threshold=threshold)
    for tok in ("NANDA", "NANDI", "PUTRA", "PUTRI", "NURHAYATI"):
        for _ in range(rng.choice([1, 50, 300])):
            det.names.add("t:" + tok)
    recs = []
    for i in range(60):
        dob, sex = rng.choice(dates), rng.choice("LP")
        ev = person(f"e{i}", rng.choice(names), dob=dob, sex=sex, serial=i, nik_dob=rng.choice(dates[:-1]),
                    nkk=rng.choice(["3273010101010001", "3273010101010002", None]),
                    place=rng.choice(["Bandung", "Medan", None]), regency=rng.choice(["3273", "3201"]),
                    address=rng.choice(["Jl. Merdeka No. 5", "Gg. Melati 12", None]),
                    nik=rng.choice(numbers), marital=rng.choice(["S", "K"]))
        det.names.add(det.compact(ev)[3])
        recs.append((ev, det.compact(ev)))
    pairs = 0
    for ev, rec in recs:
        block = [c for _, c in rng.sample(recs, 25)]
        got = [(f.event_ids[1], f.score, f.evidence["features"]) for f in det._compare(rec, block, ev)]
        assert got == _name_first_compare(det, rec, block)
        pairs += len(got)
    assert pairs > (60 if threshold == 0.0 else 3)  # the gates let pairs through, not only skip them


def test_a_pairs_features_are_reused_only_while_the_name_sketch_stands_still():
    det = PersonDuplicateDetector({}, SECRET, threshold=0.0)
    ev = moved("e2", "Rina Marlina", 2)
    rec, cand = det.compact(ev), det.compact(person("e1", "Rina Marlina"))
    [first] = det._compare(rec, [cand], ev)
    [again] = det._compare(rec, [cand], ev)  # another block of the same record
    assert again.evidence == first.evidence and again.evidence["features"] is not first.evidence["features"]
    for _ in range(1000):
        det.names.add("RINA MARLINA")  # other records arrive between two blocks of this one
    [later] = det._compare(rec, [cand], ev)
    assert later.evidence["features"] == det.features(rec, cand)
    assert later.evidence["features"]["name_common"] > first.evidence["features"]["name_common"] == 0.0


def _namesakes(n, name="Nurhayati", start=0):
    """n different women with one common name: other birth dates, NIKs and households."""
    return [person(f"n{i}", name, dob=f"{1950 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}", serial=100 + i,
                   nkk=f"32730101010{i:05d}", address=f"Jl. Mawar {i}") for i in range(start, start + n)]


def test_workers_exchanging_name_count_deltas_count_like_one_process():
    # Two workers each see half of the list; with the deltas exchanged, each
    # weighs a name as one process that saw all of it does.
    whole = PersonDuplicateDetector({}, SECRET)
    left, right = PersonDuplicateDetector({}, SECRET), PersonDuplicateDetector({}, SECRET)
    for d in (left, right):
        d.share_name_counts()
    for i, ev in enumerate(_namesakes(40)):
        whole.process_one(ev)
        (left if i % 2 else right).process_one(ev)
    alone = left.name_commonness("NURHAYATI")
    from_right = right.name_count_delta()
    assert left.merge_name_counts(from_right) == 40  # 20 names and 20 words
    right.merge_name_counts(left.name_count_delta())
    assert (left.names.table == whole.names.table).all() and (right.names.table == whole.names.table).all()
    assert left.name_count_items == right.name_count_items == whole.name_count_items == 80
    assert left.name_commonness("NURHAYATI") == whole.name_commonness("NURHAYATI") > alone
    assert whole.name_count_delta() == b""  # nothing is noted unless sharing is on
    # A later pair scores the same on a worker that merged and on the whole.
    probe = _namesakes(2, start=60)
    pair = [person("p1", "Nurhayati", dob="1970-03-04", serial=900), moved("p2", "Nurhayati", 901, dob="1970-03-04")]
    for d in (whole, left):
        for ev in probe:
            d.process_one(ev)
    found = [[f.score for f in d.process_one(pair[0]) + d.process_one(pair[1])] for d in (whole, left)]
    assert found[0] and found[0] == found[1], found


def test_a_delta_of_another_sketch_or_garbage_is_refused():
    small = PersonDuplicateDetector({}, SECRET, sketch_width=1 << 10)
    small.share_name_counts()
    small.process_one(person("a", "Siti Aminah"))
    delta = small.name_count_delta()
    default = PersonDuplicateDetector({}, SECRET)
    for bad in (delta, b"xx", b"not a delta at all", delta[:-2]):
        with pytest.raises(ValueError):
            default.merge_name_counts(bad)
    with pytest.raises(ValueError):
        small.merge_name_counts(delta[:-4])
    assert default.name_count_items == 0 and default.merge_name_counts(b"") == 0
    assert small.merge_name_counts(delta) == small.name_count_items // 2


def test_a_bounded_delta_leaves_the_rest_for_the_next():
    a, b = PersonDuplicateDetector({}, SECRET), PersonDuplicateDetector({}, SECRET)
    a.share_name_counts()
    for ev in _namesakes(5):
        a.process_one(ev)
    parts = []
    while delta := a.name_count_delta(max_items=3):
        parts.append(b.merge_name_counts(delta))
    assert parts == [3, 3, 3, 1] and (a.names.table == b.names.table).all()


def test_many_deltas_at_once_add_what_one_by_one_adds():
    a, one_by_one, at_once = (PersonDuplicateDetector({}, SECRET, sketch_width=1 << 8) for _ in range(3))
    a.share_name_counts()
    deltas = []
    for ev in _namesakes(300):
        a.process_one(ev)
        deltas.append(a.name_count_delta())
    for d in deltas:
        one_by_one.merge_name_counts(d)
    assert at_once.merge_name_counts(*deltas) == 600  # enough cells for the whole-table pass
    assert (at_once.names.table == a.names.table).all() and (one_by_one.names.table == a.names.table).all()
    with pytest.raises(ValueError):
        at_once.merge_name_counts(deltas[0], b"garbage")
    assert (at_once.names.table == a.names.table).all(), "a refused batch added something"


@pytest.mark.parametrize("typo_dob", ["1990-01-06", "1990-07-05", "1991-01-05"])  # day one off; month replaced; year one off
def test_a_date_typo_of_an_older_voter_is_found_once_the_blocks_are_full(typo_dob):
    # Blocks keep their newest members. Later voters of the same name sound,
    # born in the same year in other months on other days, must not push the
    # older voter out of every block that a one-part date typo of theirs
    # shares (m: year + month, d: year + day, b: month + day).
    det = PersonDuplicateDetector({}, SECRET, max_candidates=4)
    det.process_one(person("old", "Siti Aminah", dob="1990-01-05"))
    for i, dob in enumerate(["1990-02-11", "1990-03-12", "1990-04-13", "1990-05-14", "1990-06-15", "1990-08-16"]):
        det.process_one(moved(f"other{i}", "Siti Amina", 10 + i, dob=dob, nkk=f"32010202020200{10 + i}"))
    findings = det.process_one(moved("again", "Siti Aminah", 2, dob=typo_dob, nkk="3273010101010001",
                                     address="Jl. Merdeka No. 5", rt="001", rw="002", regency="3273"))
    assert any("old" in f.event_ids for f in findings)


def test_a_verdict_between_two_blocks_of_one_record_changes_the_second_blocks_score():
    # In the worker each block of a record is its own routed message, and a
    # verdict can be learned between two of them: a pair remembered from the
    # first block must be scored again by the scorer as it is now.
    det = PersonDuplicateDetector({}, SECRET)
    det.process_one(person("e1", "Siti Aminah"))
    again = moved("e2", "Siti Aminah", 2)
    shared = [k for k in det.blocking_keys(again) if k in det.index]
    assert len(shared) >= 2
    [first] = det.match_in_block(shared[0], again)
    for _ in range(30):
        det.learn_feedback(first.evidence["features"], is_duplicate=False)
    later = det.match_in_block(shared[1], again)
    assert not later or later[0].score < first.score


def test_the_logit_ceiling_is_never_below_the_scorers_logit():
    # Pairs whose ceiling is below the threshold are not scored at all, so the
    # ceiling must hold for any weights staff verdicts may have moved to.
    from models.duplicate_person import PRIOR, _UNSCORED, _nik_cross, date_relation

    rng = random.Random(5)
    names = ["Siti Aminah", "Siti Amina", "Aminah", "Siti Aminah Hasan", "Dewi Ratnasari", "Dewy Ratna Sari",
             "Putra Wijaya", "Putri Wijaya", "Budi", "Budi Santoso"]
    places = ["Bandung", "Bandung", "Bogor", "", "Kota Bandung"]
    addresses = ["Jl. Merdeka No. 5", "Jalan Merdeka 5", "Gg. Melati 12", ""]
    dates = ["1990-01-05", "1990-05-01", "1990-01-06", "1990-07-05", "1991-01-05", None, "1990-01-01"]
    checked = bounded = early = hopeless = 0
    for trial in range(40):
        prior = {k: rng.uniform(-15, 15) for k in PRIOR}
        det = PersonDuplicateDetector({}, SECRET, prior=prior)
        shared_floor = rng.uniform(10, 60)  # one per trial, so that records alike share their sets
        for i in range(60):
            a = det.compact(person(f"a{i}", rng.choice(names), dob=rng.choice(dates), sex=rng.choice("PL"),
                                   place=rng.choice(places), address=rng.choice(addresses),
                                   nkk=rng.choice(["3273010101010001", "3201020202020002", None]), serial=1,
                                   rt=rng.choice(["001", ""]), rw=rng.choice(["002", ""]),
                                   nik=rng.choice([None, None, "A1234567"])))  # another list's number: no NIK date
            b = det.compact(moved(f"b{i}", rng.choice(names), 2, dob=rng.choice(dates), sex=rng.choice("PL"),
                                  place=rng.choice(places), address=rng.choice(addresses),
                                  nkk=rng.choice(["3273010101010001", "3201020202020002", None]),
                                  regency=rng.choice(["3273", "3201"])))
            sim = name_similarity(a[3].split(), b[3].split())
            rel, slip = date_relation(a[4], b[4]), rng.random() < 0.2
            common = max(det.name_commonness(a[3]), det.name_commonness(b[3]))
            x = det._features(a, b, sim, slip, rel, common, {})
            exact = det.model._raw_dot_one({k: v for k, v in x.items() if k not in _UNSCORED})
            assert det._logit_ceiling(a, b, sim, slip, rel, common) >= exact, (trial, i, x)
            # Without the names' similarity, and with only the record's own name's commonness.
            loose = det._logit_ceiling(a, b, None, slip, rel, det.name_commonness(a[3]))
            assert loose >= exact, (trial, i, x)
            # Given a floor, the loose bound may stop early, but only below the floor where the whole one is.
            floor = loose + rng.uniform(-3, 9)
            stopped = det._ceiling_for(a)(b, None, slip, rel, det.name_commonness(a[3]), floor)
            assert (stopped < floor) == (loose < floor) and stopped >= loose - 1e-9, (trial, i, x)
            early += stopped != loose
            # And no candidate's loose ceiling is above the record's bound for the relation
            # (a near slip is checked per candidate, a NIK-date cross adds its weight).
            if not slip:
                ceiling = det._ceiling_for(a)
                ta, tb = a[3].split(), b[3].split()
                kind = (bool(a[11]) and a[11] == b[11],
                        not (a[6] is not None and b[6] is not None) and not (a[5] and b[5]) and not (a[8] and b[8]),
                        sum(t not in tb for t in ta) == 1 and sum(t not in ta for t in tb) == 1)
                best = ceiling.any_candidate(det.name_commonness(a[3]))[kind][rel]
                crossed = rel != "missing" and _nik_cross(a, b)
                cross = det._weights_now()[0].get("dob_nik_cross", 0.0)
                assert best + (max(0.0, cross) if crossed else 0.0) >= loose, (trial, i, rel, x)
                # Shared between records alike in which fields they have: the same sets as the record's own.
                assert det._hopeless_for(a, shared_floor) == ceiling.hopeless(det.name_commonness(a[3]), shared_floor)
                hopeless += sum(map(len, det._hopeless_for(a, shared_floor)[0].values()))
                bounded += 1
            checked += 1
    assert checked == 2400 and bounded > 1500 and early > 200 and hopeless > 1000


def test_the_logit_ceiling_follows_the_scorer_after_a_verdict():
    # The bound is kept per record and scorer: a verdict learned between two
    # blocks of one record must move it, or pairs would be skipped on old weights.
    det = PersonDuplicateDetector({}, SECRET)
    a = det.compact(person("a", "Siti Aminah", dob="1990-01-05"))
    b = det.compact(moved("b", "Siti Aminah", 2, dob="1990-01-05"))
    before = det._logit_ceiling(a, b, 1.0, False, "equal", 0.0)
    x = det.features(a, b)
    for _ in range(20):
        det.learn_feedback(x, is_duplicate=True)
    after = det._logit_ceiling(a, b, 1.0, False, "equal", 0.0)
    fresh = PersonDuplicateDetector({}, SECRET, prior=det.scorer_state())
    assert after > before
    assert after == fresh._logit_ceiling(a, b, 1.0, False, "equal", 0.0)


def test_a_records_blocks_among_other_records_prepare_it_once():
    # In the worker a record's blocks come as separate routed events, mixed
    # with other records' blocks: its compact form and keys are worked out
    # once, in stage 1, not once per block.
    class Counting(PersonDuplicateDetector):
        calls = 0

        def _blocking_keys(self, event):
            type(self).calls += 1
            return super()._blocking_keys(event)

    det = Counting({}, SECRET)
    events = [person(f"e{i}", name, serial=i + 1)
              for i, name in enumerate(["Siti Aminah", "Budi Santoso", "Dewi Ratnasari", "Putra Wijaya"])]
    routes = [(key, event) for event in events for key in det.blocking_keys(event)]
    random.Random(3).shuffle(routes)
    for key, event in routes:
        det.match_in_block(key, event)
    assert len(routes) >= 4 * 7
    assert Counting.calls == len(events)


def test_the_prepared_records_kept_are_the_most_recent(monkeypatch):
    # A backlog spreads a record's blocks over thousands of others': the memo
    # forgets its oldest record, not all of them at once.
    import models.duplicate_person as dp

    monkeypatch.setattr(dp, "PREPARED_MEMO", 3)
    calls = []

    class Counting(PersonDuplicateDetector):
        def _blocking_keys(self, event):
            calls.append(event["event_id"])
            return super()._blocking_keys(event)

    det = Counting({}, SECRET)
    events = [person(f"e{i}", name, serial=i + 1)
              for i, name in enumerate(["Siti Aminah", "Budi Santoso", "Dewi Ratnasari", "Putra Wijaya"])]
    for event in events:
        det.blocking_keys(event)
    for event in events[1:]:
        det.blocking_keys(event)
    assert calls == ["e0", "e1", "e2", "e3"], "the three most recent are remembered"
    det.blocking_keys(events[0])
    assert calls[-1] == "e0", "the oldest was forgotten"


def test_verdicts_open_a_pair_the_records_bound_had_ruled_out():
    # The per-record bound skips namesakes with one wrong part of the birth
    # date before any scoring. It is kept by scorer: once staff say such
    # pairs are duplicates, the next one must be scored and found.
    from models.duplicate_person import date_relation

    det = PersonDuplicateDetector({}, SECRET)
    for _ in range(10_000):  # a name too common for one wrong date part (commonness 1, kept by more adds)
        det.names.add("SITI AMINAH")
    a = person("a", "Siti Aminah", dob="1990-01-05")
    det.process_one(a)
    b = moved("b", "Siti Aminah", 2, dob="1990-01-17", place="Bogor")
    assert det.process_one(b) == []
    rec_a, rec_b = det.compact(a), det.compact(b)
    assert date_relation(rec_a[4], rec_b[4]) == "part"
    floor = 0.0  # the threshold's logit at 0.5
    assert "part" in det._hopeless_for(rec_a, floor)[2] or "part" in det._hopeless_for(rec_b, floor)[2]
    x = det.features(rec_b, rec_a)
    for _ in range(300):
        det.learn_feedback(x, is_duplicate=True)
    c = moved("c", "Siti Aminah", 3, dob="1990-01-17", place="Bogor")
    found = det.process_one(c)
    assert any("a" in f.event_ids for f in found), [f.event_ids for f in found]
