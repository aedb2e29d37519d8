"""The worker's metrics stay bounded: series come from fixed label sets, never from the input's size.

The simulator's files (1 province vs 5 provinces, small vs 6x the voters) go
through the pipeline without a broker (``app.replay.Replayer``), and every
metric is fed the way ``app/worker.py`` feeds it (``_handle_input``,
``_publish``, ``_dead_letter``, ``_housekeeping``). Then:

* every label is one the contract allows, and every value is from its fixed set
  (province: a Kemendagri code or ``unknown``, at most 39 values);
* the number of series is within the bound those sets give, the same bound for
  6x the voters: it grows with the provinces seen, not with the data;
* the exposition text holds no TPS code, NIK, NKK, event id, name, address or
  operator id of the input, and no label value with a regency/village/TPS-like
  run of digits.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from lokal import PROVINCES
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics, province_label, source_label
from app.replay import Replayer, guess_stream
from app.settings import Settings
from app.worker import Worker
from sim.simulator import write_files

DETECTORS = ("volume", "duplicate_nik", "duplicate_person", "nik_conflict", "nik_integrity", "eligibility",
             "household", "birthdate_heaping", "tally_arithmetic", "ocr_misread", "revision", "peer_outlier",
             "digit_forensics")
#: Every label of a pantau_ metric and its values (docs/contracts.md). ``province`` is filled in per run.
DOMAINS: dict[str, frozenset[str]] = {
    "stream": frozenset({"registrations", "results", "feedback"}),
    "outcome": frozenset({"processed", "dead_letter", "rekeyed"}),
    "source": frozenset({"coklit", "online", "dukcapil", "manual", "sirekap", "other"}),
    "reason": frozenset({"empty", "oversized", "invalid_encoding", "invalid_json", "duplicate_keys",
                         "not_an_object", "schema", "invalid_date"}),
    "detector": frozenset(DETECTORS),
    "severity": frozenset({"info", "warning", "critical"}),
    "status": frozenset({"open", "updated", "resolved"}),
    "contest": frozenset({"PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKOTA"}),
    "sex": frozenset({"L", "P", "all", "unknown"}),
    # app.metrics.age_band also returns "under-17" (injected under-age voters);
    # docs/contracts.md lists the other eight only.
    "age_band": frozenset({"17-20", "21-30", "31-40", "41-50", "51-60", "61-70", "71+", "unknown", "under-17"}),
    "action": frozenset({"add", "update", "remove"}),
    # pantau_duplicate_index_entries is not set by the worker yet; these are its likely index names
    "index": frozenset({"nik", "person", "household"}),
    "kind": frozenset({"memtable", "block_cache"}),
    "agent": frozenset({"registrations", "results", "person_block", "household", "regency_tally"}),
}
ALL_PROVINCES = frozenset(PROVINCES) | {"unknown"}
POLLING_DAY = date(2024, 2, 14)


class Fed:
    """The pipeline over simulator files, with the worker's metric calls."""

    def __init__(self, directory: Path) -> None:
        self.metrics = Metrics()
        self.replayer = Replayer(Settings())
        self.secrets: set[str] = set()     # identifiers and personal data of the input
        self.tps: set[str] = set()
        self.provinces: set[str] = set()
        files = [directory / "registrations.jsonl", directory / "results.jsonl"]
        events = [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]
        # One event every 2 s, in file order (as the worker sees them sent live): the
        # volume detector then closes a few buckets instead of filling months of them.
        start = datetime(2024, 2, 14, 8, tzinfo=timezone(timedelta(hours=7)))
        for i, event in enumerate(events):
            key = "occurred_at" if "occurred_at" in event else "submitted_at"
            event[key] = (start + timedelta(seconds=2 * i)).isoformat()
        lines = [orjson.dumps(event) for event in events]
        # A few malformed lines made from real events: their content must not leak either.
        lines += [lines[0][:40], lines[1].replace(b'"event_id":', b'"event_id": 7, "x":', 1),
                  b"\xff" + lines[2], b"[" + lines[3] + b"]"]
        for number, payload in enumerate(lines, 1):
            self.feed(payload, f"line {number}")
        m = self.metrics
        for alert in self.replayer.finish():
            self.publish(alert)
        for (stream, province), score in self.replayer.pipeline.volume.latest_scores().items():
            m.volume_score.labels(stream, province).set(score)  # as _housekeeping does
        for agent in set(Worker.WRITE_BEHIND.values()):  # as _export_write_behind does
            m.write_behind_held.labels(agent).set(0)

    def feed(self, payload: bytes, where: str) -> None:
        m = self.metrics
        stream = guess_stream(payload) or "registrations"
        try:
            raw = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raw = None
        if isinstance(raw, dict):
            self.remember(raw)
        alerts, dead = self.replayer.process_line(payload, where)
        if dead is not None:  # as _dead_letter does
            m.dead_letters.labels(stream, dead["reason"]).inc()
            m.events.labels(stream, "dead_letter").inc()
            return
        event = self.replayer.validator.decode(stream, payload)
        if stream == "registrations":  # as _handle_input does
            m.observe_registration(event, POLLING_DAY)
        else:
            m.observe_result(event)
        for alert in alerts:
            self.publish(alert)
        m.events.labels(stream, "processed").inc()
        m.events_by_region.labels(stream, province_label(event.get("region")), source_label(event.get("source"))).inc()
        m.last_event.labels(stream).set(1.7e9)
        m.processing.labels(stream).observe(0.002)

    def publish(self, alert: dict) -> None:  # as _publish does
        m = self.metrics
        m.findings.labels(alert["detector"], alert["severity"]).inc()
        m.alerts.labels(alert["detector"], alert["severity"], province_label(alert.get("region")), alert["status"]).inc()
        if alert["status"] != "resolved":
            m.event_to_alert.labels(alert["detector"]).observe(0.05)

    def remember(self, event: dict) -> None:
        if isinstance(event.get("event_id"), str):
            self.secrets.add(event["event_id"])
        voter = event.get("voter") or {}
        for key in ("nik", "nkk", "name", "address"):
            if voter.get(key):
                self.secrets.add(voter[key])
        if event.get("operator_id"):
            self.secrets.add(event["operator_id"])
        if event.get("tps"):
            self.tps.add(event["tps"])
            self.secrets.add(event["tps"])
        region = event.get("region") or {}
        for key in ("regency", "district", "village"):
            if region.get(key):
                self.secrets.add(region[key])
        if region.get("province"):
            self.provinces.add(region["province"])

    def exposition(self) -> str:
        return generate_latest(self.metrics.registry).decode()

    def exposition_without_values(self) -> str:
        """The exposition text without sample values (a _created timestamp may hold any digits)."""
        return "\n".join(line if line.startswith("#") else line.rsplit(" ", 1)[0]
                         for line in self.exposition().splitlines())

    def series(self) -> dict[str, set[frozenset]]:
        """Label sets per family (histogram buckets, _sum, _count and _created are one label set)."""
        out: dict[str, set[frozenset]] = {}
        for family in text_string_to_metric_families(self.exposition()):
            for sample in family.samples:
                out.setdefault(family.name, set()).add(
                    frozenset((k, v) for k, v in sample.labels.items() if k != "le"))
        return out


def bound(fed: Fed, provinces: frozenset[str]) -> int:
    """Most label sets the families of ``fed`` can have with these province values."""
    domains = {**DOMAINS, "province": provinces}
    total = 0
    for labelsets in fed.series().values():
        names = {k for labels in labelsets for k, _ in labels}
        total += math.prod(len(domains[n]) for n in names)
    return total


def fed(regions: tuple[str, ...], voters: int, tmp: Path) -> Fed:
    directory = tmp / f"{'-'.join(regions)}-{voters}"
    write_files(directory, seed=5, voters=voters, regions=list(regions), tps_per_village=1)
    return Fed(directory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fed]:
    tmp = tmp_path_factory.mktemp("cardinality")
    return {
        "one province": fed(("32",), 250, tmp),
        "one province, 6x voters": fed(("32",), 1600, tmp),
        "five provinces": fed(("31", "32", "33", "35", "73"), 2000, tmp),
    }


def test_labels_and_values_come_from_fixed_sets(runs):
    for name, run in runs.items():
        seen_labels: dict[str, set[str]] = {}
        families = {f for f, labelsets in run.series().items() if any(labelsets)}
        # the run exercised every input-labelled family
        assert {"pantau_events_by_region", "pantau_dead_letters", "pantau_alerts", "pantau_findings",
                "pantau_registrations", "pantau_tally_registered", "pantau_tally_voters",
                "pantau_volume_score", "pantau_event_to_alert_seconds"} <= families, name
        for family, labelsets in run.series().items():
            assert family.startswith("pantau_"), family
            for labels in labelsets:
                for k, v in labels:
                    seen_labels.setdefault(k, set()).add(v)
        unknown_labels = set(seen_labels) - set(DOMAINS) - {"province"}
        assert not unknown_labels, f"{name}: labels outside the contract: {unknown_labels}"
        for label, values in seen_labels.items():
            domain = ALL_PROVINCES if label == "province" else DOMAINS[label]
            assert values <= domain, f"{name}: {label} values outside the fixed set: {values - domain}"
        # provinces come from the input's regions only (or unknown)
        assert seen_labels["province"] <= run.provinces | {"unknown"}, name
        assert len(ALL_PROVINCES) <= 39


def test_series_are_bounded_by_the_label_sets_not_by_tps_or_voters(runs):
    small, large, wide = runs["one province"], runs["one province, 6x voters"], runs["five provinces"]
    assert len(large.tps) >= 4 * len(small.tps) and len(wide.provinces) == 5
    counts = {name: sum(len(s) for s in run.series().values()) for name, run in runs.items()}
    one = frozenset({"32", "unknown"})
    # the same bound holds for 6x the voters and 4x the TPS: the data's size adds no series
    assert counts["one province"] <= bound(small, one)
    assert counts["one province, 6x voters"] <= bound(large, one)
    # five provinces: within the bound for those five (plus unknown), far below the all-province bound
    five = frozenset(wide.provinces | {"unknown"})
    assert counts["five provinces"] <= bound(wide, five) <= bound(wide, ALL_PROVINCES)
    # per province, the province-labelled series do not depend on the number of TPS either
    for run in (small, large, wide):
        per_province: dict[str, int] = {}
        for labelsets in run.series().values():
            for labels in labelsets:
                p = dict(labels).get("province")
                if p is not None:
                    per_province[p] = per_province.get(p, 0) + 1
        per_province_bound = bound(run, frozenset({"x"}))  # every family with one province value
        assert max(per_province.values()) <= per_province_bound
    print(f"series: {counts}; TPS: {len(small.tps)} / {len(large.tps)} / {len(wide.tps)}; "
          f"bounds: one province {bound(large, one)}, five {bound(wide, five)}, "
          f"all 39 province values {bound(wide, ALL_PROVINCES)}")


def test_exposition_holds_no_identifier_or_personal_data(runs):
    digits = re.compile(r"[0-9]{4,}")
    for name, run in runs.items():
        text = run.exposition_without_values()
        assert run.secrets
        leaked = sorted(s for s in run.secrets if s and s in text)
        assert not leaked, f"{name}: input values in /metrics: {leaked[:5]}"
        for labelsets in run.series().values():
            for labels in labelsets:
                for k, v in labels:
                    assert not digits.search(v), f"{name}: {k}={v!r} looks like a regency/village/TPS code or NIK"
