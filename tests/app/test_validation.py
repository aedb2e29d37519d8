"""Validation: every kind of bad input gets its reason; good input passes untouched."""

from __future__ import annotations

import orjson
import pytest

from app.validation import REASONS, InvalidEvent, Validator
from tests.factories import dumps, registration, result

V = Validator(max_bytes=65536)


def reason(stream: str, payload: bytes) -> str:
    with pytest.raises(InvalidEvent) as info:
        V.decode(stream, payload)
    assert info.value.reason in REASONS
    assert info.value.detail
    return info.value.reason


def test_good_events_pass_and_come_back_as_dicts():
    reg = registration()
    assert V.decode("registrations", dumps(reg)) == reg
    res = result()
    assert V.decode("results", dumps(res)) == res


def test_registration_with_gaps_is_processed_not_dead_lettered():
    reg = registration()
    for field in ("nkk", "birth_place", "birth_date", "sex", "marital_status", "address", "rt", "rw", "disability"):
        reg["voter"][field] = None
    reg["tps"] = None
    del reg["source"], reg["operator_id"]
    assert V.decode("registrations", dumps(reg))["voter"]["birth_date"] is None
    reg["voter"]["birth_date"] = ""
    assert V.decode("registrations", dumps(reg))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "empty"),
        (b'{"event_id": "x", ', "invalid_json"),
        (b"\xff\xfe\x00", "invalid_encoding"),
        (b'{"name": "caf\xe9"}', "invalid_encoding"),
        (b"[1, 2]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (b'{"x": NaN}', "invalid_json"),
        (b'{"x": Infinity}', "invalid_json"),
        (b"{" * 10000 + b"}" * 10000, "invalid_json"),
        (b'{"a": "' + b"x" * 70000 + b'"}', "oversized"),
    ],
)
def test_malformed_payloads(payload, expected):
    assert reason("results", payload) == expected


def test_duplicated_keys_are_refused():
    body = dumps(result())[:-1] + b', "voters": 1}'
    assert reason("results", body) == "duplicate_keys"


def test_escaped_quotes_are_not_mistaken_for_duplicate_keys():
    reg = registration(name='Siti "Ina" Aminah')
    assert V.decode("registrations", dumps(reg))["voter"]["name"] == 'Siti "Ina" Aminah'
    # The same quote written as \u0022: fewer quote characters in the text, still no duplicate.
    body = dumps(reg).replace(b'\\"Ina\\"', b"\\u0022Ina\\u0022")
    assert b"u0022" in body
    assert V.decode("registrations", body)["voter"]["name"] == 'Siti "Ina" Aminah'


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.update(event_id=5), "schema"),
        (lambda e: e.pop("occurred_at"), "schema"),
        (lambda e: e.update(action="delete"), "schema"),
        (lambda e: e["voter"].pop("nik"), "schema"),
        (lambda e: e["region"].update(province="3"), "schema"),
        (lambda e: e.update(occurred_at="2023-02-30T10:00:00+07:00"), "invalid_date"),
        (lambda e: e.update(occurred_at="2023-11-01T10:00:00"), "invalid_date"),
        (lambda e: e.update(occurred_at="yesterday"), "invalid_date"),
        (lambda e: e.update(occurred_at="9999-01-01T00:00:00+07:00"), "invalid_date"),
        (lambda e: e["voter"].update(birth_date="1990-13-01"), "invalid_date"),
        (lambda e: e["voter"].update(birth_date="1700-01-01"), "invalid_date"),
    ],
)
def test_bad_registrations(change, expected):
    reg = registration()
    change(reg)
    assert reason("registrations", dumps(reg)) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.update(voters=-1), "schema"),
        (lambda e: e.update(votes={}), "schema"),
        (lambda e: e.update(votes={"01": "ten"}), "schema"),
        (lambda e: e.update(votes={"01": 10**12}), "schema"),
        (lambda e: e.update(contest="MAYOR"), "schema"),
        (lambda e: e.update(tps="123"), "schema"),
        (lambda e: e.update(submitted_at="2024-02-31T19:00:00+07:00"), "invalid_date"),
    ],
)
def test_bad_results(change, expected):
    res = result()
    change(res)
    assert reason("results", dumps(res)) == expected


def test_details_never_echo_personal_data():
    reg = registration()
    nik, name = reg["voter"]["nik"], reg["voter"]["name"]
    for change in (lambda e: e["voter"].update(nik=12345), lambda e: e["voter"].update(birth_date="1990-02-30"),
                   lambda e: e["voter"].update(sex="X")):
        bad = registration()
        change(bad)
        with pytest.raises(InvalidEvent) as info:
            V.decode("registrations", dumps(bad))
        assert nik not in str(info.value) and name not in str(info.value) and "1990-02-30" not in str(info.value)


def test_feedback_events():
    fb = {"alert_id": "duplicate_person-0123456789abcdef0123", "verdict": "false_positive",
          "decided_at": "2024-02-15T10:00:00+07:00", "reviewer": "staff-7"}
    assert V.decode("feedback", orjson.dumps(fb))["verdict"] == "false_positive"
    assert reason("feedback", orjson.dumps({**fb, "verdict": "unsure"})) == "schema"


def test_the_worker_refuses_events_from_the_future_but_replay_of_history_does_not():
    from datetime import datetime, timedelta, timezone

    ahead = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()
    worker = Validator(max_future_seconds=86400)
    with pytest.raises(InvalidEvent, match="ahead of this worker's clock"):
        worker.decode("results", dumps(result(submitted_at=ahead)))
    assert worker.decode("results", dumps(result()))  # 2024 is fine
    assert V.decode("results", dumps(result(submitted_at=ahead)))  # replay: no wall clock
