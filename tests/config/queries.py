"""Every PromQL expression Pantau ships: dashboard panels and Prometheus rules.

``all_queries()`` is what an end-to-end test runs against a real Prometheus
that scraped a real worker: each ``(source, expr)`` pair names where the
expression lives (``dashboard:<uid>:<panel title>:<refId>`` or
``rules:<file>:<record or alert name>``). Grafana variables are replaced by
values Prometheus accepts (``GRAFANA_VARIABLES``) unless ``raw=True``.

>>> qs = all_queries()
>>> any(src.startswith("dashboard:pantau-pipeline:") for src, _ in qs)
True
>>> any("$" in expr for _, expr in qs)
False
>>> substitute('rate(x{province=~"$province"}[$__rate_interval])')
'rate(x{province=~".*"}[5m])'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "config" / "grafana" / "dashboards"
RULE_FILES = (ROOT / "config" / "prometheus" / "rules" / "recording.yml",
              ROOT / "config" / "prometheus" / "rules" / "alerts.yml")

#: Grafana's built-in and dashboard variables, with values a plain Prometheus
#: query accepts ("all provinces", the presidential contest, ...).
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$province": ".*",
    "$stream": ".*",
    "$contest": "PPWP",
}
_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")


def substitute(expr: str) -> str:
    """Replace Grafana variables; an unknown variable is an error."""
    def repl(m: re.Match) -> str:
        name = m.group(0).replace("{", "").replace("}", "")
        if name not in GRAFANA_VARIABLES:
            raise ValueError(f"unknown Grafana variable {m.group(0)} in {expr!r}; add it to GRAFANA_VARIABLES")
        return GRAFANA_VARIABLES[name]
    return _VARIABLE.sub(repl, expr)


def dashboards() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))]


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(raw: bool = False) -> list[tuple[str, str]]:
    out = []
    for dash in dashboards():
        for panel in panels(dash):
            for target in panel.get("targets", []):
                if "expr" in target:
                    expr = target["expr"] if raw else substitute(target["expr"])
                    out.append((f"dashboard:{dash['uid']}:{panel.get('title', '')}:{target.get('refId', '')}", expr))
    return out


def rules(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def rule_queries() -> list[tuple[str, str]]:
    return [
        (f"rules:{path.name}:{rule.get('record') or rule.get('alert')}", rule["expr"].strip())
        for path in RULE_FILES
        for rule in rules(path)
    ]


def all_queries(raw: bool = False) -> list[tuple[str, str]]:
    """Every dashboard expression and every rule expression, with its source."""
    return dashboard_queries(raw=raw) + rule_queries()
