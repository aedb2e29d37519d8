"""Every simulated event validates against the published JSON Schemas."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import fastjsonschema
import jsonschema
import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "app" / "schemas"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _checker() -> jsonschema.FormatChecker:
    # jsonschema checks "date-time" only with the optional rfc3339-validator installed;
    # check RFC 3339 ourselves so the test cannot silently skip the format.
    fc = jsonschema.FormatChecker()

    @fc.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _RFC3339.match(value):
            raise ValueError(f"not RFC 3339 with offset: {value!r}")
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return fc


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=_checker())


def test_format_checker_rejects_bad_times():
    v = _validator("registration.v1.json")
    bad = {"event_id": "x", "occurred_at": "2023-11-01 08:00", "action": "add",
           "voter": {"nik": "1", "name": "A"}, "region": {"province": "32"}}
    assert not v.is_valid(bad)
    bad["occurred_at"] = "2023-11-01T08:00:00"  # no offset
    assert not v.is_valid(bad)
    bad["occurred_at"] = "2023-11-01T08:00:00+07:00"
    assert v.is_valid(bad)


@pytest.mark.parametrize("stream,schema", [("registrations", "registration.v1.json"),
                                           ("results", "result.v1.json")])
def test_every_event_validates(out, stream, schema):
    """fastjsonschema (what the worker uses) over every event; jsonschema with format
    checks over every injected event, every record with gaps and every 10th other one
    (jsonschema over all 20k+ events takes longer than the whole suite may)."""
    events = out.regs if stream == "registrations" else out.results
    assert events
    fast = fastjsonschema.compile(json.loads((SCHEMAS / schema).read_text()))
    for e in events:
        fast(e.value)
    v = _validator(schema)
    for i, e in enumerate(events):
        voter = e.value.get("voter") or {}
        gaps = not voter.get("birth_date") or not voter.get("nkk") or not voter.get("marital_status")
        if e.labels or i % 50 == 0 or (voter and gaps):
            errors = list(v.iter_errors(e.value))
            assert not errors, (e.value["event_id"], [er.message for er in errors])


def test_keys_and_times(out):
    for e in out.regs:
        assert e.key == e.value["voter"]["nik"]
        assert dt.datetime.fromisoformat(e.value["occurred_at"]) == e.at
    for e in out.results:
        assert e.key == e.value["tps"]
        assert dt.datetime.fromisoformat(e.value["submitted_at"]) == e.at
        assert e.value["tps"][:10] == e.value["region"]["village"]
    assert len({e.value["event_id"] for e in out.regs + out.results}) == len(out.regs) + len(out.results)


def test_region_codes_are_real_and_nested(out):
    from lokal import wilayah
    villages = {e.value["region"]["village"] for e in out.regs + out.results}
    for code in villages:
        dotted = f"{code[:2]}.{code[2:4]}.{code[4:6]}.{code[6:]}"
        assert wilayah.get_wilayah(dotted) is not None, code
    for e in out.regs:
        r = e.value["region"]
        assert r["village"].startswith(r["district"]) and r["district"].startswith(r["regency"])
        assert r["regency"].startswith(r["province"])
        assert e.value["tps"] is None or e.value["tps"][:10] == r["village"]


def test_missing_optional_fields_are_present_but_valid(out):
    """Voter lists have gaps; some records lack birth date or NKK and still validate."""
    legit = out.legit()
    assert sum(e.value["voter"]["birth_date"] is None for e in legit) > 0
    assert sum(e.value["voter"]["birth_date"] == "" for e in legit) > 0
    assert sum(e.value["voter"]["nkk"] is None for e in legit) > 0
