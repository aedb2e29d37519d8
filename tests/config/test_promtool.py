"""Prometheus and Alertmanager configuration, checked by their own tools.

promtool and amtool come from Debian's ``prometheus`` and
``prometheus-alertmanager`` packages; a missing tool is a failure, not a skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "config" / "prometheus"
ALERTS = PROM / "rules" / "alerts.yml"
RECORDING = PROM / "rules" / "recording.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*_test.yml"))
ALERTMANAGER = ROOT / "config" / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.prometheus


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: install it with `apt-get install {package}`", pytrace=False)
    return path


def run(*argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_check_config(config):
    run(tool("promtool", "prometheus"), "check", "config", str(PROM / config))


def test_promtool_check_rules():
    run(tool("promtool", "prometheus"), "check", "rules", str(RECORDING), str(ALERTS))


def test_promtool_rule_unit_tests():
    assert RULE_TESTS, f"no promtool tests in {PROM / 'tests'}"
    run(tool("promtool", "prometheus"), "test", "rules", *map(str, RULE_TESTS))


def test_amtool_check_config():
    run(tool("amtool", "prometheus-alertmanager"), "check-config", str(ALERTMANAGER))


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # A critical finding reaches the national desk and the province office.
        ({"component": "detection", "severity": "critical", "province": "32", "detector": "tally_arithmetic"},
         "kpu-pusat-critical,kpu-prov-32"),
        # A province without its own route falls back to the national desk.
        ({"component": "detection", "severity": "warning", "province": "36", "detector": "volume"}, "kpu-pusat"),
        ({"component": "detection", "severity": "critical", "province": "unknown", "detector": "duplicate_nik"},
         "kpu-pusat-critical"),
        ({"component": "detection", "severity": "warning", "province": "31", "detector": "peer_outlier"}, "kpu-prov-31"),
        # Pantau's own health goes to operations, never to election offices.
        ({"component": "pipeline", "severity": "critical", "alertname": "PantauWorkerDown"}, "pantau-ops-page"),
        ({"component": "pipeline", "severity": "warning", "alertname": "PantauNoEvents"}, "pantau-ops"),
    ],
)
def test_alertmanager_routes(labels, receivers):
    proc = run(
        tool("amtool", "prometheus-alertmanager"), "config", "routes", "test",
        f"--config.file={ALERTMANAGER}", *(f"{k}={v}" for k, v in labels.items()),
    )
    assert proc.stdout.strip() == receivers


def _alerting_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alerting_rule_has_firing_and_quiet_cases():
    """Each (alertname, severity) fires in some test, and each alertname has a not-firing case."""
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test") or []:
                expected = check.get("exp_alerts") or []
                if not expected:
                    quiet.add(check["alertname"])
                for alert in expected:
                    fired.add((check["alertname"], alert["exp_labels"].get("severity", "")))
    rules = {(r["alert"], r.get("labels", {}).get("severity", "")) for r in _alerting_rules()}
    assert rules, f"no alerting rules in {ALERTS}"
    untested = sorted(rules - fired)
    assert not untested, f"alerting rules never seen firing in {[p.name for p in RULE_TESTS]}: {untested}"
    never_quiet = sorted({name for name, _ in rules} - quiet)
    assert not never_quiet, f"alerting rules without a not-firing case: {never_quiet}"


def test_alerting_rules_carry_routing_labels():
    """Alertmanager routes on component and severity; every rule must set both."""
    for rule in _alerting_rules():
        labels = rule.get("labels", {})
        assert labels.get("severity") in ("critical", "warning", "info"), rule["alert"]
        assert labels.get("component") in ("detection", "pipeline"), rule["alert"]
        assert rule.get("annotations", {}).get("summary"), f"{rule['alert']} has no summary"
