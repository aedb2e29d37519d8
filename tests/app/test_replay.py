"""``pantau replay``: several processes give what one gives, line for line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from app.replay import run_replay
from app.settings import Settings
from sim.simulator import CONTESTS, WIB, Simulator

ROOT = Path(__file__).resolve().parents[2]


def _tallies(templates: list[dict], regencies: list[str], per_regency: int) -> list[dict]:
    """Copies of the simulator's tallies spread over ``regencies`` (enough TPS per regency for
    digit_forensics to evaluate), and a later revision of one TPS; the templates' own anomalies
    (broken sums, stuffed TPS) come along."""
    out = []
    start = datetime(2024, 2, 14, 13, 0, tzinfo=WIB)
    for i in range(per_regency * len(regencies)):
        t = templates[i % len(templates)]
        regency = regencies[i % len(regencies)]
        n = i // len(regencies)
        village = f"{regency}01{2001 + n // 10:04d}"
        tps = f"{village}{n % 10 + 1:03d}"
        out.append({**t, "event_id": f"t-{i}", "tps": tps, "contest": "PPWP", "revision": 0,
                    "region": {"province": regency[:2], "regency": regency, "district": village[:6],
                               "village": village},
                    "submitted_at": (start + timedelta(seconds=7 * i)).isoformat()})
    out.append({**out[5], "event_id": "t-5-rev1", "revision": 1, "voters": out[5]["voters"] + 40,
                "submitted_at": (start + timedelta(hours=3)).isoformat()})
    return out


def _stamp(event: dict) -> str:
    return event.get("occurred_at") or event.get("submitted_at")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Registrations and results in time order, staff verdicts on duplicate alerts, and bad lines."""
    sim = Simulator(seed=5, voters=3000, tps_per_village=12, contests=CONTESTS, anomaly_rate=0.1)
    regs = [e.value for e in sim.registrations()]
    results = [e.value for e in sim.results()]
    templates = [r for r in results if r["contest"] == "PPWP"]
    events = sorted(regs + results + _tallies(templates, ["3201", "3202", "3203", "3204", "3171"], 150),
                    key=lambda e: datetime.fromisoformat(_stamp(e)))
    lines = [orjson.dumps(e) for e in events]
    # Verdicts on the first duplicate alerts, each right after the line that raised it, so that later
    # registrations are scored by what was learned.
    work = tmp_path_factory.mktemp("replay")
    first = work / "first.jsonl"
    first.write_bytes(b"\n".join(lines) + b"\n")
    alerts = io.BytesIO()
    run_replay([first], alerts, settings=Settings(), progress=False)
    verdicts: dict[str, list[bytes]] = {}
    for n, alert in enumerate(orjson.loads(x) for x in alerts.getvalue().splitlines()):
        if alert["detector"] == "duplicate_person" and alert["status"] == "open" and len(verdicts) < 12:
            verdict = "true_positive" if n % 3 else "false_positive"
            verdicts.setdefault(alert["event_ids"][0], []).append(orjson.dumps(
                {"schema": "feedback.v1", "alert_id": alert["alert_id"], "verdict": verdict,
                 "decided_at": "2023-11-30T10:00:00+07:00"}))
    assert len(verdicts) >= 5, "the population should raise duplicate alerts to give verdicts on"
    out = []
    for event, line in zip(events, lines):
        out.append(line)
        out += verdicts.get(event["event_id"], [])
        if event["event_id"] == results[3]["event_id"]:
            out += [b'{"tps": "3201012001001", "votes": {"01": ', b"", b'{"schema": "result.v1", "votes": {}}',
                    orjson.dumps({**results[3], "voters": "many"})]
        if event["event_id"] == regs[10]["event_id"]:
            out.append(orjson.dumps({**regs[10], "voter": {"nik": 12}}))
    path = work / "mixed.jsonl"
    path.write_bytes(b"\n".join(out) + b"\n")
    (work / "labels.jsonl").write_bytes(b"".join(orjson.dumps(label) + b"\n" for label in sim.labels()))
    return path


def _replay(path: Path, jobs: int, labels: list[Path] | None = None) -> tuple[bytes, bytes, dict]:
    alerts, dead = io.BytesIO(), io.BytesIO()
    summary = run_replay([path], alerts, dead, labels, settings=Settings(), progress=False, jobs=jobs).as_dict()
    return alerts.getvalue(), dead.getvalue(), summary


def test_sharded_replay_writes_the_same_alerts_and_dead_letters_in_the_same_order(mixed):
    labels = [mixed.with_name("labels.jsonl")]
    one_alerts, one_dead, one = _replay(mixed, 1, labels)
    three_alerts, three_dead, three = _replay(mixed, 3, labels)
    detectors = Counter(orjson.loads(x)["detector"] for x in one_alerts.splitlines())
    # The comparison means something only if every stage raised alerts: stage 1 and 2 of both
    # streams, and the volume detector fed from all processes.
    for detector in ("duplicate_person", "duplicate_nik", "tally_arithmetic", "peer_outlier", "digit_forensics",
                     "volume"):
        assert detectors[detector] > 0, (detector, detectors)
    assert one_dead.count(b"\n") == 4
    assert three_alerts == one_alerts
    assert three_dead == one_dead
    for field in ("events", "dead_letters", "alerts", "findings", "quality"):
        assert three[field] == one[field], field
    assert one["quality"]["duplicate_person"]["labels"] > 0  # precision and recall were computed
    assert (one["jobs"], three["jobs"]) == (1, 3)


def test_verdicts_reach_the_duplicate_scorer_in_a_sharded_replay(mixed):
    """The verdicts in the file change later scores: with them removed, the alerts differ."""
    lines = mixed.read_bytes().splitlines()
    without = mixed.with_name("no-verdicts.jsonl")
    without.write_bytes(b"\n".join(x for x in lines if b'"feedback.v1"' not in x) + b"\n")
    assert _replay(without, 2)[0] != _replay(mixed, 2)[0]


class _SettingsForThisProcessOnly(Settings):
    """Settings that fail (or end the process) when a shard process reads its HMAC secret."""

    def __getattribute__(self, name):
        if name == "secret" and os.getpid() != PARENT:
            if object.__getattribute__(self, "__dict__").get("how") == "exit":
                os._exit(3)
            raise RuntimeError("these settings are for the parent only")
        return super().__getattribute__(name)


PARENT = os.getpid()


@pytest.mark.parametrize(("how", "error"), [("raise", r"replay shard \d failed:(.|\n)*for the parent only"),
                                            ("exit", r"replay shard \d stopped \(exit code 3\)")])
def test_a_shard_that_fails_stops_the_replay_with_its_reason(mixed, how, error):
    settings = _SettingsForThisProcessOnly()
    settings.__dict__["how"] = how
    with pytest.raises(RuntimeError, match=error):
        run_replay([mixed], io.BytesIO(), settings=settings, progress=False, jobs=2)


def test_jobs_below_one_are_refused(mixed):
    with pytest.raises(ValueError, match="jobs must be 1 or more"):
        run_replay([mixed], io.BytesIO(), progress=False, jobs=0)


def test_the_cli_takes_jobs_and_refuses_a_negative_number(mixed, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(mixed), "--out", str(tmp_path / "a.jsonl"),
                         "--quiet", "--jobs", "2"], cwd=ROOT, capture_output=True, timeout=300, env=env)
    assert ok.returncode == 0, ok.stderr.decode()[-2000:]
    assert (tmp_path / "a.jsonl").read_bytes() == _replay(mixed, 1)[0]
    bad = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(mixed), "--jobs", "-1"], cwd=ROOT,
                         capture_output=True, timeout=60, env=env)
    assert bad.returncode == 2 and b"--jobs must be 0 (one per CPU) or more" in bad.stderr
