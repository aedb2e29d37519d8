"""Sirekap 2024 records -> result.v1."""

from __future__ import annotations

import json
import zipfile

import fastjsonschema
import pytest

from app.sirekap import DEFAULT_SAMPLE, SirekapRecordError, convert, iter_sample, rejection_reason, sirekap_to_result
from models.tally_arithmetic import check_tally

SCHEMA = json.loads((DEFAULT_SAMPLE.parent.parent / "app" / "schemas" / "result.v1.json").read_text())
validate = fastjsonschema.compile(SCHEMA, formats={"date-time": lambda _: True})

# A real record from the sample (3101011001002), as published.
RECORD = {
    "chart": {"null": None, "100025": 92, "100026": 126, "100027": 30},
    "images": ["https://sirekap-obj-formc.kpu.go.id/x.jpg", None, None],
    "administrasi": {
        "suara_sah": 248, "suara_total": 255, "pemilih_dpt_j": 285, "pemilih_dpt_l": 144, "pemilih_dpt_p": 141,
        "pengguna_dpt_j": 251, "pengguna_dpt_l": 122, "pengguna_dpt_p": 129, "pengguna_dptb_j": 0,
        "pengguna_dptb_l": 0, "pengguna_dptb_p": 0, "suara_tidak_sah": 7, "pengguna_total_j": 255,
        "pengguna_total_l": 124, "pengguna_total_p": 131, "pengguna_non_dpt_j": 4, "pengguna_non_dpt_l": 2,
        "pengguna_non_dpt_p": 2},
    "psu": None, "ts": "2024-02-16 12:51:22", "status_suara": True, "status_adm": True,
}


def test_real_record_converts_to_a_valid_result():
    ev = convert("3101011001002", RECORD)
    validate(ev)
    assert ev["votes"] == {"01": 92, "02": 126, "03": 30}
    assert ev["registered"] == {"dpt": 285, "dptb": 0, "dpk": 4}
    assert (ev["voters"], ev["valid"], ev["invalid"]) == (255, 248, 7)
    assert ev["registered_by_sex"] == {"L": 146, "P": 143}
    assert ev["voters_by_sex"] == {"L": 124, "P": 131}
    assert ev["submitted_at"] == "2024-02-16T12:51:22+07:00"
    assert ev["region"] == {"province": "31", "regency": "3101", "district": "310101", "village": "3101011001"}
    assert (ev["contest"], ev["revision"], ev["source"], ev["tps"]) == ("PPWP", 0, "sirekap", "3101011001002")
    assert check_tally(ev) == []


def test_event_id_is_deterministic_and_content_addressed():
    a = convert("3101011001002", RECORD)["event_id"]
    assert a == convert("3101011001002", json.loads(json.dumps(RECORD)))["event_id"]
    changed = json.loads(json.dumps(RECORD))
    changed["chart"]["100025"] = 93
    assert convert("3101011001002", changed)["event_id"] != a
    assert convert("3101011001003", RECORD)["event_id"] != a


@pytest.mark.parametrize("mutate,reason", [
    (lambda r: r.update(chart=None), "no_votes"),
    (lambda r: r.update(chart={"null": None}), "no_votes"),
    (lambda r: r["chart"].update({"100026": None}), "votes_incomplete"),
    (lambda r: r.update(administrasi=None), "no_admin"),
    (lambda r: r["administrasi"].update(suara_sah=None), "admin_incomplete"),
    (lambda r: r["administrasi"].update(pemilih_dpt_j=-1), "bad_number"),
    (lambda r: r["chart"].update({"100025": "92"}), "bad_number"),
    (lambda r: r.update(ts=None), "bad_ts"),
])
def test_records_that_cannot_make_a_result_give_a_reason(mutate, reason):
    rec = json.loads(json.dumps(RECORD))
    mutate(rec)
    with pytest.raises(SirekapRecordError) as exc:
        convert("3101011001002", rec)
    assert exc.value.reason == reason
    assert sirekap_to_result("3101011001002", rec) is None
    assert rejection_reason("3101011001002", rec) == reason


def test_bad_tps_code():
    assert rejection_reason("31010110010", RECORD) == "bad_tps_code"
    assert rejection_reason("310101100100A", RECORD) == "bad_tps_code"


def test_optional_sex_splits_may_be_missing():
    rec = json.loads(json.dumps(RECORD))
    for k in list(rec["administrasi"]):
        if k.endswith(("_l", "_p")):
            rec["administrasi"][k] = None
    ev = convert("3101011001002", rec)
    validate(ev)
    assert ev["registered_by_sex"] is None and ev["voters_by_sex"] is None


def test_the_shipped_sample_converts_and_every_event_validates():
    pairs = list(iter_sample())
    assert len(pairs) == 1000 and len({t for t, _ in pairs}) == 1000   # the two zips overlap by 53 TPS
    events = [e for e in (sirekap_to_result(t, r) for t, r in pairs) if e is not None]
    assert len(events) == 348
    for ev in events:
        validate(ev)
    assert len({e["event_id"] for e in events}) == 348
    # The README's counts on these records.
    assert sum(1 for e in events if sum(e["votes"].values()) != e["valid"]) == 28
    assert sum(1 for e in events if max(e["votes"].values()) > 300) == 3
    assert sum(1 for e in events if e["registered"]["dpt"] == 0) == 8


def test_iter_sample_reads_a_directory_of_json_and_a_single_zip(tmp_path):
    (tmp_path / "3101011001002.json").write_text(json.dumps(RECORD))
    assert [t for t, _ in iter_sample(tmp_path)] == ["3101011001002"]
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("dir/3101011001002.json", json.dumps(RECORD))
        zf.writestr("dir/3101011001003.json", json.dumps(RECORD, indent=4))
        zf.writestr("dir/", "")
    assert [t for t, _ in iter_sample(z)] == ["3101011001002", "3101011001003"]
    # Directory with the zip and the json: the json's identical copy is yielded once.
    assert sorted(t for t, _ in iter_sample(tmp_path)) == ["3101011001002", "3101011001003"]


def test_sample_ships_with_its_licence_and_readme():
    assert (DEFAULT_SAMPLE / "LICENSE").read_text().startswith("MIT License")
    assert "Sirekap" in (DEFAULT_SAMPLE / "README.md").read_text()
