"""The volume alert rule and dashboard thresholds are the worker's own thresholds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _volume_rules() -> dict[str, str]:
    rules = yaml.safe_load((ROOT / "config/prometheus/rules/alerts.yml").read_text())
    return {r["labels"]["severity"]: r["expr"] for g in rules["groups"] for r in g["rules"]
            if r.get("alert") == "PantauVolumeAnomaly"}


def test_volume_alert_rule_fires_from_the_worker_thresholds():
    s = Settings()
    rules = _volume_rules()
    assert set(rules) == {"warning", "critical"}
    for severity, threshold in (("warning", s.volume_threshold), ("critical", s.volume_critical_threshold)):
        m = re.search(r"pantau_volume_score\)\s*(>=?)\s*([0-9.]+)\s*$", rules[severity])
        assert m, rules[severity]
        # The worker's alert is anomalous at or above the threshold: the rule too.
        assert m.group(1) == ">=" and float(m.group(2)) == threshold, (severity, rules[severity])


def _volume_panels(panels: list[dict]):
    for p in panels:
        yield from _volume_panels(p.get("panels", []))
        if "pantau_volume_score" in json.dumps(p.get("targets", [])):
            yield p


def test_volume_score_panels_colour_from_the_worker_thresholds():
    s = Settings()
    found = 0
    for path in sorted((ROOT / "config/grafana/dashboards").glob("*.json")):
        for panel in _volume_panels(json.loads(path.read_text())["panels"]):
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert [st["value"] for st in steps] == [None, s.volume_threshold, s.volume_critical_threshold], \
                (path.name, panel["title"])
            found += 1
    assert found >= 2  # registrations and results
