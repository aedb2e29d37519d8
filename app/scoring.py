"""Precision and recall of alerts against the simulator's labels.

The rules are those of ``docs/contracts.md``:

* record detectors: an alert is right when it shares an event id with a label
  of its detector; a label is found when some alert of its detector shares an
  event id with it;
* duplicate detectors are scored on *pairs*: the events of one label (or of
  one alert) are one person, so every pair within it is a duplicate pair; an
  alert pair is right when both events belong to the same labelled group;
* ``volume``: an alert is right when its window overlaps a volume label's
  window on the same stream and region;
* region detectors (``birthdate_heaping``, ``digit_forensics``): an alert is
  right when it is about the labelled region (same regency, or province where
  the label names no regency), or shares an event id with the label.

Examples
--------
>>> labels = [{"detector": "tally_arithmetic", "event_ids": ["e1"]}]
>>> alerts = [{"alert_id": "a", "detector": "tally_arithmetic", "event_ids": ["e1"]},
...           {"alert_id": "b", "detector": "tally_arithmetic", "event_ids": ["e9"]}]
>>> s = score(alerts, labels)["tally_arithmetic"]
>>> s["precision"], s["recall"]
(0.5, 1.0)
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import combinations
from typing import Any

PAIR_DETECTORS = frozenset({"duplicate_nik", "duplicate_person"})
#: Detectors that judge a region, not a record: matched on the region (or a shared event id).
REGION_DETECTORS = frozenset({"birthdate_heaping", "digit_forensics"})


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _pairs(ids: list[str]) -> set[frozenset[str]]:
    return {frozenset(p) for p in combinations(dict.fromkeys(ids), 2)}


def _score_pairs(alerts: list[dict], labels: list[dict]) -> dict[str, Any]:
    group: dict[str, int] = {}
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for n, label in enumerate(labels):
        parent[n] = n
        for e in label["event_ids"]:
            if e in group:
                parent[find(n)] = find(group[e])
            else:
                group[e] = n
    clusters: dict[int, list[str]] = defaultdict(list)
    for e, n in group.items():
        clusters[find(n)].append(e)
    true_pairs = set().union(*(_pairs(ids) for ids in clusters.values())) if clusters else set()
    alert_pairs = set().union(*(_pairs(a["event_ids"]) for a in alerts)) if alerts else set()
    hit = alert_pairs & true_pairs
    return {
        "alerts": len(alerts), "labels": len(labels), "pairs_alerted": len(alert_pairs),
        "pairs_labelled": len(true_pairs), "pairs_right": len(hit),
        "precision": _ratio(len(hit), len(alert_pairs)), "recall": _ratio(len(hit), len(true_pairs)),
    }


def _overlaps(alert: dict, label: dict) -> bool:
    window, lw = alert.get("window"), label.get("window")
    if not window or not lw:
        return False
    a0, a1 = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
    l0, l1 = datetime.fromisoformat(lw["start"]), datetime.fromisoformat(lw["end"])
    if a1 < l0 or l1 < a0:
        return False
    stream = (alert.get("evidence") or {}).get("stream") or alert["subject"]["id"].split("/")[0]
    if label.get("stream") and stream != label["stream"]:
        return False
    region, lregion = alert.get("region") or {}, label.get("region") or {}
    for level in ("province", "regency"):
        if lregion.get(level) and region.get(level) and region[level] != lregion[level]:
            return False
    return True


def _same_region(alert: dict, label: dict) -> bool:
    if set(alert.get("event_ids") or ()) & set(label.get("event_ids") or ()):
        return True
    region, lregion = alert.get("region") or {}, label.get("region") or {}
    level = "regency" if lregion.get("regency") else "province"
    return bool(lregion.get(level)) and region.get(level) == lregion[level]


def score(alerts: list[dict], labels: list[dict]) -> dict[str, dict[str, Any]]:
    """Per detector: alerts, labels, precision and recall (None where undefined).

    ``alerts`` should hold the last version of each alert id.
    """
    by_det_alerts: dict[str, list[dict]] = defaultdict(list)
    by_det_labels: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_det_alerts[a["detector"]].append(a)
    for label in labels:
        by_det_labels[label["detector"]].append(label)
    result: dict[str, dict[str, Any]] = {}
    for det in sorted(set(by_det_alerts) | set(by_det_labels)):
        det_alerts, det_labels = by_det_alerts[det], by_det_labels[det]
        if not det_labels:
            result[det] = {"alerts": len(det_alerts), "labels": 0, "precision": None, "recall": None}
        elif det in PAIR_DETECTORS:
            result[det] = _score_pairs(det_alerts, det_labels)
        elif det in REGION_DETECTORS:
            right = sum(any(_same_region(a, lb) for lb in det_labels) for a in det_alerts)
            found = sum(any(_same_region(a, lb) for a in det_alerts) for lb in det_labels)
            result[det] = {"alerts": len(det_alerts), "labels": len(det_labels),
                           "precision": _ratio(right, len(det_alerts)), "recall": _ratio(found, len(det_labels))}
        elif det == "volume":
            right = sum(any(_overlaps(a, lb) for lb in det_labels) for a in det_alerts)
            found = sum(any(_overlaps(a, lb) for a in det_alerts) for lb in det_labels)
            result[det] = {"alerts": len(det_alerts), "labels": len(det_labels),
                           "precision": _ratio(right, len(det_alerts)), "recall": _ratio(found, len(det_labels))}
        else:
            labelled = {e for lb in det_labels for e in lb["event_ids"]}
            right = sum(bool(labelled & set(a["event_ids"])) for a in det_alerts)
            alerted = {e for a in det_alerts for e in a["event_ids"]}
            found = sum(bool(alerted & set(lb["event_ids"])) for lb in det_labels)
            result[det] = {"alerts": len(det_alerts), "labels": len(det_labels),
                           "precision": _ratio(right, len(det_alerts)), "recall": _ratio(found, len(det_labels))}
    return result
