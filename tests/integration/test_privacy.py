"""Personal data stays in: logs, /metrics, alerts and dead-letter details carry none of the input's.

A simulator run (a few thousand registrations and tallies, interleaved as
``app.demo.interleaved`` does) goes through a real worker, with some bad
events that carry real personal data. Then the worker's log file and its
/metrics are scanned for the NIKs, NKKs, names and birth dates of the input,
alerts for unmasked NIKs/NKKs and names, dead-letter details for any input
value. Also: production refuses the default secret, the web server listens
on loopback by default, and only GET /metrics, /health and /ready exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT, WorkerProcess, fresh_settings, produce, read_topic, run
from tests.factories import dumps
from tests.integration.test_fuzz import read_all

pytestmark = pytest.mark.integration

SIXTEEN = re.compile(rb"(?<![0-9])[0-9]{16}(?![0-9])")
MASKED = re.compile(rb"[0-9]{4}\*{10}[0-9]{2}")


def simulated(seed: int = 5, voters: int = 2000) -> list:
    """Registrations with the tallies spread among them (as app.demo.interleaved, smaller)."""
    from sim.simulator import Simulator

    sim = Simulator(seed=seed, voters=voters, regions=["32", "35"])
    registrations, results = list(sim.registrations()), list(sim.results())
    step = max(1, len(registrations) // max(1, len(results)))
    out = []
    for i, res in enumerate(results):
        out += registrations[i * step:(i + 1) * step] + [res]
    return out + registrations[len(results) * step:]


class DefaultHostWorker(WorkerProcess):
    """A worker whose environment does not set PANTAU_WEB_HOST: it runs with the default."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("PANTAU_WEB_HOST", None)
        return env


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


def request(url: str, method: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, data=b"" if method != "GET" else None),
                                    timeout=5) as resp:  # noqa: S310 - loopback
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_personal_data_in_logs_metrics_alerts_or_dead_letters(broker, tmp_path):
    events = simulated()
    regs = [e.value for e in events if e.stream == "registrations"]
    niks = {v["voter"]["nik"] for v in regs if v["voter"].get("nik")}
    nkks = {v["voter"]["nkk"] for v in regs if v["voter"].get("nkk")}
    names = {v["voter"]["name"] for v in regs if len(v["voter"].get("name") or "") >= 8}
    births = {v["voter"]["birth_date"] for v in regs if v["voter"].get("birth_date")}
    # bad events that carry personal data: their details must not repeat it
    person = regs[0]["voter"]
    bad_values = [
        {**regs[0], "event_id": "bad-date", "occurred_at": "2023-02-30T10:00:00+07:00"},
        {**regs[0], "event_id": "bad-birth", "voter": {**person, "birth_date": "1990-02-31"}},
        {**regs[0], "event_id": "bad-sex", "voter": {**person, "sex": person["name"]}},
        {**regs[0], "event_id": "bad-rt", "voter": {**person, "rt": person["nik"]}},
        {**regs[0], "event_id": "bad-region", "region": {"province": person["nik"]}},
        {**regs[0], "event_id": "bad-name-type", "voter": {**person, "name": [person["name"], person["nik"]]}},
    ]
    bad = [dumps(v) for v in bad_values] + [dumps(regs[1])[:-1] + b',"event_id":"x"}',  # duplicated key
                                            dumps(regs[2])[:120]]                       # truncated
    records = [(e.stream, e.key.encode(), orjson.dumps(e.value)) for e in events]
    records += [("registrations", person["nik"].encode(), b) for b in bad]
    print(f"\nprivacy: {len(events)} simulated events ({len(niks)} NIKs, {len(names)} names), {len(bad)} bad ones")

    settings = fresh_settings(broker.url, tmp_path)
    worker = DefaultHostWorker(settings, tmp_path / "worker.log")
    try:
        worker.start()
        # the web server (checked first: it needs no data): loopback only by default, three GET endpoints and nothing else
        assert listening_addresses(settings.web_port) == {"0100007F"}, listening_addresses(settings.web_port)
        for path in ("/metrics", "/health", "/ready"):
            assert request(worker.url + path, "GET") == 200, path
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                assert request(worker.url + path, method) == 405, (method, path)
        for path in ("/", "/table/alerts", "/tables", "/admin", "/metrics/x", "/debug", "/stats", "/..%2f"):
            assert request(worker.url + path, "GET") == 404, path
            assert request(worker.url + path, "POST") in (404, 405), path

        run(produce(settings, records))
        worker.wait_metric("pantau_events_total", len(events), timeout=180, outcome="processed")
        worker.wait_metric("pantau_events_total", len(bad), timeout=60, outcome="dead_letter")

        _, metrics_text = worker.get("/metrics")
        alerts = run(read_topic(settings, settings.topic_alerts, until=1, timeout=30))
        letters = run(read_all(settings, settings.topic_dead_letters, until=len(bad)))
    finally:
        worker.stop()
    log_text = worker.log_path.read_bytes()

    def leaks(blob: bytes) -> dict[str, list[str]]:
        text = blob.decode("utf-8", "replace")
        return {
            "nik/nkk": sorted({m.decode() for m in SIXTEEN.findall(blob)} & (niks | nkks))[:5],
            "names": sorted(n for n in names if n in text)[:5],
            "birth dates": sorted(b for b in births if b in text)[:5],
        }

    assert leaks(log_text) == {"nik/nkk": [], "names": [], "birth dates": []}
    assert leaks(metrics_text) == {"nik/nkk": [], "names": [], "birth dates": []}

    masked = 0
    for record in alerts:
        found = leaks(record.value)
        assert found["nik/nkk"] == [] and found["names"] == [], (found, record.value[:500])
        masked += len(MASKED.findall(record.value))
        alert = orjson.loads(record.value)
        if alert["subject"]["kind"] == "voter":
            assert MASKED.fullmatch(alert["subject"]["id"].encode()), alert["subject"]
    print(f"alerts {len(alerts)}, masked NIKs in them {masked}; dead letters {len(letters)}; "
          f"log {len(log_text)} bytes and /metrics {len(metrics_text)} bytes scanned")
    assert len(alerts) > 0 and masked > 0

    assert len(letters) == len(bad)
    for record in letters:
        headers = {k: v.decode() for k, v in record.headers}
        detail = headers["pantau.detail"]
        for value in (person["nik"], person["name"], person["birth_date"], person["nkk"], person["address"]):
            assert value not in detail, (headers["pantau.reason"], detail)
        assert not SIXTEEN.search(detail.encode()), detail


def test_production_refuses_the_default_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update({"PANTAU_ENV": "production", "PANTAU_BROKER_URL": "kafka://127.0.0.1:1", "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT,  # noqa: S603
                          capture_output=True, timeout=60)
    assert proc.returncode == 2, proc.stderr.decode()
    message = proc.stderr.decode()
    assert "PANTAU_HMAC_SECRET" in message and "production" in message, message
    assert "Traceback" not in message
    # a secret of one's own is accepted as far as settings go (the broker is then unreachable: not tested here)
    from app.settings import Settings

    assert Settings.from_env({"PANTAU_ENV": "production", "PANTAU_HMAC_SECRET": "x" * 32}).env == "production"


def test_web_server_binds_loopback_by_default():
    from app.settings import Settings

    assert Settings().web_host == "127.0.0.1"
    assert Settings.from_env({}).web_host == "127.0.0.1"
