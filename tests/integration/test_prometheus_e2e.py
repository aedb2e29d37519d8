"""Verified for real: a real Prometheus scrapes a real worker fed by the simulator.

Prometheus is Debian's ``prometheus`` binary, run with a configuration generated
from the project's ``config/prometheus/prometheus.yml``: its rule files (the
project's own, by absolute path), its jobs and labels, with only the scrape
targets and the intervals changed (1 s, so a one-minute run has data). Then
every dashboard panel query and every rule expression (``tests/config/queries.py``)
runs against Prometheus's HTTP API and must return data, except the few listed
in ``VALID_ONLY`` (empty by design in a short, healthy run; each with its reason)
and ``NOT_EXPORTED`` (the worker does not export what the panel needs: these
must stay empty, so the list is corrected the day the worker exports them).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import yaml

from app.broker import _die_with_parent, free_port
from tests.config.queries import RULE_FILES, all_queries, rules
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

PROMETHEUS_YML = ROOT / "config" / "prometheus" / "prometheus.yml"
WIB = timezone(timedelta(hours=7))

#: Queries that cannot return data in a one-minute run of a healthy pipeline.
#: They must still be valid (status success). Keep this short; each has a reason.
VALID_ONLY = {
    "rules:alerts.yml:PantauVolumeAnomaly":
        "needs a volume score >= 0.6 / 0.75: a warm volume model (days of buckets) and an anomalous bucket",
    "rules:alerts.yml:PantauConsumerLagGrowing":
        "needs lag > 1000 messages and growing; the worker keeps up with the test's rate",
    "rules:alerts.yml:PantauNoEvents":
        "needs 30 minutes without events; events flow during the whole test",
    "rules:alerts.yml:PantauBrokerDisconnected":
        "needs a broker outage; the session broker is shared (test_faults.py cuts the connection)",
}

#: Panel queries that cannot return data because the worker does not export
#: the metric: asserted EMPTY, so this list fails loudly once they are exported.
NOT_EXPORTED: dict[str, str] = {}  # the worker now sets every metric a panel reads

#: Checked after the run, in the state that makes them true (see the test).
AFTER_RUN = {
    "rules:alerts.yml:PantauWorkerNotReady": "pantau_ready == 0 while the worker starts (query over the run)",
    "rules:alerts.yml:PantauWorkerDown": "up == 0 once the worker is stopped",
}

RATE = 60.0             # events per second, steady
SEND_SECONDS = 45.0     # about RATE * SEND_SECONDS events
BAD_EVERY = 12          # one malformed event after every 12th: ~8 % (PantauDeadLetterRateHigh's 5 % is crossed)
LATE_SECONDS = 600      # the first batch is a late upload: its volume bucket closes at once
BAD_SAMPLES = (b'{"event_id": "bad-json", ', b"\xff\xfe not utf-8", b'{"event_id": 7, "action": "add"}')


# -- Prometheus -------------------------------------------------------------------

class Prometheus:
    """Debian's Prometheus on a free loopback port, with a config derived from the project's."""

    def __init__(self, workdir: Path, worker_target: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(self.config(worker_target), sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self, worker_target: str) -> dict:
        """The project's prometheus.yml with only the targets and intervals changed."""
        cfg = yaml.safe_load(PROMETHEUS_YML.read_text())
        cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        cfg["rule_files"] = [str((PROMETHEUS_YML.parent / f).resolve()) for f in cfg["rule_files"]]
        # No Alertmanager runs in this test: alert state is read from Prometheus's
        # API, and nothing is sent to whatever might listen on 127.0.0.1:9093.
        cfg.pop("alerting", None)
        jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
        jobs["pantau-worker"]["static_configs"] = [{"targets": [worker_target]}]
        jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{self.port}"]}]
        return cfg

    def start(self, timeout: float = 30.0) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: apt-get install -y prometheus")
        check = subprocess.run(["promtool", "check", "config", str(self.config_path)],  # noqa: S603, S607
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen(  # noqa: S603
            [binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query answers with status "error"
            return json.loads(exc.read())

    def query(self, expr: str, **params: str) -> dict:
        return self.api("query", query=expr, **params)


@pytest.fixture
def prometheus(tmp_path: Path):
    """A factory: ``prometheus(target)`` starts one; every one is stopped after the test."""
    started: list[Prometheus] = []

    def make(worker_target: str) -> Prometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        prom = Prometheus(workdir, worker_target)
        started.append(prom)
        return prom.start()

    yield make
    for prom in started:
        prom.stop()


def with_data(answer: dict) -> list[dict]:
    """Series of a query answer that carry a number (NaN, e.g. 0/0, is no data)."""
    out = []
    for series in answer.get("data", {}).get("result", []):
        values = [series["value"]] if "value" in series else series.get("values", [])
        if any(not math.isnan(float(v)) for _, v in values):
            out.append(series)
    return out


# -- the simulator's events ----------------------------------------------------------

def simulator_events() -> tuple[list, list]:
    """A late batch and a steady stream: registrations with all tallies spread among them.

    Seed, size and TPS per village were chosen (by replaying them offline) so the
    run holds every result detector: tally_arithmetic (critical), ocr_misread,
    revision and peer_outlier (which needs 5 peer TPS in a village or district).
    """
    from sim.simulator import Simulator

    sim = Simulator(seed=11, voters=4000, anomaly_rate=0.05, tps_per_village=10)
    regs, results = list(sim.registrations()), list(sim.results())
    late = regs[:50] + results[:2]
    regs = regs[50:int(RATE * SEND_SECONDS)]
    results = results[2:]
    step = max(1, len(regs) // (len(results) + 1))
    steady = []
    for i, result in enumerate(results):
        steady += regs[i * step:(i + 1) * step] + [result]
    return late, steady + regs[len(results) * step:]


async def send(settings, late: list, steady: list) -> dict:
    """Send the late batch (event times LATE_SECONDS ago), then the steady stream at RATE with times = now."""
    from app.commands import topic_for
    from app.kafka_io import Pacer, ensure_topics, start_producer

    await ensure_topics(settings)
    producer = await start_producer(settings)
    sent = {"valid": 0, "malformed": 0}

    async def one(sim_event, when: datetime) -> None:
        value = dict(sim_event.value)
        value["occurred_at" if sim_event.stream == "registrations" else "submitted_at"] = \
            when.isoformat(timespec="seconds")
        await producer.send(topic_for(settings, sim_event.stream), key=sim_event.key.encode(),
                            value=orjson.dumps(value))
        sent["valid"] += 1

    try:
        then = datetime.now(WIB) - timedelta(seconds=LATE_SECONDS)
        for i, sim_event in enumerate(late):
            await one(sim_event, then + timedelta(seconds=i))
        pacer = Pacer(RATE, every=10)
        for n, sim_event in enumerate(steady, 1):
            await one(sim_event, datetime.now(WIB))
            if n % BAD_EVERY == 0:
                bad = BAD_SAMPLES[(n // BAD_EVERY) % len(BAD_SAMPLES)]
                await producer.send(topic_for(settings, sim_event.stream), key=None, value=bad)
                sent["malformed"] += 1
            await pacer.sent(n)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


# -- the test -------------------------------------------------------------------------

def test_every_dashboard_and_rule_query_returns_data_from_a_real_prometheus(worker_factory, prometheus):
    started_at = time.time()
    worker = worker_factory()
    prom = prometheus(f"127.0.0.1:{worker.settings.web_port}")   # before the worker: it sees the start too
    late, steady = simulator_events()
    worker.start()
    sent = asyncio.run(send(worker.settings, late, steady))
    worker.wait_metric("pantau_events_total", sent["valid"], timeout=90, outcome="processed")
    worker.wait_metric("pantau_events_total", sent["malformed"], timeout=30, outcome="dead_letter")
    time.sleep(4)  # a few more scrapes and rule evaluations

    problems: list[str] = []

    # The project's rules loaded, and every one evaluates without error.
    groups = prom.api("rules")["data"]["groups"]
    loaded = [r for g in groups for r in g["rules"]]
    assert len(loaded) == sum(len(rules(p)) for p in RULE_FILES), [g["file"] for g in groups]
    for r in loaded:
        if r["health"] != "ok":
            problems.append(f"rule {r['name']}: health {r['health']} {r.get('lastError')}")
    targets = prom.api("targets")["data"]["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {"pantau-worker": "up", "prometheus": "up"}

    # Every query: valid, and with data unless listed.
    queries = all_queries(raw=False)
    sources = {src for src, _ in queries}
    for listed in (*VALID_ONLY, *NOT_EXPORTED, *AFTER_RUN):
        assert listed in sources, f"{listed} is listed but is no longer a query"
    answered = 0
    for src, expr in queries:
        answer = prom.query(expr)
        answered += bool(with_data(answer))
        if answer.get("status") != "success":
            problems.append(f"{src}: {answer.get('errorType')}: {answer.get('error')}")
        elif src in NOT_EXPORTED:
            if answer["data"]["result"]:
                problems.append(f"{src}: now returns data; remove it from NOT_EXPORTED")
        elif src not in VALID_ONLY and src not in AFTER_RUN and not with_data(answer):
            problems.append(f"{src}: no data: {' '.join(expr.split())}")

    # PantauWorkerNotReady's expression matched while the worker was starting.
    ready_0 = prom.api("query_range", query=dict(queries)["rules:alerts.yml:PantauWorkerNotReady"],
                       start=f"{started_at:.3f}", end=f"{time.time():.3f}", step="1s")
    if not with_data(ready_0):
        problems.append("PantauWorkerNotReady: pantau_ready == 0 never matched during the worker's start")

    # PantauCriticalFinding fires (for: 0) for the injected critical findings.
    alerts = prom.api("alerts")["data"]["alerts"]
    critical = {(a["labels"]["detector"], a["labels"]["province"]) for a in alerts
                if a["labels"]["alertname"] == "PantauCriticalFinding" and a["state"] == "firing"}
    detectors = {d for d, _ in critical}
    for expected in ("tally_arithmetic", "nik_integrity"):
        if expected not in detectors:
            problems.append(f"PantauCriticalFinding not firing for {expected} (firing: {sorted(critical)})")
    for a in alerts:
        if a["labels"]["alertname"] == "PantauCriticalFinding":
            assert a["labels"]["severity"] == "critical" and a["labels"]["component"] == "detection"
            assert a["labels"]["job"] == "pantau-worker" and len(a["labels"]["province"]) in (2, 7)
    # The dead-letter share (~8 %, >= 20 events) makes PantauDeadLetterRateHigh pending (for: 10m).
    pending = {a["labels"]["alertname"]: a["state"] for a in alerts}
    if pending.get("PantauDeadLetterRateHigh") != "pending":
        problems.append(f"PantauDeadLetterRateHigh not pending: {pending}")

    # PantauWorkerDown: its expression has data once the worker is gone, and the alert goes pending (for: 2m).
    worker.stop()
    down_expr = dict(queries)["rules:alerts.yml:PantauWorkerDown"]
    deadline = time.monotonic() + 20
    state = None
    while time.monotonic() < deadline:
        state = {a["labels"]["alertname"]: a["state"] for a in prom.api("alerts")["data"]["alerts"]}
        if with_data(prom.query(down_expr)) and state.get("PantauWorkerDown") == "pending":
            break
        time.sleep(1)
    else:
        problems.append(f"PantauWorkerDown: no data / not pending 20 s after the worker stopped: {state}")

    print(f"{len(queries)} queries, {answered} with data; sent {sent}")
    assert not problems, "\n".join(problems) + f"\n(sent {sent}; prometheus log:\n{prom.log_tail(10)})"
