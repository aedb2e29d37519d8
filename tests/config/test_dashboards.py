"""Grafana dashboards: structure, and every query against the metric contract.

Each expression may only use metrics from docs/contracts.md (histograms with
their _bucket/_sum/_count series), recording rules from rules/recording.yml,
or Prometheus' own ``up``; the labels it groups, matches or shows must exist
on those metrics. Every expression (dashboards and rules) is also parsed by
promtool's real PromQL parser.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.spec_from_file_location("pantau_config_queries", Path(__file__).with_name("queries.py"))
queries = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(queries)

ROOT = queries.ROOT
CONTRACTS = ROOT / "docs" / "contracts.md"
GRAFANA = ROOT / "config" / "grafana"
BUILTIN = {"up": {"job", "instance"}}
ALWAYS = {"job", "instance", "__name__"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan", "atan2"}


def contract_metrics() -> dict[str, set[str]]:
    """Metric name -> label names, from the Metrics table of docs/contracts.md."""
    text = CONTRACTS.read_text()
    section = text[text.index("## Metrics"):]
    metrics: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`pantau_"):
            continue
        names = re.findall(r"`(pantau_[a-z0-9_]+)`", cells[0])
        labels = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2])))
        for name in names:
            if cells[1] == "histogram":
                metrics[f"{name}_bucket"] = labels | {"le"}
                metrics[f"{name}_sum"] = labels
                metrics[f"{name}_count"] = labels
            else:
                metrics[name] = labels
    assert "pantau_events_total" in metrics, f"could not read the metric table of {CONTRACTS}"
    return metrics


def _grouping(expr: str) -> set[str]:
    return {label.strip() for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr)
            for label in clause.split(",") if label.strip()}


def recorded_metrics() -> dict[str, set[str]]:
    """Recording rule name -> the labels it keeps (those of its by() clauses)."""
    return {rule["record"]: _grouping(rule["expr"])
            for rule in queries.rules(queries.RULE_FILES[0]) if "record" in rule}


def known_metrics() -> dict[str, set[str]]:
    return {**BUILTIN, **contract_metrics(), **recorded_metrics()}


def referenced(expr: str) -> tuple[set[str], list[tuple[str, set[str]]]]:
    """(metric names, [(metric, matcher label names)]) used by an expression."""
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    selectors = [(m.group(1), set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2))))
                 for m in re.finditer(r"(?<![A-Za-z0-9_:])([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", s)]
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)", s):
        rest = s[m.end():].lstrip()
        if m.group(1) in KEYWORDS or rest.startswith("("):
            continue  # operator keyword, function or aggregation
        names.add(m.group(1))
    return names, selectors


def all_panels():
    return [(dash, panel) for dash in queries.dashboards() for panel in queries.panels(dash)]


def test_dashboards_exist():
    found = sorted(p.stem for p in queries.DASHBOARDS.glob("*.json"))
    assert found == ["participation", "pipeline", "registration", "results"], found


def test_uids_and_titles_unique():
    dashes = queries.dashboards()
    uids = [d.get("uid") for d in dashes]
    assert all(uids) and len(set(uids)) == len(uids), uids
    assert all(len(u) <= 40 for u in uids), "Grafana uids are at most 40 characters"
    titles = [d["title"] for d in dashes]
    assert len(set(titles)) == len(titles), titles
    for d in dashes:
        ids = [p["id"] for p in queries.panels(d)]
        assert len(set(ids)) == len(ids), f"{d['uid']}: duplicate panel ids"


def test_panels_use_the_provisioned_datasource():
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for dash, panel in all_panels():
        if panel["type"] in ("row", "text"):
            continue
        where = f"{dash['uid']} / {panel['title']}"
        assert panel.get("targets"), f"{where}: no queries"
        assert panel["datasource"]["uid"] == uid, where
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{where}: target without expr"
            assert target["datasource"]["uid"] == uid, where
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, f"{where}: off the 24-column grid"


def test_variables_used_are_defined():
    for dash in queries.dashboards():
        defined = {v["name"] for v in dash.get("templating", {}).get("list", [])}
        for panel in queries.panels(dash):
            for target in panel.get("targets", []):
                used = set(re.findall(r"\$\{?([A-Za-z][A-Za-z0-9_]*)", target["expr"]))
                assert used <= defined, f"{dash['uid']} / {panel['title']}: undefined variables {used - defined}"
        # Metrics carry the province only: there is no regency variable to offer.
        assert "regency" not in defined, "metrics have no regency label (see docs/monitoring.md)"


@pytest.mark.parametrize(("source", "expr"), queries.all_queries(raw=True), ids=lambda v: v[:80])
def test_expression_uses_only_contract_metrics_and_labels(source, expr):
    known = known_metrics()
    names, selectors = referenced(expr)
    unknown = sorted(names - set(known))
    assert not unknown, f"{source}: unknown metrics {unknown} in {expr!r} (not in docs/contracts.md or recording.yml)"
    available = set().union(ALWAYS, *(known[n] for n in names))
    for metric, labels in selectors:
        if metric in known:
            bad = labels - known[metric] - ALWAYS
            assert not bad, f"{source}: {metric} has no label(s) {sorted(bad)}"
    bad = _grouping(expr) - available
    assert not bad, f"{source}: groups by label(s) {sorted(bad)} that none of {sorted(names)} has"


def test_legends_show_labels_the_query_keeps():
    known = known_metrics()
    for dash, panel in all_panels():
        for target in panel.get("targets", []):
            names, _ = referenced(target["expr"])
            available = set().union(ALWAYS, *(known.get(n, set()) for n in names))
            shown = set(re.findall(r"\{\{\s*([A-Za-z_]+)\s*\}\}", target.get("legendFormat", "")))
            assert shown <= available, f"{dash['uid']} / {panel['title']}: legend uses {shown - available}"


def test_alert_panels_link_to_the_alerts_ui():
    for dash, panel in all_panels():
        if any("pantau_alerts_total" in t["expr"] for t in panel.get("targets", [])):
            links = panel["fieldConfig"]["defaults"].get("links", [])
            assert links and all(link["url"].startswith("http") for link in links), \
                f"{dash['uid']} / {panel['title']}: alert panel without a data link"
            # Tables expose columns (__data.fields), other panels series labels (__field.labels).
            ref = "${__data.fields." if panel["type"] == "table" else "${__field.labels."
            for link in links:
                assert ref in link["url"], f"{dash['uid']} / {panel['title']}: data link should use {ref}...}}"


def test_every_expression_parses_with_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install it with `apt-get install prometheus`", pytrace=False)
    exprs = queries.all_queries()
    doc = {"groups": [{"name": "parse-check", "rules": [
        {"record": f"parse_check:q{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]}]}
    path = tmp_path / "parse.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        failing = sorted({int(i) for i in re.findall(r"parse_check:q(\d+)", proc.stdout + proc.stderr)})
        named = "\n".join(f"  {exprs[i][0]}: {exprs[i][1]}" for i in failing) or "(see promtool output)"
        pytest.fail(f"promtool cannot parse:\n{named}\n{proc.stdout}{proc.stderr}", pytrace=False)


def test_reference_parser_catches_unknown_metrics():
    """The checks above can fail: a typo'd metric and label are caught."""
    known = known_metrics()
    names, selectors = referenced('sum by (province) (rate(pantau_event_total{provnce="32"}[5m]))')
    assert names - set(known) == {"pantau_event_total"}
    names, selectors = referenced('sum by (province) (rate(pantau_events_by_region_total{provnce="32"}[5m]))')
    assert not names - set(known)
    assert selectors[0][1] - known["pantau_events_by_region_total"] == {"provnce"}
