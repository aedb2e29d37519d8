"""Fuzzing without a broker: thousands of generated inputs against the Validator, replay and the detectors.

Inputs come from ``tests.strategies``: events built from the JSON Schemas
(valid ones, and ones broken in one known way) and hostile bytes. Runs are
derandomised, so a failure reproduces; each test prints how many inputs it
tried. Volume is here; ``tests/integration/test_fuzz.py`` sends a few hundred
of the same kinds through the real broker to a worker.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.alerter import Alerter
from app.pipeline import DETECTOR_ERRORS, Pipeline, dict_stores
from app.replay import guess_stream
from app.settings import Settings
from app.validation import REASONS, InvalidEvent, Validator, load_schema
from tests.strategies import (
    HOSTILE, ORACLES, STREAMS, Payload, any_valid_event, dumps, hostile_bytes, key_for, mutated_event, tricky_good,
    valid_event,
)

ROOT = Path(__file__).resolve().parents[2]
V = Validator(max_bytes=65536)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TRIED: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    yield
    print(f"\ninputs tried per test: {dict(TRIED)}; total {sum(TRIED.values())}")


def decode(stream: str, payload: bytes) -> tuple[dict | None, InvalidEvent | None]:
    """Decode; anything but InvalidEvent propagates (and fails the test)."""
    try:
        return V.decode(stream, payload), None
    except InvalidEvent as exc:
        assert exc.reason in REASONS
        assert isinstance(exc.detail, str) and 0 < len(exc.detail) <= 200 and exc.detail.isprintable(), exc.detail
        return None, exc


# -- the Validator -----------------------------------------------------------------
@settings(FUZZ, max_examples=1000)
@given(st.sampled_from(STREAMS), st.binary(max_size=400))
def test_decode_of_random_bytes_raises_only_invalid_event(stream, payload):
    TRIED["random bytes"] += 1
    decode(stream, payload)


@FUZZ
@given(hostile_bytes())
def test_decode_of_generated_hostile_bytes_gives_the_expected_reason(p: Payload):
    TRIED["generated hostile"] += 1
    event, exc = decode(p.stream, p.value)
    if p.reason is not None:
        assert exc is not None and exc.reason == p.reason, (p.name, p.value[:200], exc)


@pytest.mark.parametrize("p", HOSTILE, ids=[p.name for p in HOSTILE])
def test_decode_of_the_hostile_corpus_gives_the_expected_reason(p: Payload):
    TRIED["hostile corpus"] += 1
    event, exc = decode(p.stream, p.value)
    assert exc is not None, f"{p.name} was accepted"
    assert exc.reason == p.reason, (p.name, exc)


@FUZZ
@given(any_valid_event())
def test_schema_valid_events_pass_and_come_back_unchanged(stream_event):
    TRIED["valid events"] += 1
    stream, event = stream_event
    assert ORACLES[stream].is_valid(event)  # the generator agrees with jsonschema
    decoded, exc = decode(stream, dumps(event))
    assert exc is None, (exc, event)
    assert decoded == event


@pytest.mark.parametrize("stream, event", tricky_good(), ids=[e["event_id"] for _, e in tricky_good()])
def test_hostile_looking_but_valid_events_pass(stream, event):
    TRIED["tricky good"] += 1
    assert decode(stream, dumps(event))[1] is None


@FUZZ
@given(mutated_event())
def test_events_broken_one_way_get_the_reason_for_it(p: Payload):
    TRIED["mutated events"] += 1
    _, exc = decode(p.stream, p.value)
    assert exc is not None and exc.reason == p.reason, (p.name, exc)


@pytest.mark.parametrize("depth", [10, 100, 300, 1025, 1500, 10_000])
def test_deep_nesting_is_invalid_json_or_schema(depth):
    TRIED["nesting"] += 2
    for payload in (b'{"a":' * depth + b"1" + b"}" * depth, b"[" * depth + b"]" * depth):
        _, exc = decode("results", payload)
        assert exc is not None and exc.reason in ("invalid_json", "schema", "not_an_object")


# Nesting within orjson's 1024-level limit once raised RecursionError in the duplicate-key check.


@pytest.mark.parametrize("depth", [600, 1000, 1024])
def test_nesting_within_the_parser_limit_is_an_invalid_event(depth):
    for payload in (b'{"a":' * depth + b"1" + b"}" * depth, b'{"x":' + b"[" * depth + b"]" * depth + b"}"):
        _, exc = decode("results", payload)
        assert exc is not None


# Escaped quotes once hid a duplicated key from the quote count.


def test_duplicated_key_next_to_escaped_quotes_is_a_dead_letter():
    payload = b'{"alert_id":"x","note":"\\"\\"\\"\\"","alert_id":"y","verdict":"true_positive",' \
              b'"decided_at":"2024-02-14T20:00:00+07:00"}'
    _, exc = decode("feedback", payload)
    assert exc is not None and exc.reason == "duplicate_keys", "accepted with alert_id 'y'"


# -- replay as a subprocess ----------------------------------------------------------
def test_replay_of_every_hostile_line_exits_0_and_writes_one_dead_letter_per_bad_line(tmp_path):
    lines: list[Payload] = [p for p in HOSTILE if p.is_line]
    collected: list[Payload] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(hostile_bytes(), mutated_event()))
    def collect(p):
        if p.is_line:
            collected.append(p)

    collect()
    good = [(s, e) for s, e in tricky_good()]
    rows = [p.value for p in lines + collected] + [dumps(e) for _, e in good]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    blank = sum(1 for r in rows if not r.strip())
    expected_bad = {i + 1: p for i, p in enumerate(lines + collected) if not p.is_blank}
    TRIED["replay lines"] += len(rows)

    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "app.cli", "replay", str(path), "--out", str(tmp_path / "alerts.jsonl"),
         "--dead-letters", str(tmp_path / "dead.jsonl"), "--summary", str(tmp_path / "summary.json"), "--quiet"],
        cwd=ROOT, capture_output=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    dead = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    by_line = {int(d["source"].rsplit(":", 1)[1]): d for d in dead}
    assert len(by_line) == len(dead), "one dead letter per line"
    # every bad line whose reason is known has its dead letter with that reason; the rest are valid or dead
    for number, p in expected_bad.items():
        guessed = guess_stream(p.value) or "registrations"  # replay tells streams apart by content
        if guessed != p.stream:
            _, exc = decode(guessed, p.value)
            p = Payload(p.name, guessed, p.value, exc.reason if exc else None)
        if p.reason is not None:
            assert number in by_line, (number, p.name)
            assert by_line[number]["reason"] == p.reason, (p.name, by_line[number])
    for d in dead:
        assert d["reason"] in REASONS and d["detail"]
    for number in range(len(rows) - len(good) + 1, len(rows) + 1):
        assert number not in by_line, "a valid line was dead-lettered"
    processed = sum(summary["events"].values())
    assert processed + len(dead) + blank == len(rows)
    print(f"\nreplay: {len(rows)} lines, {processed} processed, {len(dead)} dead letters, {blank} blank")


# -- the detectors ---------------------------------------------------------------------
class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: tricky_good() without the 500-candidate tally: ocr_misread takes 2-5 s on it (quadratic in
#: candidates), which would dominate the run; it goes through the worker in tests/integration/test_fuzz.py.
TRICKY_CHEAP = [(s, e) for s, e in tricky_good() if len(e.get("votes") or ()) < 100]
PIPELINE_EXAMPLES = 60  # x 10 events
ALERT_SCHEMA = jsonschema.Draft202012Validator(load_schema("alert.v1"))


@pytest.fixture(scope="module")
def pipeline_run():
    stores = dict_stores()
    pipeline = Pipeline(Settings(), stores)
    clock = {"now": None}
    alerter = Alerter(stores("alerts"), 86400, clock=lambda: clock["now"])
    return pipeline, alerter, clock


def test_detectors_never_fail_on_any_schema_valid_event(pipeline_run):
    """One pipeline (state accumulates, as in a worker) over thousands of generated events."""
    from datetime import datetime

    pipeline, alerter, clock = pipeline_run
    handler = _Errors()
    logging.getLogger("app.pipeline").addHandler(handler)
    errors_before = dict(DETECTOR_ERRORS)
    failures: list[tuple[str, dict, str]] = []
    alerts_seen: Counter = Counter()

    one = st.one_of(valid_event("registrations", campaign=True).map(lambda e: ("registrations", e)),
                    valid_event("results", campaign=True).map(lambda e: ("results", e)),
                    st.sampled_from(TRICKY_CHEAP))

    @settings(max_examples=PIPELINE_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(one, min_size=10, max_size=10))
    def run(batch):
        for stream, event in batch:
            run_one(stream, event)

    def run_one(stream, event):
        event = V.decode(stream, dumps(event))  # exactly what the worker hands the pipeline
        TRIED["pipeline events"] += 1
        clock["now"] = datetime.fromisoformat(event.get("occurred_at") or event["submitted_at"])
        mark = len(handler.records)
        try:
            findings = pipeline.process_local(stream, event)
            for finding in findings:
                alert = alerter.publish(finding)
                if alert is not None:
                    alerts_seen[alert["detector"]] += 1
                    problems = [e.message for e in ALERT_SCHEMA.iter_errors(orjson.loads(orjson.dumps(alert)))]
                    assert not problems, (alert, problems)
        except Exception:  # noqa: BLE001 - collected and reported below
            failures.append((stream, event, traceback.format_exc()))
        for record in handler.records[mark:]:
            text = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else record.getMessage()
            failures.append((stream, event, text))

    try:
        run()
        for finding in pipeline.volume_advance(datetime(2101, 1, 1).astimezone()):
            alerter.publish(finding)
    finally:
        logging.getLogger("app.pipeline").removeHandler(handler)
    print(f"\npipeline: {TRIED['pipeline events']} events, alerts {dict(alerts_seen)}, "
          f"detector errors {dict(DETECTOR_ERRORS)}")
    report = "\n\n".join(f"{s} {orjson.dumps(e).decode()[:600]}\n{tb}" for s, e, tb in failures[:3])
    assert not failures, f"{len(failures)} detector failures; first ones:\n{report}"
    assert DETECTOR_ERRORS == errors_before


def test_key_for_follows_the_contract():
    from tests.factories import registration, result

    reg, res = registration(), result()
    assert key_for("registrations", reg) == reg["voter"]["nik"].encode()
    assert key_for("results", res) == res["tps"].encode()
